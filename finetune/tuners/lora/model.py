"""Injecting LoRA into chosen encoder layers with ``peft.inject_adapter_in_model``."""

from __future__ import annotations

from collections.abc import Sequence

from peft import LoraConfig, inject_adapter_in_model
from torch import nn

from featstore.forward import encoder_layers, family_of
from featstore.models.registry import FamilySpec
from finetune.tuners.lora.config import LORA_TARGETS, LoraSettings
from finetune.tuners.lora.layer import make_modular


def lora_target_names(layers: Sequence[int], settings: LoraSettings, family: FamilySpec | None = None) -> list[str]:
    """Full module names (inside the bare encoder) that get LoRA.

    ``layers`` are 0-based indices into the family's layer list (``encoder.layers`` for
    every family so far). With the default targets (:data:`LORA_TARGETS`) a ``family``
    whose modules are named differently gets its own (``FamilySpec.lora_targets``).
    """
    where, targets = "encoder.layers", settings.targets
    if family is not None:
        where = family.layers
        if tuple(targets) == LORA_TARGETS:
            targets = family.lora_targets
    return [f"{where}.{i}.{t}" for i in sorted(set(layers)) for t in targets]


def apply_lora(encoder: nn.Module, layers: Sequence[int], settings: LoraSettings) -> nn.Module:
    """Wrap the target projections of ``layers`` with LoRA (adapter name ``default``,
    parameters ``lora_A``/``lora_B``); WavLM attentions of those layers are switched to
    :class:`~finetune.tuners.lora.layer.ModularWavLMAttention` so LoRA on q/k/v trains.

    Must run before the other methods (they wrap modules and would change the names).
    """
    family = family_of(encoder)
    stack = encoder_layers(encoder)
    for i in layers:
        make_modular(getattr(stack[i], family.attention))
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=lora_target_names(layers, settings, family),
        bias="none",
    )
    return inject_adapter_in_model(config, encoder)
