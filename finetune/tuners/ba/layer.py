"""The bottleneck adapter module."""

from __future__ import annotations

import torch
from torch import nn


class BottleneckFeedForward(nn.Module):
    """A feed-forward block plus a parallel bottleneck on its output.

    The encoder layer computes ``h + FF(h)``; with this block in place of ``FF`` it computes
    ``h + FFN(h) + BA(FFN(h))`` with ``BA(x) = up(relu(down(x)))``.

    Parameters
    ----------
    base_layer : the layer's original feed-forward module (frozen)
    hidden_size : D (768 for base models)
    bottleneck_size : D / reduction (48 for base models)
    """

    def __init__(self, base_layer: nn.Module, hidden_size: int, bottleneck_size: int,
                 zero_init_up: bool = False) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.ba_down = nn.Linear(hidden_size, bottleneck_size)
        self.ba_up = nn.Linear(bottleneck_size, hidden_size)
        if zero_init_up:
            nn.init.zeros_(self.ba_up.weight)
            nn.init.zeros_(self.ba_up.bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        ffn = self.base_layer(hidden_states)
        return ffn + self.ba_up(torch.relu(self.ba_down(ffn)))
