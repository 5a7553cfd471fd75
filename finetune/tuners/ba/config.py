"""Settings of the bottleneck adapter (the paper's reduction factor 16: 768 -> 48 -> 768)."""

from __future__ import annotations

from dataclasses import dataclass, field

from featstore.configs import check_fields


@dataclass(frozen=True)
class BASettings:
    """Bottleneck adapter hyper-parameters."""

    reduction: int = field(default=16, metadata={"help": "hidden size / bottleneck size", "min": 1})
    zero_init_up: bool = field(
        default=False,
        metadata={"help": "start the up-projection at zero (adapter = identity at first); "
                  "the paper's code uses PyTorch's default init"},
    )

    def __post_init__(self) -> None:
        check_fields(self)  # reduction >= 1 (BA reduction factor), zero_init_up a bool
