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

Two ratios travel between machines (:func:`weighted_bench`, :func:`flop_floor`): the
weighted-sum probes' time over (a) (target <= 1: at most one per-layer grid's worth), and
(a) over its FLOP floor: the useful FLOPs of the epochs each head actually trained
(forward, backward, AdamW) at this machine's measured throughput for the same batched
matrix shapes on all its cores, timed in the same run (target <= 2).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
import torch

from featstore.malloc import keep_freed_memory
from probes._baseline import train_plain
from probes._stacked import HeadTask, make_optimizer, stack_chunks
from probes.config import LayerwiseConfig, ProbeConfig
from probes.data import load_corpus
from probes.heads import HEADS
from probes.layerwise import evaluate_heads, limit_threads, plan_jobs, run_layerwise_full
from probes.stats.bench import bench_stats
from probes.synthetic import PAPER_CORPORA, PAPER_MODELS, write_synthetic_study

TARGET_STACKED_S = 300.0
TARGET_SPEEDUP = 5.0
TARGET_LOGREG_S = 30.0
TARGET_UA_POINTS = 1.0
TARGET_WEIGHTED_OVER_GRID = 1.0
TARGET_FLOOR_RATIO = 2.0


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
        # messages name the options of ``probes bench``, the one place this config is built from
        for name, option in (("n_utts", "--n-utts"), ("n_layers", "--n-layers"), ("dim", "--dim"),
                             ("n_folds", "--folds"), ("n_jobs", "--n-jobs")):
            if getattr(self, name) < 1:
                raise ValueError(f"{option} must be >= 1, got {getattr(self, name)}")
        if self.n_utts < 8 * self.n_folds:
            raise ValueError(f"--n-utts {self.n_utts} is too few for --folds {self.n_folds} "
                             f"(need >= {8 * self.n_folds})")
        if self.baseline_sample is not None and self.baseline_sample < 1:
            raise ValueError(f"--baseline-sample must be >= 1, got {self.baseline_sample}")

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
                               cache_root=root, out_dir=root / "runs" / "a", write_best=False, probe=probe,
                               weighted=False)  # (a) is the per-layer grid alone; weighted sums timed apart
        # the floor's throughput on this side of the grid too (the same shapes: groups of
        # n_layers x n_folds heads, the folds' validation size)
        first = load_corpus(next(iter(PAPER_MODELS)), next(iter(PAPER_CORPORA)), root, (0,), config.n_folds,
                            probe.stat)  # one layer: only its folds' sizes are needed here
        before = floor_throughput_all_cores(HEADS[probe.head].widths(config.dim, 4),
                                            usual_stack([config.n_layers * config.n_folds], probe.max_stack), probe,
                                            max(first.rows(f, "valid").size for f in range(config.n_folds)),
                                            _cores())
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        stacked = run_layerwise_full(grid)
        stacked_s, stacked_cpu_s = time.perf_counter() - t0, cpu_seconds() - cpu0
        stats = bench_stats(stacked, grid, stacked_s)  # probes.stats: their time / the grid's (<= 20 %)
        base = _baseline(grid, stacked.results, config.sample, n_threads=1)
        t0 = time.perf_counter()
        logreg = run_layerwise_full(replace(grid, out_dir=root / "runs" / "c", probe=replace(probe, head="logreg")))
        logreg_s = time.perf_counter() - t0
        weighted = weighted_bench(grid, root / "runs" / "w", stacked_s)  # weighted-sum probes vs (a)
        floor = flop_floor(stacked.results, probe, config.dim, stacked_s, stacked_cpu_s,  # (a) vs its floor
                           before=before)
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
        "weighted": weighted, "flop_floor": floor,
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


def weighted_bench(grid: LayerwiseConfig, out_dir: Path, grid_s: float) -> dict:
    """Train and test the weighted-sum probes of ``grid`` (its workers) into ``out_dir``;
    their time over the per-layer grid's ``grid_s`` (target <= 1)."""
    from probes.weighted import run_weighted

    t0 = time.perf_counter()
    run = run_weighted(plan_jobs(grid), grid, out_dir)
    seconds = time.perf_counter() - t0
    ratio = seconds / grid_s if grid_s > 0 else float("inf")
    return {"seconds": seconds, "over_grid": ratio, "probes": run.results.select("model", "train_corpus", "fold")
            .unique().height, "ua_mean": float(run.results["ua"].mean()),
            "target_over_grid_le_1": ratio <= TARGET_WEIGHTED_OVER_GRID}


def head_flops(widths: tuple[int, ...], n_train: int, n_valid: int, batch_size: int, epochs: int) -> dict:
    """Useful FLOPs of one head over ``epochs`` epochs: matrix products of the forward and
    backward passes on the training part (no input gradient for the first layer), the
    validation forward pass, and AdamW element updates (one per parameter per step)."""
    pairs = list(zip(widths[:-1], widths[1:], strict=True))
    mac = sum(i * o for i, o in pairs)
    forward = 2 * n_train * mac
    backward = 2 * n_train * mac + 2 * n_train * (mac - pairs[0][0] * pairs[0][1])
    valid = 2 * n_valid * mac
    steps = math.ceil(n_train / batch_size)
    return {"forward": epochs * forward, "backward": epochs * backward, "valid": epochs * valid,
            "optimizer_elements": epochs * steps * sum(i * o + o for i, o in pairs)}


def _best_time(fn: object, min_s: float = 0.02, reps: int = 3) -> float:
    """Best CPU seconds per call of ``fn`` on this thread (``time.thread_time``: what other
    processes on a shared machine take is not counted) over ``reps`` runs of >= ``min_s``."""
    fn()  # warm up
    n = 1
    while True:
        t0 = time.thread_time()
        for _ in range(n):
            fn()
        if time.thread_time() - t0 >= min_s or n >= 1 << 16:
            break
        n *= 2
    best = float("inf")
    for _ in range(reps):
        t0 = time.thread_time()
        for _ in range(n):
            fn()
        best = min(best, (time.thread_time() - t0) / n)
    return max(best, 1e-12)


def measure_throughput(widths: tuple[int, ...], n_stack: int, batch_size: int, n_valid: int,
                       probe: ProbeConfig) -> dict:
    """One core's throughput for the trainer's own shapes, in CPU time on one thread:
    FLOP/s of the batched products (``torch.bmm``, ``n_stack`` heads) of the forward pass,
    the weight and input gradients and the validation pass, and CPU seconds per AdamW
    element update (the step of :func:`probes._stacked.make_optimizer`)."""
    pairs = list(zip(widths[:-1], widths[1:], strict=True))
    g = torch.Generator().manual_seed(0)
    flops = {"forward": 0.0, "backward": 0.0, "valid": 0.0}
    times = {"forward": 0.0, "backward": 0.0, "valid": 0.0}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    keep_freed_memory()  # as the trainer runs (probes._stacked.train_group)
    try:
        for k, (i, o) in enumerate(pairs):
            # the trainer's own products (probes._stacked._StackedLinear): weights (H, out, in)
            x = torch.rand(n_stack, batch_size, i, generator=g)
            w = torch.rand(n_stack, o, i, generator=g)
            dy = torch.rand(n_stack, batch_size, o, generator=g)
            xv = torch.rand(n_stack, n_valid, i, generator=g)
            step = 2 * n_stack * batch_size * i * o
            times["forward"] += _best_time(lambda x=x, w=w: torch.bmm(x, w.transpose(1, 2)))
            flops["forward"] += step
            times["backward"] += _best_time(lambda x=x, dy=dy: torch.bmm(dy.transpose(1, 2), x))
            flops["backward"] += step
            if k > 0:  # no input gradient for the first layer (the features)
                times["backward"] += _best_time(lambda dy=dy, w=w: torch.bmm(dy, w))
                flops["backward"] += step
            times["valid"] += _best_time(lambda xv=xv, w=w: torch.bmm(xv, w.transpose(1, 2)))
            flops["valid"] += 2 * n_stack * n_valid * i * o
        params = [torch.nn.Parameter(torch.rand(n_stack, i, o, generator=g)) for i, o in pairs]
        params += [torch.nn.Parameter(torch.rand(n_stack, 1, o, generator=g)) for _, o in pairs]
        for p in params:
            p.grad = torch.rand(p.shape, generator=g)
        opt = make_optimizer(params, probe)
        opt_s = _best_time(opt.step)
        n_elements = sum(p.numel() for p in params)
    finally:
        torch.set_num_threads(before)
    return {**{f"{k}_flop_per_s": flops[k] / times[k] for k in flops},
            "optimizer_s_per_element": opt_s / n_elements, "stack": n_stack}


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its live child processes (the
    grid's loky workers): a difference of two calls is what a run cost in CPU time,
    whatever else the machine was running."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:  # exited in between
            continue
    return total


def flop_floor(results: pl.DataFrame, probe: ProbeConfig, dim: int, grid_s: float, grid_cpu_s: float | None = None,
               n_classes: int = 4, before: dict | None = None, all_cores: bool = True) -> dict:
    """(a)'s floor: the FLOPs of the epochs its heads actually ran (each head once, from the
    ``epochs``, ``n_train`` and ``n_valid`` of ``results``) at one core's measured
    throughput for the same shapes (:func:`measure_throughput`, the stack size the trainer
    used most) while every core runs it (:func:`floor_throughput_all_cores`; ``all_cores``
    False: one core measured alone, as if the cores shared nothing), spread over all cores.

    ``before``: the throughput measured before the grid for the same shapes
    (:func:`floor_throughput`); the floor is then the lower of the floors at that and at
    the throughput measured now (the machine's best, as each measurement is a best of
    repeated runs), so a machine whose speed drifts during the grid (a shared VM) is
    measured on both sides of it. A ``before`` of other shapes is not used.

    Returns the floor in CPU seconds (one core) and in wall seconds (all cores), the
    grid's wall time ``grid_s`` over the wall floor (target <= 2) and, with
    ``grid_cpu_s``, the grid's CPU time over the CPU floor (the same ratio on an idle
    machine; it does not grow when other processes share the cores).
    """
    widths = HEADS[probe.head].widths(dim, n_classes)
    heads = results.unique(["model", "train_corpus", "layer", "fold"])
    total = {"forward": 0, "backward": 0, "valid": 0, "optimizer_elements": 0}
    for epochs, n_train, n_valid in heads.select("epochs", "n_train", "n_valid").iter_rows():
        for k, v in head_flops(widths, n_train, n_valid, probe.batch_size, epochs).items():
            total[k] += v
    n_cores = _cores()
    groups = heads.group_by("model", "train_corpus", "n_train", "n_valid").len()["len"].to_list()
    n_stack = usual_stack(groups, probe.max_stack)
    n_valid = int(heads["n_valid"].max())
    now = (floor_throughput_all_cores(widths, n_stack, probe, n_valid, n_cores) if all_cores
           else floor_throughput(widths, n_stack, probe, n_valid))
    same_shapes = before is not None and all(before.get(k) == now[k] for k in ("stack", "n_valid", "widths"))
    rates = [before, now] if same_shapes else [now]
    parts = [_floor_parts(total, rate) for rate in rates]
    part = min(parts, key=lambda p: sum(p.values()))
    floor_cpu_s = sum(part.values())
    floor_s = floor_cpu_s / n_cores
    ratio = grid_s / floor_s if floor_s > 0 else float("inf")
    out = {"heads": heads.height, "head_epochs": int(heads["epochs"].sum()),
           "gflop": (total["forward"] + total["backward"] + total["valid"]) / 1e9,
           "optimizer_updates": total["optimizer_elements"], "throughput": rates[-1],
           "floor_cpu_s_each_measurement": [sum(p.values()) for p in parts],
           "before_used": same_shapes,
           "floor_cpu_s_by_part": part, "floor_cpu_s": floor_cpu_s, "cores": n_cores, "floor_s": floor_s,
           "grid_s": grid_s, "grid_over_floor": ratio, "target_le_2": ratio <= TARGET_FLOOR_RATIO,
           "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    if grid_cpu_s is not None:
        out["grid_cpu_s"] = grid_cpu_s
        out["grid_cpu_over_floor_cpu"] = grid_cpu_s / floor_cpu_s if floor_cpu_s > 0 else float("inf")
        out["cpu_target_le_2"] = out["grid_cpu_over_floor_cpu"] <= TARGET_FLOOR_RATIO
    return out


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def usual_stack(group_sizes: list[int], max_stack: int) -> int:
    """The stack size most heads train in, for groups of ``group_sizes`` heads split as the
    trainer splits them (:func:`probes._stacked.stack_chunks`)."""
    count: dict[int, int] = {}
    for n in group_sizes:
        for part in stack_chunks(n, max_stack):
            size = len(range(n)[part])
            count[size] = count.get(size, 0) + size
    return max(count, key=lambda size: (count[size], size)) if count else 1


def floor_throughput(widths: tuple[int, ...], n_stack: int, probe: ProbeConfig, n_valid: int) -> dict:
    """:func:`measure_throughput` for a floor (the trainer's minibatch size), with the
    shapes it was measured for."""
    rate = measure_throughput(widths, n_stack, probe.batch_size, n_valid, probe)
    return {**rate, "n_valid": int(n_valid), "widths": [int(w) for w in widths]}


def floor_throughput_all_cores(widths: tuple[int, ...], n_stack: int, probe: ProbeConfig, n_valid: int,
                               n_cores: int) -> dict:
    """:func:`floor_throughput` on every core at once, as the grid runs (one worker per
    core sharing the caches and the memory bus): ``n_cores`` fresh processes start their
    measurement together and keep their core busy until the last has finished; the
    per-core figure is the mean of theirs (``per_core`` lists each). Fresh processes also
    keep the allocator setting (:func:`featstore.malloc.keep_freed_memory`) out of this
    one, where (b), the paper code's loop, runs with its defaults."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, finished, out = ctx.Barrier(n_cores), ctx.Value("i", 0), ctx.Queue()
    procs = [ctx.Process(target=_throughput_worker, args=((widths, n_stack, probe, n_valid, n_cores),
                                                          barrier, finished, out), daemon=True)
             for _ in range(n_cores)]
    for proc in procs:
        proc.start()
    try:
        rates = [out.get(timeout=900) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=60)
    mean = {k: sum(r[k] for r in rates) / len(rates) for k in rates[0]
            if k.endswith("_flop_per_s") or k == "optimizer_s_per_element"}
    return {**rates[0], **mean, "cores_measured": n_cores, "per_core": rates}


def _throughput_worker(args: tuple, barrier: object, finished: object, out: object) -> None:
    widths, n_stack, probe, n_valid, n_workers = args
    barrier.wait()  # type: ignore[attr-defined]
    rate = floor_throughput(widths, n_stack, probe, n_valid)
    with finished.get_lock():  # type: ignore[attr-defined]
        finished.value += 1  # type: ignore[attr-defined]
    x = torch.rand(n_stack, probe.batch_size, widths[0])
    w = torch.rand(n_stack, widths[1], widths[0])
    while finished.value < n_workers:  # type: ignore[attr-defined]
        torch.bmm(x, w.transpose(1, 2))  # keep this core as busy as the others until all have measured
    out.put(rate)  # type: ignore[attr-defined]


def _floor_parts(total: dict, rate: dict) -> dict:
    part = {k: total[k] / rate[f"{k}_flop_per_s"] for k in ("forward", "backward", "valid")}
    part["optimizer"] = total["optimizer_elements"] * rate["optimizer_s_per_element"]
    return part
