"""Gating the input of chosen encoder layers."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from featstore.forward import encoder_layers
from finetune.tuners.wg.config import WGSettings
from finetune.tuners.wg.layer import GatedLayer


def apply_wg(encoder: nn.Module, layers: Sequence[int], settings: WGSettings) -> nn.Module:
    """Wrap each layer in ``layers`` (0-based) in a :class:`GatedLayer`; returns ``encoder``.

    Runs last (it renames the layer's parameters to ``...layers.<i>.base_layer...``)."""
    hidden = encoder.config.hidden_size
    stack = encoder_layers(encoder)  # the family's layer list (featstore.models.registry.FAMILIES)
    for i in layers:
        layer = stack[i]
        if isinstance(layer, GatedLayer):
            raise ValueError(f"layer {i} already has a weighted gate")
        ref = next(layer.parameters())
        stack[i] = GatedLayer(layer, hidden, settings.init_logit).to(ref.device, ref.dtype)
    return encoder
