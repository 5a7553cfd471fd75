"""Settings of the LoRA method (the paper's: rank 8, alpha 16, dropout 0.1)."""

from __future__ import annotations

from dataclasses import dataclass, field

# the attention projections and both feed-forward projections of each adapted layer
LORA_TARGETS: tuple[str, ...] = (
    "attention.q_proj",
    "attention.k_proj",
    "attention.v_proj",
    "attention.out_proj",
    "feed_forward.intermediate_dense",
    "feed_forward.output_dense",
)


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyper-parameters."""

    r: int = field(default=8, metadata={"help": "rank of the low-rank update"})
    alpha: float = field(default=16.0, metadata={"help": "scaling numerator (update scaled by alpha / r)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on the LoRA branch input"})
    targets: tuple[str, ...] = field(
        default=LORA_TARGETS, metadata={"help": "module paths inside one encoder layer to adapt"}
    )

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.r}")
        if self.alpha <= 0:
            raise ValueError(f"LoRA alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        if not self.targets:
            raise ValueError("LoRA needs at least one target module")
