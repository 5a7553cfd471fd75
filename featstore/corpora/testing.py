"""Tiny synthetic copies of corpus layouts, for tests and benchmarks (no real audio).

:func:`write_tone` writes a short sine; :func:`write_esd_tree` builds an ESD tree holding
exactly the files asked for (e.g. the ones a paper split file names), with a utf-8
transcript per speaker.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from featstore.corpora.esd import INDEX_ORDER, speaker_language

CHINESE_EMOTION_WORDS = {"Neutral": "中立", "Happy": "快乐", "Sad": "伤心", "Angry": "生气", "Surprise": "惊喜"}


def tone(duration_s: float = 0.05, sample_rate_hz: int = 16000, freq_hz: float = 220.0,
         amplitude: float = 0.3) -> np.ndarray:
    """A sine, shape ``(round(duration_s * sample_rate_hz),)``, float32."""
    t = np.arange(int(round(duration_s * sample_rate_hz))) / sample_rate_hz
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def write_tone(path: str | Path, duration_s: float = 0.05, sample_rate_hz: int = 16000,
               freq_hz: float = 220.0, amplitude: float = 0.3, subtype: str = "PCM_16") -> Path:
    """Write a sine (wav or flac by the suffix) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(duration_s, sample_rate_hz, freq_hz, amplitude), sample_rate_hz, subtype=subtype)
    return path


@lru_cache(maxsize=64)
def _wav_bytes(duration_s: float, freq_hz: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(duration_s, 16000, freq_hz), 16000, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def esd_utt_id(speaker: str, emotion: str, k: int) -> str:
    """The ``k``-th (0-based) file id of ``emotion`` for ``speaker`` under ESD's numbering."""
    number = INDEX_ORDER.index(emotion.lower()) * 350 + k + 1
    return f"{speaker}_{number:06d}"


def write_esd_tree(root: str | Path, files: Iterable[tuple[str, str]], split: str | None = "train",
                   official_folder: bool = False, duration_s: float = 0.05) -> Path:
    """Write an ESD tree holding exactly ``files``.

    Parameters
    ----------
    root : str or Path
        Where to write.
    files : iterable of (utt_id, emotion folder)
        E.g. ``("0003_001041", "Happy")``; the speaker is the part before ``_``.
    split : str, optional
        Split folder (``train``/``evaluation``/``test``) or None for the flat layout.
    official_folder : bool
        Put the speakers under ``Emotion Speech Dataset/``.
    duration_s : float
        Length of each tone in seconds (16 kHz).

    Returns
    -------
    Path
        The folder holding the speaker folders.
    """
    base = Path(root) / "Emotion Speech Dataset" if official_folder else Path(root)
    lines: dict[str, list[str]] = {}
    for number, (utt_id, emotion) in enumerate(files):
        speaker = utt_id.split("_")[0]
        folder = base / speaker / emotion / split if split else base / speaker / emotion
        folder.mkdir(parents=True, exist_ok=True)
        # thousands of files (a whole paper split): encode a few tones once, copy bytes
        (folder / f"{utt_id}.wav").write_bytes(_wav_bytes(duration_s, 150.0 + 10 * (number % 30)))
        try:
            word = CHINESE_EMOTION_WORDS[emotion] if speaker_language(speaker) == "cn" else emotion
        except ValueError:
            word = emotion
        lines.setdefault(speaker, []).append(f"{utt_id}\tsentence {utt_id}\t{word}")
    for speaker, speaker_lines in lines.items():
        (base / speaker / f"{speaker}.txt").write_text("\n".join(speaker_lines) + "\n", encoding="utf-8")
    return base
