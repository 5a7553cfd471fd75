"""Injecting LoRA into chosen encoder layers with ``peft.inject_adapter_in_model``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from peft import LoraConfig, inject_adapter_in_model
from torch import nn

from finetune.tuners.lora.config import LORA_TARGETS, LoraSettings
from finetune.tuners.lora.layer import make_modular


def lora_target_names(layers: Sequence[int], settings: LoraSettings) -> list[str]:
    """Full module names (inside a ``Wav2Vec2Model``/``WavLMModel``) that get LoRA.

    ``layers`` are 0-based indices into ``encoder.encoder.layers``.
    """
    return [f"encoder.layers.{i}.{t}" for i in sorted(set(layers)) for t in settings.targets]


def apply_lora(encoder: nn.Module, layers: Sequence[int], settings: LoraSettings) -> nn.Module:
    """Wrap the target projections of ``layers`` with LoRA (adapter name ``default``,
    parameters ``lora_A``/``lora_B``); WavLM attentions of those layers are switched to
    :class:`~finetune.tuners.lora.layer.ModularWavLMAttention` so LoRA on q/k/v trains.

    Must run before the other methods (they wrap modules and would change the names).
    """
    if getattr(encoder.config, "model_type", None) == "whisper" and settings.targets == LORA_TARGETS:
        # Whisper hook (branch whisper): its layers name the same projections differently
        from finetune.whisper_encoder import WHISPER_LORA_TARGETS
        settings = replace(settings, targets=WHISPER_LORA_TARGETS)
    for i in layers:
        make_modular(getattr(encoder.encoder.layers[i], "attention", None))  # Whisper: self_attn
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=lora_target_names(layers, settings),
        bias="none",
    )
    return inject_adapter_in_model(config, encoder)
