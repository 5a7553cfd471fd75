"""``crossling study-bench``: what each executor costs per job, and how many jobs the graph
lets run at once.

A demo-sized study (the demo's synthetic Mandarin speech, one small untrained wav2vec 2.0,
the probes and one fine-tuning run of ``folds`` folds, one epoch) runs once per executor,
each in its own folder: ``local`` (this process), ``slurm`` through submitit's local
executor (each job a subprocess: the real submission path without SLURM) and ``dask`` on
a local cluster. Per job, the driver times submission to completion and the job times its
own work; the difference is the scheduling overhead (submitting, starting a process,
unpickling the submitted call, polling, sending the result back). With a pool, the time a
job sat queued while the worker that took it still ran an earlier job is printed apart
(the pool's width: two workers per kind, not a cost of sending the job). A job's own work
includes loading its code (unpacking its :class:`study.graph.Packed` run imports torch and
the configs' packages in a fresh process): printed apart, as "loading". The graph's width
says how many jobs could run at once.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from featstore.models.testing import save_tiny_model
from featstore.synth import SynthConfig, synthesize_demo


def make_inputs(folder: Path) -> Path:
    """The benchmark's demo speech and tiny model under ``folder`` (made once, then reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "data" / "cn").exists():
        synthesize_demo(SynthConfig(out=folder / "data", per_emotion=2, languages=("cn",)))
    if not (folder / "models" / "w2v2-cn").exists():
        save_tiny_model(folder / "models" / "w2v2-cn", "wav2vec2", "pretraining", feat_extract_norm="group",
                        language="cn")
    return folder


BENCH_EXECUTORS: dict[str, tuple[str, int]] = {"local": ("local", 0), "slurm": ("slurm", 0),
                                               "slurm-pool": ("slurm", 2), "dask": ("dask", 0)}
"""What the benchmark can measure -> (``[study] executor``, ``[executor] pool``):
``slurm-pool`` is the slurm executor with two long-lived workers per resource kind."""


def write_study(inputs: Path, folder: Path, executor: str, folds: int, pool: int = 0) -> Path:
    """The benchmark study's TOML in ``folder`` (its own cache and run directory)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.toml"
    path.write_text(f"""[study]
name = "bench"
out = "out"
cache_root = "cache"
executor = "{executor}"
[corpora.esd]
reader = "esd"
root = "{inputs / 'data' / 'cn'}"
[models.w2v2-cn]
path = "{inputs / 'models' / 'w2v2-cn'}"
[extract]
frames = true
dtype = "float32"
[probes]
models = ["w2v2-cn"]
corpora = ["esd"]
head = "logreg"
[finetune]
folds = {folds}
device = "cpu"
[finetune.train]
max_epochs = 1
[[finetune.runs]]
model = "w2v2-cn"
strategy = "lora"
train_corpus = "esd"
test_corpus = "esd"
[executor]
cluster = "local"
workers = 2
poll_s = 0.05
pool = {pool}
[resources.extract]
gpus = 0
[resources.finetune]
gpus = 0
""", encoding="utf-8")
    return path


def run_bench(out: Path, executors: Sequence[str], folds: int = 5, max_overhead_s: float = 2.0
              ) -> tuple[list[str], bool]:
    """Run the benchmark study on each of ``executors``; return the report's lines and
    whether every executor's mean scheduling overhead per job is at most ``max_overhead_s``."""
    from study.config import load_study_config
    from study.runner import build_graph, run_study

    unknown = [e for e in executors if e not in BENCH_EXECUTORS]
    if unknown:
        from featstore.errors import unknown_name

        raise unknown_name("executor", unknown[0], BENCH_EXECUTORS)
    out = Path(out)
    inputs = make_inputs(out / "inputs")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    lines = [f"study-bench: demo-sized study, 1 model, 1 corpus, fine-tuning {folds} folds x 1 epoch (CPU)"]
    passed = True
    for name in executors:
        kind, pool = BENCH_EXECUTORS[name]
        config = load_study_config(write_study(inputs, out / f"{stamp}-{name}", kind, folds, pool))
        graph = build_graph(config, split=kind != "local")
        stats: list = []
        run_study(config, log=lambda _line: None, stats=stats)
        result = stats[0]
        overheads = result.overhead_s()
        work = sum(j["duration_s"] for j in result.jobs)
        mean = statistics.fmean(overheads) if overheads else 0.0
        loads = result.load_s()
        load_mean = statistics.fmean(loads) if loads else 0.0
        waits = result.waited_s()
        waited = (f"; waiting for a busy pool worker (the pool's width, apart from the overhead) mean "
                  f"{statistics.fmean(waits):.2f} s per job") if any(waits) else ""
        ok = mean <= max_overhead_s
        total_ok = mean + load_mean <= max_overhead_s
        passed &= ok
        lines.append(
            f"{name:>10}: {len(overheads)} jobs sent, {len(graph)} in the graph; wall {result.wall_s:.1f} s, "
            f"work {work:.1f} s; overhead per job mean {mean:.2f} s, max {max(overheads, default=0.0):.2f} s "
            f"[{'PASS' if ok else 'FAIL'} <= {max_overhead_s:g} s]{waited}; of the work, loading the job's code "
            f"(imports in the job's process) mean {load_mean:.2f} s per job; overhead + loading "
            f"{mean + load_mean:.2f} s per job [{'PASS' if total_ok else 'FAIL'} <= {max_overhead_s:g} s]; "
            f"jobs at once: graph allows {graph.max_width()} "
            f"({graph.max_width(['finetune', 'finetune-fold'])} fine-tuning), ran {max(result.max_in_flight, 1)}")
    return lines, passed
