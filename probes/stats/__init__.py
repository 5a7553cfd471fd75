"""Statistics over the layer-wise probes' predictions: speaker-level bootstrap intervals of
UA per layer, paired sign-flip tests with a named family-wise correction, best-layer sets
and the cross-lingual gaps (see ``docs/statistics.md``).

Numerics in :mod:`probes.stats.core`, inputs in :mod:`probes.stats.units`, tables in
:mod:`probes.stats.tables`, files in :mod:`probes.stats.run`, figures in
:mod:`probes.stats.plot`.
"""

from probes.stats.config import StatsConfig

__all__ = ["StatsConfig"]
