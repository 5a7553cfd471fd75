"""Putting bottleneck adapters into chosen encoder layers."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from finetune.tuners.ba.config import BASettings
from finetune.tuners.ba.layer import BottleneckFeedForward


def apply_ba(encoder: nn.Module, layers: Sequence[int], settings: BASettings) -> nn.Module:
    """Replace ``feed_forward`` of each layer in ``layers`` (0-based) by a
    :class:`BottleneckFeedForward` around it; returns ``encoder`` (changed in place)."""
    hidden = encoder.config.hidden_size
    size = max(1, hidden // settings.reduction)
    for i in layers:
        layer = encoder.encoder.layers[i]
        layer = getattr(layer, "base_layer", layer)
        # Whisper hook (branch whisper): its feed-forward ends in fc2 (FFN(h) = fc2(act(fc1(norm(h)))))
        slot = "feed_forward" if hasattr(layer, "feed_forward") else "fc2"
        if isinstance(getattr(layer, slot), BottleneckFeedForward):
            raise ValueError(f"layer {i} already has a bottleneck adapter")
        ff = getattr(layer, slot)
        ba = BottleneckFeedForward(ff, hidden, size, settings.zero_init_up)
        ref = next(ff.parameters())
        setattr(layer, slot, ba.to(device=ref.device, dtype=ref.dtype))
    return encoder
