"""``probes layerwise``, ``probes plot`` and ``probes bench``: thin shells over
:func:`probes.layerwise.run_layerwise_full`, :func:`probes.plot.plot_figure1` and
:func:`probes.bench.run_bench`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from featstore.console import (
    aliased,
    check_corpora,
    error_message,
    fail,
    field_default,
    field_help,
    in_option_terms,
    print_line,
)
from probes.config import BACKENDS, LayerwiseConfig, ProbeConfig
from probes.heads import HEADS
from probes.settings import SETTINGS
from probes.stats.config import StatsConfig

console = Console()


def _csv(text: str, what: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in text.split(",") if v.strip())
    if not items:
        raise typer.BadParameter(f"give at least one {what}")
    return items


def _settings(text: str) -> tuple[str, ...]:
    if text.strip() == "all":
        return SETTINGS
    items = _csv(text, "setting")
    bad = [s for s in items if s not in SETTINGS]
    if bad:
        raise typer.BadParameter(f"unknown setting(s) {bad}; choose from {list(SETTINGS)} or 'all'")
    return items


def _layers(text: str) -> tuple[int, ...] | None:
    if text.strip() == "all":
        return None
    try:
        return tuple(int(v) for v in _csv(text, "layer"))
    except ValueError as err:
        raise typer.BadParameter(f"layers must be 'all' or comma-separated integers, got {text!r}") from err


def summary_tables(frame: pl.DataFrame) -> list[Table]:
    """One rich table per model: a row per layer, a column per condition, UA mean ± std (%)
    over folds; the best layer of each column in bold."""
    from probes.results import summarise

    summary = summarise(frame)
    tables = []
    for model in sorted(summary["model"].unique().to_list()):
        sub = summary.filter(pl.col("model") == model)
        conds = sub.select("setting", "train_corpus", "test_corpus").unique().sort(
            pl.col("setting").replace_strict({s: i for i, s in enumerate(SETTINGS)}, default=9), "train_corpus",
            "test_corpus")
        table = Table(title=f"{model}: UA (%) mean ± std over folds")
        table.add_column("layer", justify="right")
        cells: dict[int, list[str]] = {}
        for cond in conds.iter_rows(named=True):
            table.add_column(f"{cond['setting']}\n{cond['train_corpus']}→{cond['test_corpus']}", justify="right")
            part = sub.filter((pl.col("setting") == cond["setting"]) & (pl.col("train_corpus") == cond["train_corpus"])
                              & (pl.col("test_corpus") == cond["test_corpus"]))
            best = part.sort(["ua_mean", "layer"], descending=[True, False])["layer"][0]
            for row in part.iter_rows(named=True):
                text = f"{100 * row['ua_mean']:.1f} ± {100 * row['ua_std']:.1f}"
                cells.setdefault(row["layer"], []).append(f"[bold]{text}[/bold]" if row["layer"] == best else text)
        for layer in sorted(cells):
            table.add_row(str(layer), *cells[layer])
        tables.append(table)
    return tables


_P = ProbeConfig
_S = StatsConfig
_STATS_OPTIONS = ("enabled", "n_resamples", "alpha", "seed", "correction", "min_speakers")
_L = LayerwiseConfig
_PC = "probes.config:ProbeConfig"
_LC = "probes.config:LayerwiseConfig"
CONFIG_FIELDS: dict[str, dict[str, str]] = {
    "layerwise": {
        **{name: f"{_PC}.{name}" for name in (
            "head", "seed", "lr", "eps", "weight_decay", "max_epochs", "batch_size", "patience", "standardize",
            "logreg_c", "logreg_max_iter", "stat", "n_jobs", "backend", "scheduler", "threads_per_worker",
            "split_folds", "max_stack")},
        "folds": f"{_LC}.n_folds", "run_name": f"{_LC}.run_name", "write_best": f"{_LC}.write_best",
        **{f"stats_{name}": f"probes.stats.config:StatsConfig.{name}" for name in _STATS_OPTIONS},
        "weighted": f"{_LC}.weighted", "weighted_lr_scale": f"{_LC}.weighted_lr_scale",
    },
}
"""Options that set a config field (``module:Class.field``): their defaults come from the
field, and a test checks them."""


def _h(cls: type, name: str, fallback: str) -> str:
    return field_help(cls, name, fallback)


def layerwise(
    setting: Annotated[str, typer.Option(help="mono, cross, trans, a comma list, or all")] = "all",
    models: Annotated[str, typer.Option(help="Comma-separated model aliases")] = ",".join(field_default(_L, "models")),
    corpora: Annotated[str, typer.Option(help="Comma-separated prepared corpora")] = ",".join(field_default(_L, "corpora")),
    head: Annotated[str, typer.Option(help=_h(_P, "head", f"Probe head: {', '.join(HEADS)}"))] = field_default(_P, "head"),
    layers: Annotated[str, typer.Option(help="Hidden states to probe: all or e.g. 0,6,12")] = "all",
    folds: Annotated[int, typer.Option(help=_h(_L, "n_folds", "Use folds 0..N-1 of each fold table"))] = field_default(_L, "n_folds"),
    seed: Annotated[int, typer.Option(help=_h(_P, "seed", "Root seed of every head's generator"))] = field_default(_P, "seed"),
    lr: Annotated[float, typer.Option(help=_h(_P, "lr", "AdamW learning rate"))] = field_default(_P, "lr"),
    eps: Annotated[float, typer.Option(help=_h(_P, "eps", "AdamW epsilon"))] = field_default(_P, "eps"),
    weight_decay: Annotated[float, typer.Option(help=_h(_P, "weight_decay", "AdamW weight decay"))] = field_default(_P, "weight_decay"),
    max_epochs: Annotated[int, typer.Option(help=_h(_P, "max_epochs", "Epochs at most (early stopping)"))] = field_default(_P, "max_epochs"),
    batch_size: Annotated[int, typer.Option(help=_h(_P, "batch_size", "Utterances per minibatch"))] = field_default(_P, "batch_size"),
    patience: Annotated[int, typer.Option(help=_h(_P, "patience", "Epochs without lower validation loss before stopping"))] = field_default(_P, "patience"),
    standardize: Annotated[bool, typer.Option(help=_h(_P, "standardize", "Z-score mlp/linear inputs with training statistics (the paper does not)"))] = field_default(_P, "standardize"),
    logreg_c: Annotated[float, typer.Option(help=_h(_P, "logreg_c", "logreg inverse L2 strength C"))] = field_default(_P, "logreg_c"),
    logreg_max_iter: Annotated[int, typer.Option(help=_h(_P, "logreg_max_iter", "logreg L-BFGS iterations"))] = field_default(_P, "logreg_max_iter"),
    stat: Annotated[str, typer.Option(help=_h(_P, "stat", "Pooled statistic: mean or std"))] = field_default(_P, "stat"),
    n_jobs: Annotated[int, typer.Option(help=_h(_P, "n_jobs", "Parallel workers, -1 = all cores"))] = field_default(_P, "n_jobs"),
    backend: Annotated[str, typer.Option(help=_h(_P, "backend", f"Parallel backend: {', '.join(BACKENDS)}"))] = field_default(_P, "backend"),
    scheduler: Annotated[str | None, typer.Option(help=_h(_P, "scheduler", "Dask scheduler address for --backend dask"))] = field_default(_P, "scheduler"),
    threads_per_worker: Annotated[int, typer.Option(help=_h(_P, "threads_per_worker", "BLAS/torch threads per worker"))] = field_default(_P, "threads_per_worker"),
    split_folds: Annotated[bool, typer.Option(help=_h(_P, "split_folds", "One job per (training corpus, fold); else one per corpus"))] = field_default(_P, "split_folds"),
    max_stack: Annotated[int, typer.Option(help=_h(_P, "max_stack", "Most heads trained as one stacked model; speed only"))] = field_default(_P, "max_stack"),
    cache_root: Annotated[Path | None, typer.Option(help="Cache root; default $CROSSLING_CACHE or ./cache")] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory; default <cache>/runs/probes/<run-name>")] = None,
    run_name: Annotated[str | None, typer.Option(help=_h(_L, "run_name", "Run directory name; default head, seed, UTC time"))] = field_default(_L, "run_name"),
    write_best: Annotated[bool, typer.Option(help=_h(_L, "write_best", "Update <cache>/runs/probes/best_layers.json"))] = field_default(_L, "write_best"),
    stats_enabled: Annotated[bool, typer.Option("--stats/--no-stats", help=_h(_S, "enabled", ""))] = field_default(_S, "enabled"),
    stats_n_resamples: Annotated[int, typer.Option("--stats-resamples", help=_h(_S, "n_resamples", ""))] = field_default(_S, "n_resamples"),
    stats_alpha: Annotated[float, typer.Option(help=_h(_S, "alpha", ""))] = field_default(_S, "alpha"),
    stats_seed: Annotated[int, typer.Option(help=_h(_S, "seed", ""))] = field_default(_S, "seed"),
    stats_correction: Annotated[str, typer.Option(help=_h(_S, "correction", ""))] = field_default(_S, "correction"),
    stats_min_speakers: Annotated[int, typer.Option(help=_h(_S, "min_speakers", ""))] = field_default(_S, "min_speakers"),
    weighted: Annotated[bool, typer.Option(help=_h(_L, "weighted", "Also train weighted-sum probes"))] = field_default(_L, "weighted"),
    weighted_lr_scale: Annotated[float, typer.Option(help=_h(_L, "weighted_lr_scale", "Layer-weight learning-rate multiplier"))] = field_default(_L, "weighted_lr_scale"),
) -> None:
    """The paper's layer-wise analysis (Figure 1) from the feature cache."""
    from probes.data import ProbeDataError
    from probes.layerwise import run_layerwise_full

    try:
        probe = ProbeConfig(
            head=head, lr=lr, eps=eps, weight_decay=weight_decay, max_epochs=max_epochs, batch_size=batch_size,
            patience=patience, seed=seed, standardize=standardize, logreg_c=logreg_c,
            logreg_max_iter=logreg_max_iter, stat=stat, n_jobs=n_jobs, backend=backend, scheduler=scheduler,
            threads_per_worker=threads_per_worker, split_folds=split_folds,
            max_stack=max_stack)
        config = LayerwiseConfig(
            models=_csv(models, "model"), corpora=_csv(corpora, "corpus"), settings=_settings(setting),
            layers=_layers(layers), n_folds=folds, cache_root=cache_root, out_dir=out, run_name=run_name,
            write_best=write_best, probe=probe,
            stats=StatsConfig(enabled=stats_enabled, n_resamples=stats_n_resamples, alpha=stats_alpha, seed=stats_seed,
                              correction=stats_correction, min_speakers=stats_min_speakers),
            weighted=weighted, weighted_lr_scale=weighted_lr_scale)
    except ValueError as err:
        raise typer.BadParameter(in_option_terms(str(err), CONFIG_FIELDS["layerwise"])) from err
    check_corpora(list(config.corpora), cache_root)
    try:
        run = run_layerwise_full(config, progress=True)
    except (ProbeDataError, FileNotFoundError, KeyError, ValueError) as err:
        fail(error_message(err))
    for table in summary_tables(run.results):
        console.print(table)
    print_line(f"best layers: {json.dumps(run.best)}")
    print_line(f"results: {run.paths['results']} (+ .csv), predictions: {run.paths['predictions']}")
    print_line(f"Figure 1: {run.paths['figure_png']}, {run.paths['figure_svg']}")
    if "stats_layer_ci" in run.paths:
        print_line(f"statistics: {run.paths['stats_layer_ci'].parent} (intervals, tests, best-layer sets, gaps)")
    if "weighted_results" in run.paths:  # weighted-sum probes (probes.weighted)
        print_line(f"weighted-sum probes: {run.paths['weighted_results']} (+ .csv), layer weights: "
                   f"{run.paths['layer_weights']} (+ .csv), {run.paths['layer_weights_png']}")


def plot(
    results_table: Annotated[Path, typer.Argument(help="results.parquet (or .csv) of a layerwise run")],
    out: Annotated[Path | None, typer.Option(help="Output directory (default: the table's directory)")] = None,
    per_corpus: Annotated[bool, typer.Option(help="One line per corpus of a setting, else their mean")] = True,
) -> None:
    """Redraw Figure 1 (PNG and SVG) from a results table."""
    from probes.plot import plot_figure1
    from probes.results import load_results

    try:
        from probes.stats.run import load_stats

        frame = load_results(results_table)
        beside = results_table.parent / "weighted_results.parquet"  # weighted-sum probes' flat lines
        weighted = load_results(beside) if beside.exists() else None
        png, svg = plot_figure1(frame, out or results_table.parent, per_corpus=per_corpus,
                                stats=load_stats(results_table.parent), weighted=weighted)  # intervals when the run has them
    except (FileNotFoundError, ValueError, OSError, pl.exceptions.PolarsError) as err:
        fail(error_message(err))
    print_line(f"Figure 1: {png}, {svg}")


def bench(
    n_utts: Annotated[int, typer.Option(help="Utterances per corpus (the paper's)")] = 2000,
    n_layers: Annotated[int, typer.Option(help="Hidden states per model (13: wav2vec 2.0 base)")] = 13,
    dim: Annotated[int, typer.Option(help="Feature width")] = 768,
    folds: Annotated[int, typer.Option(help="Folds")] = 5,
    quick: Annotated[bool, typer.Option(help="5 epochs and a 2-head baseline sample")] = False,
    baseline_sample: Annotated[int | None, typer.Option(help="Time only K baseline heads and extrapolate (default: all; 2 with --quick)")] = None,
    max_epochs: Annotated[int | None, typer.Option(help="Epochs for (a) and (b) (default: 100; 5 with --quick)")] = None,
    n_jobs: Annotated[int, typer.Option(help="Workers for (a) and (c); (b) runs one head at a time on one thread (the 2-core target)")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of data and heads")] = 0,
    workdir: Annotated[Path | None, typer.Option(help="Keep the synthetic caches here (default: a temporary dir)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON instead of a table")] = False,
) -> None:
    """Benchmark the layer-wise grid at the paper's shape: stacked vs one-head-at-a-time vs logreg."""
    from probes.bench import BenchConfig, run_bench

    try:
        config = BenchConfig(n_utts=n_utts, n_layers=n_layers, dim=dim, n_folds=folds, quick=quick,
                             baseline_sample=baseline_sample, max_epochs=max_epochs, n_jobs=n_jobs, seed=seed,
                             workdir=workdir)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    with console.status("running the benchmark (a: stacked, b: plain loop, c: logreg)"):
        report = run_bench(config)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    base = report["b_baseline"]
    table = Table(title=f"probes bench: {report['heads_trained']} heads, {report['conditions']} conditions, "
                        f"{report['shape']['max_epochs']} max epochs")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target")
    t = report["targets"]
    table.add_row(f"(a) stacked grid, {report['shape']['n_jobs']} worker(s)", f"{report['a_stacked_s']:.1f} s",
                  f"<= 300 s: {t['a_le_300s']}")
    how = f"extrapolated from {base['heads_timed']} of {base['heads_total']} heads" if base["extrapolated"] else "all heads"
    table.add_row("(b) one head at a time, 1 thread", f"{base['extrapolated_s']:.1f} s", how)
    table.add_row("(b)/(a)", f"{report['b_over_a']:.1f}x", f">= 5x: {t['b_over_a_ge_5']}")
    table.add_row("UA |a-b| per layer, mean", f"{base['mean_abs_ua_diff_points']:.2f} points",
                  f"<= 1 point: {t['ua_within_1_point']}")
    table.add_row("(c) logreg grid", f"{report['c_logreg_s']:.1f} s", f"<= 30 s: {t['c_le_30s']}")
    st = report["stats"]  # probes.stats
    table.add_row(f"(d) statistics, {st['n_resamples']} resamples", f"{st['stats_s']:.1f} s",
                  f"{100 * st['ratio']:.1f} % of the grid, <= {100 * st['target']:.0f} %: {t['stats_le_20pct']}")
    w, f = report["weighted"], report["flop_floor"]  # weighted-sum probes and the FLOP floor
    table.add_row(f"weighted-sum probes ({w['probes']}), same workers", f"{w['seconds']:.1f} s",
                  f"{w['over_grid']:.2f}x (a), <= 1x: {w['target_over_grid_le_1']}")
    each = f.get("floor_cpu_s_each_measurement", [])
    measured = (" (the lower of before and after: " + " and ".join(f"{c / f['cores']:.1f} s" for c in each) + ")"
                if len(each) > 1 else "")
    table.add_row(f"(a) FLOP floor: {f['gflop']:.0f} GFLOP + AdamW, {f['cores']} core(s){measured}",
                  f"{f['floor_s']:.1f} s", f"(a)/floor {f['grid_over_floor']:.2f}x, <= 2x: {f['target_le_2']}")
    if "grid_cpu_s" in f:
        table.add_row(f"(a) CPU time / floor CPU time (load {f['load_average_1min'] or 0:.1f})", f"{f['grid_cpu_s']:.1f} s",
                      f"{f['grid_cpu_over_floor_cpu']:.2f}x, <= 2x: {f['cpu_target_le_2']}")
    passes = report["forward_passes"]
    table.add_row("SSL forward passes: cache", f"{passes['cache']:,}", "1 per utterance per model")
    table.add_row("SSL forward passes: paper code", f"{passes['paper_code']:,}", f"{passes['ratio']:.0f}x the cache")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("layerwise", short_help="Layer-wise probes over the feature cache (Figure 1).",
                cls=aliased({"--model": "--models"}))(layerwise)
    app.command("plot", short_help="Redraw Figure 1 from a results table.")(plot)
    app.command("bench", short_help="Benchmark the layer-wise grid at the paper's shape.",
                cls=aliased({"--layers": "--n-layers"}))(bench)
