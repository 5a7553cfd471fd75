"""Cache size per hour of audio, from a model's shape (``featstore cache-size``).

A cache stores, per utterance, the mean and standard deviation of every hidden state
(``2 x S x D`` floats) and, with ``--frames``, every frame of the chosen layers
(``L x D`` floats per frame, 50 frames per second of audio for every family here). Frame
data is stored uncompressed, so these figures are the file's size to within its index
datasets and HDF5's own few kilobytes (``tests/featstore/test_extract_memory.py`` checks
them against a written cache).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FRAMES_PER_SECOND = 50
SECONDS_PER_HOUR = 3600
DTYPE_BYTES = {"float16": 2, "float32": 4}
MEDIAN_CLIP_S = 3.0
"""Clip length that turns the per-utterance pooled size into a per-hour one (the emotional
speech corpora of the paper have clips of 2-4 s)."""


@dataclass(frozen=True)
class FamilyShape:
    """A published checkpoint's shape: transformer layers and width."""

    name: str
    n_layers: int
    width: int


FAMILY_SHAPES: tuple[FamilyShape, ...] = (
    FamilyShape("wav2vec 2.0 base, HuBERT base, mHuBERT-147, data2vec-audio base, WavLM base / base+", 12, 768),
    FamilyShape("wav2vec 2.0 large, XLS-R 300M, MMS 300M, HuBERT large, data2vec-audio large, WavLM large", 24, 1024),
    FamilyShape("XLS-R 1B, MMS 1B", 48, 1280),
    FamilyShape("XLS-R 2B", 48, 1920),
    FamilyShape("Whisper base encoder", 6, 512),
    FamilyShape("Whisper small encoder", 12, 768),
    FamilyShape("Whisper medium encoder", 24, 1024),
    FamilyShape("Whisper large encoder", 32, 1280),
)
"""The families' usual sizes (the layer and width columns of their published configs)."""


def pooled_bytes_per_utt(n_layers: int, width: int, dtype: str = "float16") -> int:
    """Bytes of one utterance's pooled statistics: mean and std of ``n_layers + 1`` states."""
    return 2 * (n_layers + 1) * width * DTYPE_BYTES[dtype]


def frame_bytes_per_hour(width: int, n_frame_layers: int, dtype: str = "float16") -> int:
    """Bytes of one hour of frames of ``n_frame_layers`` hidden states of ``width``."""
    return FRAMES_PER_SECOND * SECONDS_PER_HOUR * n_frame_layers * width * DTYPE_BYTES[dtype]


def cache_bytes_per_hour(n_layers: int, width: int, dtype: str = "float16",
                         frame_layers: Sequence[int] | None = None, frames: bool = False,
                         clip_s: float = MEDIAN_CLIP_S) -> dict[str, float]:
    """Cache size for one hour of audio in clips of ``clip_s`` seconds.

    Returns a dict of bytes: ``pooled`` (every state's mean and std), ``frames`` (the
    frames of ``frame_layers``, or of every state when ``frames`` and no list is given;
    0 without frames) and ``total``.
    """
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {sorted(DTYPE_BYTES)}, got {dtype!r}")
    n_states = n_layers + 1
    if frame_layers is not None:
        bad = [x for x in frame_layers if not 0 <= x < n_states]
        if bad:
            raise ValueError(f"frame layers {bad} out of range: the model has hidden states 0..{n_states - 1}")
        n_frame = len(set(frame_layers))
    else:
        n_frame = n_states if frames else 0
    pooled = pooled_bytes_per_utt(n_layers, width, dtype) * SECONDS_PER_HOUR / clip_s
    frame = frame_bytes_per_hour(width, n_frame, dtype)
    return {"pooled": pooled, "frames": float(frame), "total": pooled + frame}
