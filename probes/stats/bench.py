"""``probes bench``'s statistics figure: their time over the grid's (target <= 20 %)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from probes.config import LayerwiseConfig
    from probes.layerwise import LayerwiseRun

TARGET_STATS_RATIO = 0.20
"""The statistics may add at most this fraction of the grid's time."""


def bench_stats(run: LayerwiseRun, grid: LayerwiseConfig, run_s: float) -> dict:
    """Time the statistics of a finished grid run (intervals, tests, best-layer sets, gaps,
    their files and the gap figure) again on its tables.

    ``run_s`` is the wall time of :func:`probes.layerwise.run_layerwise_full`, which already
    included the statistics when ``grid.stats.enabled``; the grid's own time is that minus
    the statistics' time. Returns seconds, the ratio and pass/fail.
    """
    from probes.stats.run import stats_of_grid

    t0 = time.perf_counter()
    tables, _ = stats_of_grid(run.results, run.predictions, grid, run.out_dir)
    stats_s = time.perf_counter() - t0
    grid_s = run_s - stats_s if grid.stats.enabled else run_s
    ratio = stats_s / grid_s if grid_s > 0 else float("inf")
    return {"stats_s": stats_s, "grid_s": grid_s, "ratio": ratio, "target": TARGET_STATS_RATIO,
            "pass": ratio <= TARGET_STATS_RATIO, "n_resamples": grid.stats.n_resamples,
            "rows": {name: frame.height for name, frame in tables.frames().items()}}
