"""Classification heads, the same choices as the probes: ``mlp`` (D -> 128 -> 16 -> 4,
ReLU; the paper's) and ``linear`` (D -> 4)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def mlp_head(dim: int, n_classes: int) -> nn.Module:
    """The paper's head: Linear(D, 128), ReLU, Linear(128, 16), ReLU, Linear(16, n_classes)."""
    return nn.Sequential(
        nn.Linear(dim, 128), nn.ReLU(), nn.Linear(128, 16), nn.ReLU(), nn.Linear(16, n_classes)
    )


def linear_head(dim: int, n_classes: int) -> nn.Module:
    """A single Linear(D, n_classes)."""
    return nn.Sequential(nn.Linear(dim, n_classes))


HEADS: dict[str, Callable[[int, int], nn.Module]] = {"mlp": mlp_head, "linear": linear_head}


def make_head(kind: str, dim: int, n_classes: int) -> nn.Module:
    """Build a head from :data:`HEADS`."""
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; choose from {list(HEADS)}")
    return HEADS[kind](dim, n_classes)
