"""LoRA through the ``peft`` library, made to train on WavLM too."""

from finetune.tuners.lora.config import LoraSettings
from finetune.tuners.lora.layer import ModularWavLMAttention
from finetune.tuners.lora.model import apply_lora, lora_target_names

__all__ = ["LoraSettings", "ModularWavLMAttention", "apply_lora", "lora_target_names"]
