"""Synthetic diarization utterances from an utterance-level corpus, in ZED's own format.

The ZED authors trained their diarization model on concatenations of utterances of one
speaker from emotional corpora: neutral + emotional (+ neutral), the later parts scaled to
the loudness of the first. :func:`concatenate_for_sed` does the same and writes the wavs
with a ``ZED.json`` (``{utt_id: {"wav": "datafolder/<id>.wav", "duration", "emotion":
[{"emo", "start", "end"}], "transcription"}}``), so that ``featstore prepare zed --root
OUT`` reads it like ZED itself and ``featstore extract`` can cache its frames.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import soundfile as sf

from featstore.errors import UnsafeIdError, path_inside, safe_file_stem
from featstore.io import atomic_write, atomic_write_json
from probes.sed._eder import EMOTIONS, NEUTRAL

PATTERNS: dict[str, tuple[str, ...]] = {
    "neu_emo_neu": ("neutral", "emotion", "neutral"),
    "neu_emo": ("neutral", "emotion"),
    "emo_neu": ("emotion", "neutral"),
}
"""Concatenation patterns (the ZED recipe's, less its emotional-only case)."""


@dataclass(frozen=True)
class ConcatConfig:
    """Settings of :func:`concatenate_for_sed`.

    Parameters
    ----------
    n_utterances : how many to make (None: one per emotional utterance).
    patterns : patterns drawn uniformly per utterance, from :data:`PATTERNS`.
    seed : seed of every draw.
    sample_rate_hz : sample rate of the written wavs (and of ``load_wave``'s output).
    prefix : utterance id prefix (must be usable in a file name).
    """

    n_utterances: int | None = None
    patterns: tuple[str, ...] = ("neu_emo_neu",)
    seed: int = 0
    sample_rate_hz: int = 16000
    prefix: str = "cat"

    def __post_init__(self) -> None:
        bad = [p for p in self.patterns if p not in PATTERNS]
        if bad or not self.patterns:
            raise ValueError(f"unknown pattern(s) {bad}; choose from {list(PATTERNS)}")
        if self.n_utterances is not None and self.n_utterances < 1:
            raise ValueError("n_utterances must be >= 1")
        safe_file_stem(self.prefix, "concatenation prefix")


def concat_id(prefix: str, k: int, source_id: str) -> str:
    """Id (and wav file stem) of the ``k``-th concatenation built around ``source_id``:
    ``<prefix><k:05d>_<source_id>`` when that is a safe file name, else the source id is
    replaced by a 12-hex hash of it (a corpus id such as ``../x`` or ``a/b`` never becomes
    a path)."""
    candidate = f"{prefix}{k:05d}_{source_id}"
    try:
        return safe_file_stem(candidate)
    except UnsafeIdError:
        digest = hashlib.sha1(str(source_id).encode("utf-8")).hexdigest()[:12]
        return f"{prefix}{k:05d}_{digest}"


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def concatenate_for_sed(
    manifest: pl.DataFrame,
    out_dir: str | Path,
    load_wave: Callable[[dict], np.ndarray],
    config: ConcatConfig = ConcatConfig(),
) -> Path:
    """Write neutral/emotional concatenations of one speaker's utterances and a ZED.json.

    Parameters
    ----------
    manifest : utterance-level manifest (``utt_id``, ``speaker``, ``emotion``, ...); only
        speakers with neutral and emotional (angry/happy/sad) utterances are used.
    out_dir : folder for ``<id>.wav`` files and ``ZED.json``.
    load_wave : row dict -> (n_samples,) float waveform at ``config.sample_rate_hz``.
    config : :class:`ConcatConfig`.

    Returns
    -------
    Path of the written ``ZED.json``. Each entry also records its ``sources`` (utt_ids).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    rows = manifest.filter(pl.col("emotion").is_in([*EMOTIONS, NEUTRAL])).sort("utt_id").to_dicts()
    by_speaker: dict[str, dict[str, list[dict]]] = {}
    for row in rows:
        kind = NEUTRAL if row["emotion"] == NEUTRAL else "emotion"
        by_speaker.setdefault(str(row["speaker"]), {NEUTRAL: [], "emotion": []})[kind].append(row)
    jobs = [(spk, r) for spk, d in sorted(by_speaker.items()) if d[NEUTRAL] for r in d["emotion"]]
    if not jobs:
        raise ValueError("no speaker has both neutral and emotional (angry/happy/sad) utterances")
    order = rng.permutation(len(jobs))
    if config.n_utterances is not None:
        order = order[: config.n_utterances]
    data: dict[str, dict] = {}
    for k, j in enumerate(order.tolist()):
        spk, emo_row = jobs[j]
        pattern = PATTERNS[config.patterns[int(rng.integers(len(config.patterns)))]]
        neutrals = by_speaker[spk][NEUTRAL]
        parts, ref_rms, start_s, end_s, sources = [], None, 0.0, 0.0, []
        for piece in pattern:
            row = emo_row if piece == "emotion" else neutrals[int(rng.integers(len(neutrals)))]
            wave = np.asarray(load_wave(row), dtype=np.float32).reshape(-1)
            level = _rms(wave)
            if ref_rms is None:
                ref_rms = level
            elif level > 0:
                wave = wave * (ref_rms / level)  # the recipe's loudness matching (dBFS)
            if piece == "emotion":
                start_s = sum(len(p) for p in parts) / config.sample_rate_hz
                end_s = start_s + len(wave) / config.sample_rate_hz
            parts.append(wave)
            sources.append(str(row["utt_id"]))
        audio = np.clip(np.concatenate(parts), -1.0, 1.0)
        utt_id = concat_id(config.prefix, k, str(emo_row["utt_id"]))
        path = path_inside(f"{utt_id}.wav", out, what="concatenated wav")
        atomic_write(path, lambda tmp, audio=audio: sf.write(tmp, audio, config.sample_rate_hz, subtype="PCM_16",
                                                             format="WAV"))
        data[utt_id] = {
            "wav": f"datafolder/{utt_id}.wav",
            "duration": len(audio) / config.sample_rate_hz,
            "emotion": [{"emo": emo_row["emotion"], "start": start_s, "end": end_s}],
            "transcription": "",
            "sources": sources,
        }
    return atomic_write_json(out / "ZED.json", data, indent=1)
