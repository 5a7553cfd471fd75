"""Settings of weighted gating."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class WGSettings:
    """Weighted gating hyper-parameters."""

    init_logit: float = field(
        default=1.0,
        metadata={"help": "initial gate logit of every dimension (sigmoid(1) = 0.73, the "
                  "paper's code's ones-initialised gate)"},
    )

    def __post_init__(self) -> None:
        if not math.isfinite(self.init_logit):
            raise ValueError(f"WG init_logit must be finite, got {self.init_logit}")
