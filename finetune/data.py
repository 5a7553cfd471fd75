"""Clips for fine-tuning: labels, audio or cached frozen states, length-sorted batches.

A :class:`ClipSet` holds one part (train/valid/test) of one corpus for one fold. Its inputs
come either from raw audio (the frozen part of the model runs on every batch) or from a
frame-level cache holding the frozen hidden state the trainable part starts from
(:attr:`finetune.model.PeftModelConfig.input_state`), which then is read instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from featstore.manifest import CANONICAL_EMOTIONS


class FrameSource(Protocol):
    """What :class:`ClipSet` needs from a cache (``featstore.cache.FeatureCache`` has it)."""

    def frames(self, utt_id: str, layers: Sequence[int] | None = None) -> np.ndarray: ...


@dataclass
class ClipSet:
    """Labelled clips, with either ``waves`` or ``frames`` + ``state`` as their input.

    Attributes
    ----------
    utt_ids : N ids
    labels : (N,) int class indices into ``CANONICAL_EMOTIONS``
    lengths : (N,) sizes used to sort batches (samples or frames; only the order matters)
    waves : utt_id -> 1-D float32 clip at 16 kHz (raw audio input), or None
    frames : a :class:`FrameSource` holding hidden state ``state`` of every clip, or None
    state : hidden-state index read from ``frames``
    name : for logs (e.g. ``esd/train/fold0``)
    """

    utt_ids: list[str]
    labels: np.ndarray
    lengths: np.ndarray
    waves: Mapping[str, np.ndarray] | None = None
    frames: FrameSource | None = None
    state: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        if not len(self.utt_ids) == len(self.labels) == len(self.lengths):
            raise ValueError(f"{self.name}: utt_ids, labels and lengths differ in length")
        if (self.waves is None) == (self.frames is None):
            raise ValueError(f"{self.name}: give exactly one of waves or frames")

    def __len__(self) -> int:
        return len(self.utt_ids)


def labels_to_indices(emotions: Sequence[str], labels: Sequence[str] = CANONICAL_EMOTIONS) -> np.ndarray:
    """Class indices of emotion names (raises for a name outside ``labels``)."""
    pos = {name: i for i, name in enumerate(labels)}
    bad = sorted({e for e in emotions if e not in pos})
    if bad:
        raise ValueError(f"emotions {bad} are not among the classes {list(labels)}")
    return np.array([pos[e] for e in emotions], dtype=np.int64)


def length_sorted_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Batches of positions with similar lengths (little padding).

    With ``rng``, clips of equal length are ordered at random and the batch order is
    shuffled (a different draw each epoch from the same seeded generator); without it,
    the order is deterministic (evaluation).
    """
    n = len(lengths)
    tiebreak = rng.permutation(n) if rng is not None else np.arange(n)
    order = tiebreak[np.argsort(np.asarray(lengths)[tiebreak], kind="stable")]
    batches = [order[i: i + batch_size] for i in range(0, n, batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def pad_states(arrays: Sequence[np.ndarray], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (T_i, D) arrays into a zero-padded (B, T_max, D) float32 tensor and a (B, T_max)
    bool mask of real frames."""
    t_max = max(a.shape[0] for a in arrays)
    dim = arrays[0].shape[1]
    out = np.zeros((len(arrays), t_max, dim), dtype=np.float32)
    mask = np.zeros((len(arrays), t_max), dtype=bool)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
        mask[i, : a.shape[0]] = True
    return torch.from_numpy(out).to(device), torch.from_numpy(mask).to(device)


def batch_inputs(model: torch.nn.Module, clips: ClipSet, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen input state (B, T, D) and mask (B, T) of the clips at ``idx``: read from
    the cache, or computed by ``model.input_states`` from the audio."""
    ids = [clips.utt_ids[i] for i in idx]
    if clips.frames is not None:
        device = next(model.parameters()).device
        return pad_states([clips.frames.frames(u, [clips.state])[0] for u in ids], device)
    return model.input_states([clips.waves[u] for u in ids])
