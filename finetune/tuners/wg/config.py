"""Settings of weighted gating."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from featstore.configs import check_fields


@dataclass(frozen=True)
class WGSettings:
    """Weighted gating hyper-parameters."""

    init_logit: float = field(
        default=1.0,
        metadata={"help": "initial gate logit of every dimension (sigmoid(1) = 0.73, the "
                  "paper's code's ones-initialised gate)",
                  "check": lambda v: None if math.isfinite(v) else f"{v} is not finite", "allowed": "a finite number"},
    )

    def __post_init__(self) -> None:
        check_fields(self)  # WG init_logit: a finite number
