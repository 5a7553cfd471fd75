"""Settings of the LoRA method (the paper's: rank 8, alpha 16, dropout 0.1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from featstore.configs import ConfigError, check_fields

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

    r: int = field(default=8, metadata={"help": "LoRA rank of the low-rank update", "min": 1})
    alpha: float = field(default=16.0, metadata={"help": "LoRA alpha: scaling numerator (update scaled by alpha / r)",
                                                 "gt": 0})
    dropout: float = field(default=0.1, metadata={"help": "LoRA dropout on the branch input", "min": 0, "lt": 1})
    targets: tuple[str, ...] = field(
        default=LORA_TARGETS, metadata={"help": "module paths inside one encoder layer to adapt"}
    )

    def __post_init__(self) -> None:
        check_fields(self)  # r >= 1, alpha > 0, 0 <= dropout < 1
        if not self.targets:
            raise ConfigError("LoraSettings.targets: LoRA needs at least one target module")
