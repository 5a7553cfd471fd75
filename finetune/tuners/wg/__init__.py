"""Weighted gating: a learned per-dimension sigmoid gate on an encoder layer's input."""

from finetune.tuners.wg.config import WGSettings
from finetune.tuners.wg.layer import GatedLayer
from finetune.tuners.wg.model import apply_wg

__all__ = ["WGSettings", "GatedLayer", "apply_wg"]
