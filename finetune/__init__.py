"""finetune: PEFT adapters (LoRA, bottleneck adapters, weighted gating) and two-stage training."""
