"""Statistics of a finished layer-wise run, written into ``<run>/stats/``.

:func:`run_stats` is what :func:`probes.layerwise.run_layerwise_full` calls after the grid;
:func:`stats_for_run` recomputes them from a run directory's saved tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from featstore.io import atomic_write, atomic_write_text, write_parquet
from probes.results import BEST_SETS_FILE, write_best_sets
from probes.stats.config import StatsConfig
from probes.stats.tables import StatsTables, compute_stats
from probes.stats.units import condition_arrays, speakers_from_caches

if TYPE_CHECKING:  # pragma: no cover
    from probes.config import LayerwiseConfig

STATS_DIR = "stats"
DESCRIPTIONS: dict[str, str] = {
    "layer_ci": "UA (fraction) of the pooled test predictions per condition and layer with its bootstrap "
                "percentile interval (ua_lo, ua_hi) over speakers (or utterances: column unit)",
    "layer_tests": "each layer vs the best layer (scope condition, or setting = mean over its conditions): "
                   "diff = ua_best - ua, paired interval, two-sided sign-flip p, p_adj family-wise over the "
                   "layers of the scope, in_best_set = best or not significantly worse",
    "pair_tests": "two conditions on the same test utterances (a, b) per layer: diff = ua_a - ua_b, paired "
                  "interval, sign-flip p, p_adj over the layers of the pair",
    "best_set_table": "one row per scope (setting: UA averaged over its conditions; condition): best layer, "
                      "ua_best, best_set (layers not significantly worse than the best), smallest_in_set (k >= 1)",
    "gaps": "cross-lingual gaps per model, native and foreign corpus, layer: diff = ua_a - ua_b, paired when "
            "the test utterances coincide (p given), else independent bootstraps (p empty)",
}
"""What each table holds (stored in its parquet metadata)."""


def write_stats(tables: StatsTables, out_dir: str | Path, metadata: Mapping[str, object]) -> dict[str, Path]:
    """Write each table as parquet (``metadata`` + its description) and CSV, and the
    best-layer sets as JSON, into ``out_dir``; returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, frame in tables.frames().items():
        paths[name] = write_parquet(frame, out / f"{name}.parquet", metadata={**metadata, "table": DESCRIPTIONS[name]})
        atomic_write(out / f"{name}.csv", frame.write_csv)
        paths[f"{name}_csv"] = out / f"{name}.csv"
    paths["best_sets"] = write_best_sets(tables.best_sets, out / BEST_SETS_FILE, merge=False)
    return paths


def run_stats(
    results: pl.DataFrame,
    predictions: pl.DataFrame,
    config: StatsConfig,
    out_dir: str | Path,
    speakers: Mapping[str, Mapping[str, str]],
    run_config_json: str = "{}",
) -> tuple[StatsTables, dict[str, Path]]:
    """Compute the statistics of a run and write them into ``out_dir`` (the run's
    ``stats/`` folder)."""
    conds = condition_arrays(predictions, speakers, config.min_speakers)
    tables = compute_stats(conds, config, results)
    meta = {"stats_config": json.loads(config.to_json()), "run_config": json.loads(run_config_json)}
    paths = write_stats(tables, out_dir, meta)
    atomic_write_text(Path(out_dir) / "config.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return tables, paths


def stats_for_run(
    run_dir: str | Path, config: StatsConfig | None = None, cache_root: str | Path | None = None
) -> tuple[StatsTables, dict[str, Path]]:
    """Recompute ``<run_dir>/stats/`` from the run's ``results.parquet`` and
    ``predictions.parquet`` (speakers from the caches under ``cache_root``)."""
    run_dir = Path(run_dir)
    results = pl.read_parquet(run_dir / "results.parquet")
    preds = pl.read_parquet(run_dir / "predictions.parquet")
    speakers = speakers_from_caches(results["model"].unique(maintain_order=True).to_list(),
                                    preds["test_corpus"].unique(maintain_order=True).to_list(), cache_root)
    run_json = results["config_json"][0] if "config_json" in results.columns and results.height else "{}"
    return run_stats(results, preds, config or StatsConfig(), run_dir / STATS_DIR, speakers, run_json)


def stats_of_grid(
    results: pl.DataFrame, predictions: pl.DataFrame, config: LayerwiseConfig, run_dir: Path
) -> tuple[StatsTables, dict[str, Path]]:
    """The statistics of a just-run grid (speakers from its caches) into ``<run_dir>/stats/``,
    with the gap figure; returns the tables and ``stats_<name>`` -> path."""
    from probes.stats.plot import plot_gaps

    speakers = speakers_from_caches(config.models, config.corpora, config.cache_root)
    tables, paths = run_stats(results, predictions, config.stats, run_dir / STATS_DIR, speakers, config.to_json())
    if not tables.gaps.is_empty():
        paths["gaps_png"], paths["gaps_svg"] = plot_gaps(tables.gaps, run_dir / STATS_DIR)
    return tables, {f"stats_{k}": v for k, v in paths.items()}


def load_stats(run_dir: str | Path) -> StatsTables | None:
    """The statistics saved in ``<run_dir>/stats/`` (None when the run has none), e.g. to
    redraw Figure 1 with its intervals."""
    folder = Path(run_dir) / STATS_DIR
    names = ("layer_ci", "layer_tests", "pair_tests", "gaps")
    if not all((folder / f"{n}.parquet").exists() for n in names):
        return None
    frames = {n: pl.read_parquet(folder / f"{n}.parquet") for n in names}
    sets_path = folder / BEST_SETS_FILE
    sets = json.loads(sets_path.read_text()) if sets_path.exists() else {}
    return StatsTables(**frames, best_sets=sets)
