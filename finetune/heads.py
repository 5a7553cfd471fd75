"""Classification heads: the probes' trainable heads (``probes.heads.HEADS`` of kind
``sgd``: ``mlp`` = D -> 128 -> 16 -> 4 with ReLU, the paper's; ``linear`` = D -> 4), built
as torch modules so they train together with the adapters."""

from __future__ import annotations

from torch import nn

from probes.heads import HEADS as PROBE_HEADS

HEADS: tuple[str, ...] = tuple(name for name, spec in PROBE_HEADS.items() if spec.kind == "sgd")
"""Head names usable for fine-tuning (closed-form probe heads such as ``logreg`` cannot
back-propagate into the adapters)."""


def make_head(kind: str, dim: int, n_classes: int) -> nn.Module:
    """Linear layers with ReLU between them, widths from the probes' head spec."""
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r} for fine-tuning; choose from {list(HEADS)}")
    widths = PROBE_HEADS[kind].widths(dim, n_classes)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)
