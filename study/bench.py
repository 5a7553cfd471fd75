"""``crossling study-bench``: what each executor costs per job, and how many jobs the graph
lets run at once.

A demo-sized study (the demo's synthetic Mandarin speech, one small untrained wav2vec 2.0,
the probes and one fine-tuning run of ``folds`` folds, one epoch) runs once per executor,
each in its own folder: ``local`` (this process), ``slurm`` through submitit's local
executor (each job a subprocess: the real submission path without SLURM) and ``dask`` on
a local cluster. Per job, the driver times submission to completion and the job times its
own work; the difference is the scheduling overhead (submitting, starting a process,
unpickling the submitted call, polling, sending the result back). The time a job sat
queued while the worker that took it ran other jobs (two Dask workers, two pool workers
per kind) is the executor's width, not a cost of sending the job: printed apart
(:meth:`study.graph.RunStats.waited_s`). A job's own work includes loading its code
(unpacking its :class:`study.graph.Packed` run imports torch and the configs' packages in
a fresh process): printed apart, as "loading". The graph's width says how many jobs could
run at once; "sent together" how many the driver had in flight, "ran" how many ran at the
same moment.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from featstore.models.testing import save_tiny_model
from featstore.synth import SynthConfig, synthesize_demo
from study.graph import Graph, RunStats


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


def write_study(inputs: Path, folder: Path, executor: str, folds: int, pool: int = 0, shards: int = 1,
                extra: str = "", name: str = "bench") -> Path:
    """The benchmark study's TOML in ``folder`` (its own cache and run directory):
    extraction in ``shards`` jobs on the cluster executors, ``extra`` TOML tables appended
    (the tests add diarization)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.toml"
    path.write_text(f"""[study]
name = "{name}"
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
pool_idle_s = 30
extract_shards = {shards}
[resources.extract]
gpus = 0
[resources.finetune]
gpus = 0
{extra}""", encoding="utf-8")
    return path


@dataclass(frozen=True)
class ExecutorFigures:
    """What the benchmark measured on one executor (seconds; per job: jobs sent away, or
    run in this process by ``local``)."""

    executor: str
    jobs_sent: int
    graph_jobs: int
    wall_s: float
    work_s: float
    overhead_mean_s: float
    overhead_max_s: float
    waited_mean_s: float
    load_mean_s: float
    graph_width: int
    graph_width_finetune: int
    sent_at_once: int
    ran_at_once: int
    max_overhead_s: float

    @property
    def passed(self) -> bool:
        """The target: the mean of the jobs' scheduling overheads at most ``max_overhead_s``
        (the max is printed beside it)."""
        return self.overhead_mean_s <= self.max_overhead_s

    @property
    def total_mean_s(self) -> float:
        """Overhead + loading the job's code, per job."""
        return self.overhead_mean_s + self.load_mean_s

    def line(self) -> str:
        target = f"<= {self.max_overhead_s:g} s"
        waited = (f"; waiting for a busy worker (the executor's width, apart from the overhead) mean "
                  f"{self.waited_mean_s:.2f} s per job") if self.waited_mean_s > 0 else ""
        return (
            f"{self.executor:>10}: {self.jobs_sent} jobs sent, {self.graph_jobs} in the graph; wall {self.wall_s:.1f} s, "
            f"work {self.work_s:.1f} s; scheduling overhead per job mean {self.overhead_mean_s:.2f} s "
            f"[{'PASS' if self.passed else 'FAIL'} {target}], max {self.overhead_max_s:.2f} s{waited}; of the work, "
            f"loading the job's code (imports in the job's process) mean {self.load_mean_s:.2f} s per job; "
            f"overhead + loading {self.total_mean_s:.2f} s per job "
            f"[{'PASS' if self.total_mean_s <= self.max_overhead_s else 'FAIL'} {target}]; jobs at once: graph allows "
            f"{self.graph_width} ({self.graph_width_finetune} fine-tuning), sent together {self.sent_at_once}, "
            f"ran {self.ran_at_once}")

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed, "total_mean_s": self.total_mean_s}


def measure(name: str, result: RunStats, graph: Graph, max_overhead_s: float = 2.0) -> ExecutorFigures:
    """The figures of one executor's run (``result``, of the study ``graph``)."""
    overheads, loads, waits = result.overhead_s(), result.load_s(), result.waited_s()
    return ExecutorFigures(
        executor=name, jobs_sent=len(overheads), graph_jobs=len(graph), wall_s=result.wall_s,
        work_s=sum(j["duration_s"] for j in result.jobs),
        overhead_mean_s=statistics.fmean(overheads) if overheads else 0.0,
        overhead_max_s=max(overheads, default=0.0), waited_mean_s=statistics.fmean(waits) if waits else 0.0,
        load_mean_s=statistics.fmean(loads) if loads else 0.0, graph_width=graph.max_width(),
        graph_width_finetune=graph.max_width(["finetune", "finetune-fold"]),
        sent_at_once=max(result.max_in_flight, 1), ran_at_once=result.ran_at_once(), max_overhead_s=max_overhead_s)


def check_executors(names: Sequence[str]) -> None:
    """Raise a :class:`~featstore.errors.CrosslingError` unless ``names`` is one or more of
    :data:`BENCH_EXECUTORS` (before any executor runs)."""
    from featstore.errors import CrosslingError, unknown_name

    if not names:
        raise CrosslingError(f"give one or more of {', '.join(BENCH_EXECUTORS)}")
    for name in names:
        if name not in BENCH_EXECUTORS:
            raise unknown_name("executor", name, BENCH_EXECUTORS)


def run_bench(out: Path, executors: Sequence[str], folds: int = 5, max_overhead_s: float = 2.0
              ) -> list[ExecutorFigures]:
    """Run the benchmark study on each of ``executors`` (in its own folder under ``out``)
    and return what each measured."""
    from study.config import load_study_config
    from study.runner import build_graph, run_study

    figures = []
    for name, path in zip(executors, write_studies(out, executors, folds), strict=True):
        kind = BENCH_EXECUTORS[name][0]
        config = load_study_config(path)
        stats: list[RunStats] = []
        run_study(config, log=lambda _line: None, stats=stats)
        figures.append(measure(name, stats[0], build_graph(config, split=kind != "local"), max_overhead_s))
    return figures


def write_studies(out: Path, executors: Sequence[str], folds: int = 5) -> list[Path]:
    """The benchmark's inputs under ``out/inputs`` and one study TOML per executor, each in
    a folder of its own (``out/<time>-<executor>/study.toml``): a demo-sized study to run
    by hand (``crossling study --config PATH``) before a real one."""
    check_executors(executors)
    out = Path(out)
    inputs = make_inputs(out / "inputs")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    paths = []
    for name in executors:
        kind, pool = BENCH_EXECUTORS[name]
        paths.append(write_study(inputs, out / f"{stamp}-{name}", kind, folds, pool))
    return paths


def header(folds: int) -> str:
    """The report's first line."""
    return f"study-bench: demo-sized study, 1 model, 1 corpus, fine-tuning {folds} folds x 1 epoch (CPU)"


def bench_record(figures: Sequence[ExecutorFigures], folds: int) -> dict:
    """The figures with the machine and versions they came from (``--json``)."""
    import os
    import platform

    import dask
    import distributed
    import submitit
    import torch

    return {"benchmark": "crossling study-bench", "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpus": os.cpu_count(), "python": platform.python_version()},
            "versions": {"torch": torch.__version__, "submitit": submitit.__version__,
                         "dask": dask.__version__, "distributed": distributed.__version__}, "folds": folds,
            "executors": [f.as_dict() for f in figures]}
