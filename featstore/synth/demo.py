"""The demo corpus: real multilingual speech made on the spot with eSpeak NG.

Four languages (Mandarin ``cn``, German ``de``, English ``en``, and Cantonese ``yue`` as
the stand-in for the paper's Tianjin dialect), several eSpeak NG voice variants as
speakers, the same sentences spoken in four emotions rendered as prosody (see
:data:`featstore.synth.voices.EMOTION_PROSODY`) with per-utterance jitter, and as voice
quality (a spectral tilt, :data:`featstore.synth.voices.EMOTION_TILT`).

Layouts (one folder per language under ``out``)::

    esd:       <out>/<lang>/<spk>/<Emotion>/<spk>_<NNNNNN>.wav  and  <out>/<lang>/<spk>/<spk>.txt
    manifest:  <out>/<lang>/wav/<spk>_<NNNNNN>.wav

Both also write ``<out>/<lang>/manifest.csv`` (``utt_id, path, label, speaker, language,
text, gender``; paths relative to that folder) for the table reader. File numbers follow
ESD's rule (Neutral from 000001, Angry from 000351, Happy from 000701, Sad from 001051);
Mandarin speakers are 0001..., English 0011..., German 0021..., Cantonese 0031..., so the
ESD reader finds the language of the first two itself (pass ``language`` for the others).

Every utterance depends only on the seed and its own (language, speaker, emotion, number):
the same configuration gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from featstore.io import atomic_write
from featstore.paths import cache_root
from featstore.synth.espeak import EspeakSynth
from featstore.synth.voices import (
    EMOTION_PROSODY,
    EMOTION_TILT,
    ESD_FOLDERS,
    ESD_INDEX_BASE,
    LANGUAGES,
    SPEAKER_VARIANTS,
    TRANSCRIPT_LABELS,
    apply_tilt,
    jittered,
    speaker_offsets,
)

LAYOUTS: tuple[str, ...] = ("esd", "manifest")
MARKER = ".featstore-demo"
"""File that marks a folder as written by the demo synthesiser (safe to replace)."""
_LANGUAGE_ORDER = tuple(LANGUAGES)
_EMOTION_ORDER = ("neutral", "angry", "happy", "sad")


@dataclass(frozen=True)
class SynthConfig:
    """What demo corpus to make.

    Attributes
    ----------
    out : Path or None
        Output folder; None: ``<cache root>/demo``.
    seed : int
        Seed of every random choice (speaker habits, prosody jitter, eSpeak NG's noise).
    per_emotion : int
        Utterances per speaker and emotion (sentences are reused in turn), at most 350.
    n_speakers : int
        Voice variants per language (at most 8).
    languages : tuple[str, ...]
        Language codes from :data:`featstore.synth.voices.LANGUAGES`.
    emotions : tuple[str, ...]
        Emotions to speak (the four canonical ones by default).
    layout : str
        ``esd`` (ESD's folders) or ``manifest`` (one flat folder).
    sample_rate_hz : int
        Rate of the written wav files (eSpeak NG speaks at 22050 Hz; soxr resamples).
    """

    out: Path | None = None
    seed: int = 0
    per_emotion: int = 8
    n_speakers: int = 5
    languages: tuple[str, ...] = ("cn", "de", "en", "yue")
    emotions: tuple[str, ...] = field(default=_EMOTION_ORDER)
    layout: str = "esd"
    sample_rate_hz: int = 16000

    def __post_init__(self) -> None:
        unknown = [code for code in self.languages if code not in LANGUAGES]
        if unknown or not self.languages:
            raise ValueError(f"languages must be among {list(LANGUAGES)}, got {list(self.languages)}")
        bad = [e for e in self.emotions if e not in EMOTION_PROSODY]
        if bad or not self.emotions:
            raise ValueError(f"emotions must be among {list(EMOTION_PROSODY)}, got {list(self.emotions)}")
        if not 1 <= self.per_emotion <= 350:
            raise ValueError(f"per_emotion must be 1-350 (ESD numbering), got {self.per_emotion}")
        if not 1 <= self.n_speakers <= len(SPEAKER_VARIANTS):
            raise ValueError(f"n_speakers must be 1-{len(SPEAKER_VARIANTS)}, got {self.n_speakers}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.sample_rate_hz < 8000:
            raise ValueError(f"sample_rate_hz must be at least 8000, got {self.sample_rate_hz}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")

    @property
    def n_utterances(self) -> int:
        """Utterances the configuration makes."""
        return len(self.languages) * self.n_speakers * len(self.emotions) * self.per_emotion


@dataclass(frozen=True)
class _Utterance:
    utt_id: str
    language: str
    speaker: str
    gender: str
    emotion: str
    text: str
    voice: str
    relpath: str
    key: tuple[int, ...]


def plan_utterances(config: SynthConfig, code: str) -> list[_Utterance]:
    """Every utterance of one language, in a fixed order."""
    lang = LANGUAGES[code]
    out = []
    for s in range(config.n_speakers):
        speaker = f"{lang.first_speaker + s:04d}"
        variant, gender = SPEAKER_VARIANTS[s]
        for emotion in config.emotions:
            for k in range(1, config.per_emotion + 1):
                utt_id = f"{speaker}_{ESD_INDEX_BASE[emotion] + k:06d}"
                rel = (f"{speaker}/{ESD_FOLDERS[emotion]}/{utt_id}.wav" if config.layout == "esd"
                       else f"wav/{utt_id}.wav")
                out.append(_Utterance(
                    utt_id, code, speaker, gender, emotion, lang.sentences[(k - 1) % len(lang.sentences)],
                    f"{lang.voice}+{variant}", rel,
                    (_LANGUAGE_ORDER.index(code), s, _EMOTION_ORDER.index(emotion), k),
                ))
    return out


def _prepare_folder(folder: Path) -> None:
    """Empty a folder the demo wrote before; refuse to touch anything else."""
    if folder.exists():
        if not (folder / MARKER).is_file() and any(folder.iterdir()):
            raise FileExistsError(
                f"{folder} exists and was not written by `featstore synth`; choose another --out"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("written by featstore synth; safe to delete\n", encoding="utf-8")


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def render(synth: EspeakSynth, utt: _Utterance, config: SynthConfig) -> np.ndarray:
    """Speak one planned utterance; float32 samples at ``config.sample_rate_hz``."""
    spk_rng = np.random.default_rng([config.seed, utt.key[0], utt.key[1]])
    rate_factor, pitch_offset = speaker_offsets(spk_rng)
    rng = np.random.default_rng([config.seed, *utt.key])
    prosody = jittered(EMOTION_PROSODY[utt.emotion], rate_factor, pitch_offset, rng)
    samples, rate_hz = synth.synthesize(utt.text, utt.voice, prosody, seed=int(rng.integers(0, 2**31 - 1)))
    wave = apply_tilt(samples.astype(np.float32) / 32768.0, EMOTION_TILT[utt.emotion])
    if rate_hz != config.sample_rate_hz:
        wave = soxr.resample(wave, rate_hz, config.sample_rate_hz, quality="HQ").astype(np.float32)
    return np.clip(wave, -1.0, 32767 / 32768)


def synthesize_demo(config: SynthConfig = SynthConfig(), progress: bool = False) -> dict[str, Path]:
    """Make the demo corpus.

    Parameters
    ----------
    config : SynthConfig
        Languages, speakers, utterances per emotion, layout, seed, output folder.
    progress : bool
        Show a progress bar (rich).

    Returns
    -------
    dict[str, Path]
        Language code -> its folder (an ESD root in the ``esd`` layout; it holds
        ``manifest.csv`` in both layouts).

    Raises
    ------
    featstore.synth.espeak.EspeakError
        When eSpeak NG (espeakng-loader) or one of its voices is missing.
    FileExistsError
        When a language folder exists and was not written by this function.
    """
    out = Path(config.out) if config.out is not None else cache_root() / "demo"
    plans = {code: plan_utterances(config, code) for code in config.languages}
    folders: dict[str, Path] = {}
    with EspeakSynth() as synth:
        # fail on a missing library or voice before touching the output folder
        for code in config.languages:
            synth.synthesize(LANGUAGES[code].sentences[0], plans[code][0].voice, EMOTION_PROSODY["neutral"], 0)
        items = [u for code in config.languages for u in plans[code]]
        iterator = items
        if progress:
            from featstore.console import track_items

            iterator = track_items(items, "synthesising the demo corpus", "utts")
        for code in config.languages:
            folders[code] = out / code
            _prepare_folder(folders[code])
        for utt in iterator:
            buffer = io.BytesIO()
            sf.write(buffer, render(synth, utt, config), config.sample_rate_hz, subtype="PCM_16", format="WAV")
            _write_bytes(folders[utt.language] / utt.relpath, buffer.getvalue())
    for code, folder in folders.items():
        _write_tables(folder, code, plans[code], config)
    return folders


def _write_tables(folder: Path, code: str, plan: list[_Utterance], config: SynthConfig) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["utt_id", "path", "label", "speaker", "language", "text", "gender"])
    for utt in plan:
        writer.writerow([utt.utt_id, utt.relpath, ESD_FOLDERS[utt.emotion], utt.speaker, code, utt.text, utt.gender])
    _write_bytes(folder / "manifest.csv", text.getvalue().encode("utf-8"))
    if config.layout != "esd":
        return
    labels = TRANSCRIPT_LABELS.get(code, ESD_FOLDERS)
    for speaker in sorted({u.speaker for u in plan}):
        lines = [f"{u.utt_id}\t{u.text}\t{labels[u.emotion]}\n" for u in plan if u.speaker == speaker]
        _write_bytes(folder / speaker / f"{speaker}.txt", "".join(lines).encode("utf-8"))
