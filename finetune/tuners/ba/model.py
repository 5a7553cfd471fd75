"""Putting bottleneck adapters into chosen encoder layers."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from featstore.forward import encoder_layers, family_of
from finetune.tuners.ba.config import BASettings
from finetune.tuners.ba.layer import BottleneckFeedForward


def apply_ba(encoder: nn.Module, layers: Sequence[int], settings: BASettings) -> nn.Module:
    """Replace the feed-forward module (``FamilySpec.feed_forward``) of each layer in ``layers`` (0-based) by a
    :class:`BottleneckFeedForward` around it; returns ``encoder`` (changed in place)."""
    hidden = encoder.config.hidden_size
    size = max(1, hidden // settings.reduction)
    family = family_of(encoder)
    # Whisper's feed-forward is fc1/fc2 in the layer itself (FFN(h) = fc2(act(fc1(norm(h))))): wrap fc2
    stack, name = encoder_layers(encoder), family.feed_forward or family.feed_forward_projections[-1]
    for i in layers:
        layer = stack[i]
        layer = getattr(layer, "base_layer", layer)
        ff = getattr(layer, name)
        if isinstance(ff, BottleneckFeedForward):
            raise ValueError(f"layer {i} already has a bottleneck adapter")
        ba = BottleneckFeedForward(ff, hidden, size, settings.zero_init_up)
        ref = next(ff.parameters())
        setattr(layer, name, ba.to(device=ref.device, dtype=ref.dtype))
    return encoder
