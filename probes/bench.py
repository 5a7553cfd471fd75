"""``probes bench``: the layer-wise grid at the paper's real shape, three ways.

On synthetic caches of the paper's shape (two models x three corpora, ``n_layers`` x
``dim`` pooled features, ``n_utts`` utterances per corpus, a learnable signal; written with
``write_cache`` into a temporary cache root):

(a) the whole grid with the paper's protocol, stacked (target <= 5 min on 2 cores);
(b) the same conditions one head at a time with a plain per-minibatch loop like the
    paper's code (target (b)/(a) >= 5x, UA per layer within one point on average); with
    ``baseline_sample=K`` only K heads are trained and the time is extrapolated;
(c) the whole grid with ``logreg`` (target <= 30 s);
(d) the statistics of (a) (:mod:`probes.stats`): their time over the grid's (target <= 20 %).

It also counts the SSL forward passes: one per utterance per model from the cache, where
the paper's code runs the model over a condition's utterances again for every layer of
every fold.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl

from probes._baseline import train_plain
from probes._stacked import HeadTask
from probes.config import LayerwiseConfig, ProbeConfig
from probes.data import load_corpus
from probes.layerwise import evaluate_heads, limit_threads, plan_jobs, run_layerwise_full
from probes.stats.bench import bench_stats
from probes.synthetic import PAPER_CORPORA, PAPER_MODELS, write_synthetic_study

TARGET_STACKED_S = 300.0
TARGET_SPEEDUP = 5.0
TARGET_LOGREG_S = 30.0
TARGET_UA_POINTS = 1.0


@dataclass(frozen=True)
class BenchConfig:
    """Benchmark size and options.

    Attributes
    ----------
    n_utts : utterances per corpus (paper: 2000)
    n_layers, dim : hidden states and their width (wav2vec 2.0 base: 13 x 768)
    n_folds : folds (paper: 5)
    quick : 5 epochs instead of 100 and, unless given, a 2-head baseline sample
    baseline_sample : train only this many baseline heads and extrapolate (None: all)
    max_epochs : epochs of (a) and (b) (None: 100, or 5 with ``quick``)
    n_jobs : workers for (a) and (c) (default 2: the target machine's two cores); (b)
        trains one head at a time in this process with one thread, as the paper's code
        (a second BLAS thread makes such small products slower, not faster)
    seed : seed of the data and of the heads
    workdir : where to write the synthetic caches (None: a temporary directory)
    """

    n_utts: int = 2000
    n_layers: int = 13
    dim: int = 768
    n_folds: int = 5
    quick: bool = False
    baseline_sample: int | None = None
    max_epochs: int | None = None
    n_jobs: int = 2
    seed: int = 0
    workdir: Path | None = None

    def __post_init__(self) -> None:
        for name in ("n_utts", "n_layers", "dim", "n_folds", "n_jobs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_utts < 8 * self.n_folds:
            raise ValueError(f"n_utts={self.n_utts} is too few for {self.n_folds} folds (need >= {8 * self.n_folds})")
        if self.baseline_sample is not None and self.baseline_sample < 1:
            raise ValueError(f"baseline_sample must be >= 1, got {self.baseline_sample}")

    @property
    def epochs(self) -> int:
        """Epochs used for (a) and (b)."""
        return self.max_epochs or (5 if self.quick else 100)

    @property
    def sample(self) -> int | None:
        """Baseline heads actually trained (None: all)."""
        return self.baseline_sample if self.baseline_sample is not None else (2 if self.quick else None)


def run_bench(config: BenchConfig) -> dict:
    """Run (a), (b), (c) and return every figure as a JSON-able dict."""
    with tempfile.TemporaryDirectory(prefix="probes-bench-") as tmp:
        root = Path(config.workdir or tmp)
        t0 = time.perf_counter()
        write_synthetic_study(root, n_utts=config.n_utts, n_layers=config.n_layers, dim=config.dim,
                              n_folds=config.n_folds, seed=config.seed)
        write_s = time.perf_counter() - t0
        probe = ProbeConfig(max_epochs=config.epochs, seed=config.seed, n_jobs=config.n_jobs)
        grid = LayerwiseConfig(models=tuple(PAPER_MODELS), corpora=tuple(PAPER_CORPORA), n_folds=config.n_folds,
                               cache_root=root, out_dir=root / "runs" / "a", write_best=False, probe=probe)
        t0 = time.perf_counter()
        stacked = run_layerwise_full(grid)
        stacked_s = time.perf_counter() - t0
        stats = bench_stats(stacked, grid, stacked_s)  # probes.stats: their time / the grid's (<= 20 %)
        base = _baseline(grid, stacked.results, config.sample, n_threads=1)
        t0 = time.perf_counter()
        logreg = run_layerwise_full(replace(grid, out_dir=root / "runs" / "c", probe=replace(probe, head="logreg")))
        logreg_s = time.perf_counter() - t0
    n_conditions = stacked.results.select("model", "setting", "train_corpus", "test_corpus").unique().height
    n_heads = stacked.results.select("model", "train_corpus", "layer", "fold").unique().height
    speedup = base["extrapolated_s"] / stacked_s if stacked_s > 0 else float("inf")
    passes = _forward_passes(stacked.results, config)
    return {
        "shape": {"models": len(PAPER_MODELS), "corpora": len(PAPER_CORPORA), "n_utts": config.n_utts,
                  "n_layers": config.n_layers, "dim": config.dim, "n_folds": config.n_folds,
                  "max_epochs": config.epochs, "quick": config.quick, "n_jobs": config.n_jobs},
        "conditions": n_conditions, "heads_trained": n_heads, "cache_write_s": write_s,
        "a_stacked_s": stacked_s, "a_mean_epochs": float(stacked.results["epochs"].mean()),
        "a_cpu_note": "wall time with n_jobs workers; (b) is one process, one thread",
        "b_baseline": base, "b_over_a": speedup,
        "c_logreg_s": logreg_s,
        "a_ua_mean": float(stacked.results["ua"].mean()), "c_ua_mean": float(logreg.results["ua"].mean()),
        "forward_passes": passes,
        "stats": stats,
        "targets": {
            "stats_le_20pct": stats["pass"],
            "a_le_300s": stacked_s <= TARGET_STACKED_S, "b_over_a_ge_5": speedup >= TARGET_SPEEDUP,
            "ua_within_1_point": base["mean_abs_ua_diff_points"] <= TARGET_UA_POINTS,
            "c_le_30s": logreg_s <= TARGET_LOGREG_S,
        },
    }


def _baseline(grid: LayerwiseConfig, stacked: pl.DataFrame, sample: int | None, n_threads: int) -> dict:
    """(b): the grid's heads one at a time with the plain loop (all, or ``sample`` of them
    spread over the grid), tested like (a); time extrapolated to every head."""
    probe = grid.probe
    jobs = plan_jobs(grid)
    heads = [(job, fold, layer) for job in jobs for fold in job.folds for layer in range(_n_layers(stacked))]
    if sample is not None and sample < len(heads):
        picks = np.linspace(0, len(heads) - 1, sample).round().astype(int)
        chosen = [heads[i] for i in picks]
    else:
        chosen = heads
    rows, train_s = [], 0.0
    cache: dict[tuple[str, str], object] = {}
    with limit_threads(n_threads):
        for job, fold, layer in chosen:
            for name in {job.train_corpus, *(c for _, c in job.tests)}:
                if (job.model, name) not in cache:
                    cache[(job.model, name)] = load_corpus(job.model, name, grid.cache_root, None, grid.n_folds)
            train = cache[(job.model, job.train_corpus)]
            task = HeadTask(slot=train.slot(layer), layer=layer, fold=fold,
                            train_rows=train.rows(fold, "train"), valid_rows=train.rows(fold, "valid"))
            t0 = time.perf_counter()
            head = train_plain(train.features, train.labels, task, probe)
            train_s += time.perf_counter() - t0
            for setting, test_corpus in job.tests:
                r, _ = evaluate_heads([head], train, cache[(job.model, test_corpus)], setting, probe, grid.to_json())
                rows += r
    base = pl.DataFrame(rows).select("model", "setting", "train_corpus", "test_corpus", "layer", "fold",
                                     pl.col("ua").alias("ua_b"))
    both = base.join(stacked, on=["model", "setting", "train_corpus", "test_corpus", "layer", "fold"])
    per_layer = both.group_by("layer").agg(pl.col("ua").mean(), pl.col("ua_b").mean())
    diff = float((per_layer["ua"] - per_layer["ua_b"]).abs().mean() * 100)
    per_head = train_s / len(chosen)
    return {"heads_timed": len(chosen), "heads_total": len(heads), "timed_s": train_s,
            "per_head_s": per_head, "extrapolated_s": per_head * len(heads),
            "extrapolated": len(chosen) < len(heads), "mean_abs_ua_diff_points": diff,
            "max_abs_ua_diff_points": float((both["ua"] - both["ua_b"]).abs().max() * 100)}


def _n_layers(frame: pl.DataFrame) -> int:
    return int(frame["layer"].max()) + 1


def _forward_passes(frame: pl.DataFrame, config: BenchConfig) -> dict:
    """SSL forward passes: the cache needs one per utterance per model; the paper's code
    runs the model over a condition's train, valid and test utterances for every layer of
    every fold."""
    cached = len(PAPER_MODELS) * len(PAPER_CORPORA) * config.n_utts
    per_cond = frame.group_by(["model", "setting", "train_corpus", "test_corpus", "layer", "fold"]).agg(
        (pl.col("n_train") + pl.col("n_valid") + pl.col("n_test")).first().alias("n"))
    paper = int(per_cond["n"].sum())
    return {"cache": cached, "paper_code": paper, "ratio": paper / cached,
            "formula": "cache: models x corpora x utterances; paper code: sum over conditions, layers and "
                       "folds of (train + valid + test utterances)"}
