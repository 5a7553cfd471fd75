"""The gated encoder layer."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class GatedLayer(nn.Module):
    """An encoder layer whose input is multiplied by ``sigmoid(wg_gate)`` (one gate per
    dimension) before the layer (attention, its residual and the feed-forward) sees it.

    Called exactly like the wrapped layer: ``forward(hidden_states, *args, **kwargs)`` with
    ``hidden_states`` (B, T, D); other arguments pass through.
    """

    def __init__(self, base_layer: nn.Module, hidden_size: int, init_logit: float = 1.0) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.wg_gate = nn.Parameter(torch.full((hidden_size,), float(init_logit)))

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        gate = torch.sigmoid(self.wg_gate).to(hidden_states.dtype)
        return self.base_layer(hidden_states * gate, *args, **kwargs)
