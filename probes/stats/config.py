"""The statistics' settings (a field of :class:`probes.config.LayerwiseConfig`)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from featstore.configs import check_fields
from probes.stats.core import CORRECTIONS


@dataclass(frozen=True)
class StatsConfig:
    """Intervals, paired tests and best-layer sets over a layer-wise run's predictions.

    Attributes
    ----------
    enabled : compute and write the statistics (``<run>/stats/``)
    n_resamples : bootstrap resamples and random sign patterns per test
    alpha : 1 - the intervals' level, and the tests' family-wise error rate
    seed : root seed of every resample (each test corpus draws its own stream)
    correction : ``holm`` (step-down) or ``bonferroni`` over each family
    min_speakers : a test corpus with fewer speakers resamples utterances instead
    """

    enabled: bool = field(default=True, metadata={"help": "compute bootstrap intervals, paired tests and best-layer sets"})
    n_resamples: int = field(default=2000, metadata={"help": "bootstrap resamples and random sign flips per test",
                                                     "min": 100})
    alpha: float = field(default=0.05, metadata={"help": "1 - interval level; family-wise error rate of the tests",
                                                  "gt": 0, "max": 0.5})
    seed: int = field(default=0, metadata={"help": "root seed of the resamples", "min": 0})
    correction: str = field(default="holm", metadata={"help": "multiple-comparison correction (family-wise)",
                                                      "choices": CORRECTIONS})
    min_speakers: int = field(default=5, metadata={
        "help": "test corpora with fewer speakers resample utterances instead of speakers", "min": 1})

    def __post_init__(self) -> None:
        check_fields(self)

    def to_json(self) -> str:
        """Every field as JSON (recorded in each statistics table)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)
