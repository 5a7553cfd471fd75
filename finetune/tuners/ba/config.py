"""Settings of the bottleneck adapter (the paper's reduction factor 16: 768 -> 48 -> 768)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BASettings:
    """Bottleneck adapter hyper-parameters."""

    reduction: int = field(default=16, metadata={"help": "hidden size / bottleneck size"})
    zero_init_up: bool = field(
        default=False,
        metadata={"help": "start the up-projection at zero (adapter = identity at first); "
                  "the paper's code uses PyTorch's default init"},
    )

    def __post_init__(self) -> None:
        if self.reduction < 1:
            raise ValueError(f"BA reduction factor must be >= 1, got {self.reduction}")
