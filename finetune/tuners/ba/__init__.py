"""Bottleneck adapter in parallel with the feed-forward block."""

from finetune.tuners.ba.config import BASettings
from finetune.tuners.ba.layer import BottleneckFeedForward
from finetune.tuners.ba.model import apply_ba

__all__ = ["BASettings", "BottleneckFeedForward", "apply_ba"]
