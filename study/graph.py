"""The study as a graph of jobs, and the one driver that runs such a graph on any executor.

A :class:`Job` names the jobs it reads (``deps``); it starts once they are all done. Its
fingerprint is computed by the driver at that moment (it may read what the jobs before it
wrote, e.g. a manifest's fingerprint), and the job is skipped when the ledger holds it done
with that fingerprint (:class:`study.ledger.Ledger`). The job itself runs wherever the
executor sends it (this process, a SLURM node, a Dask worker: :mod:`study.executors`) and
records itself done there, atomically, once its outputs are written
(:func:`execute_job`); the driver only records what is in flight and what failed, so the
ledger stays true whichever process dies.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from featstore.errors import CrosslingError
from study.ledger import Ledger, StudyLock, record_stem

Log = Callable[[str], None]
JobRun = Callable[[Log], Sequence[str | Path] | None]

JOB_KINDS: dict[str, str] = {
    "prepare": "default", "splits": "default", "extract": "extract", "extract-merge": "default", "probes": "probes", "probes-gather": "driver",
    "finetune": "finetune", "finetune-fold": "finetune", "finetune-gather": "driver", "table1": "driver",
    "human": "default", "sed": "sed", "report": "driver",
}
"""Every kind of job -> the ``[resources.<kind>]`` table it runs with; ``driver`` jobs are
light (joining tables, writing the report) and run in the study's own process."""

KILL_ENV = "CROSSLING_STUDY_KILL_ONCE"
"""Fault drill: a job whose name equals this variable kills its own process (SIGKILL) the
first time it starts (a marker under ``<run dir>/ledger`` keeps it from dying twice), as a
pre-empted node would; ``docs/cluster.md``."""


class StudyJobsFailed(CrosslingError, RuntimeError):
    """Jobs of a study failed; the message lists each with its log (rerun to resume)."""


@dataclass(frozen=True)
class Call:
    """A job's work as a module-level function and plain arguments: ``Call(fn, args)(log)``
    is ``fn(*args, **kwargs)``. It pickles by reference, so a job sent to another process
    imports only the module of ``fn`` (preparing a corpus does not import torch)."""

    fn: Callable[..., Sequence[str | Path] | None]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def __call__(self, log: Log) -> Sequence[str | Path] | None:
        return self.fn(*self.args, **self.kwargs)


@dataclass(frozen=True)
class Packed:
    """A job's work as bytes, for another process: ``Packed.of(run)`` pickles ``run`` (with
    cloudpickle: lambdas and the study's config objects) and calling it unpickles and runs
    it. Sent to a SLURM node or a Dask worker, unpacking the submitted job imports only this
    module; what the job's work imports (torch, transformers, the configs' packages) is
    imported inside the job, timed as its ``load_s`` (:func:`execute_job`), not as the
    executor's scheduling."""

    blob: bytes

    @classmethod
    def of(cls, run: JobRun) -> Packed:
        import cloudpickle  # with submitit and distributed, the executors that send jobs away

        return cls(cloudpickle.dumps(run))

    def unpack(self) -> JobRun:
        """The job's ``run`` (importing what it uses)."""
        import pickle

        # the bytes the study's driver made with Packed.of, read from the run's job folder as
        # submitit and Dask read their own pickles of the same call: no new trust boundary
        return pickle.loads(self.blob)  # noqa: S301

    def __call__(self, log: Log) -> Sequence[str | Path] | None:
        return self.unpack()(log)


@dataclass
class Job:
    """One job of a study.

    Attributes
    ----------
    name : the ledger name (``extract/w2v2-cn/esd``, ``finetune/<run>/fold-2`` ...)
    kind : one of :data:`JOB_KINDS` (decides its resources)
    deps : names of the jobs it reads (each kept once)
    fingerprint : computed by the driver once ``deps`` are done
    run : ``run(log) -> output paths``; runs where the executor sends it (picklable with
        cloudpickle for the slurm and dask executors)
    covered_by : a job whose being done (with its current fingerprint) makes this one
        unnecessary (a fine-tuning fold, once its run's results are gathered)
    always_run : run at every study even when done (the report, rebuilt as it always was)
    announce : log ``[run ]``/``[skip]``/``[done]`` lines for it
    """

    name: str
    kind: str
    deps: tuple[str, ...]
    fingerprint: Callable[[], str]
    run: JobRun
    covered_by: str | None = None
    always_run: bool = False
    announce: bool = True

    def __post_init__(self) -> None:
        if self.kind not in JOB_KINDS:
            raise ValueError(f"job {self.name}: unknown kind {self.kind!r}; known: {', '.join(JOB_KINDS)}")
        self.deps = tuple(dict.fromkeys(self.deps))  # each once, in order (a corpus read twice is one dep)

    @property
    def resource_kind(self) -> str:
        """The ``[resources.*]`` table of this job (``driver``: run in the study's process)."""
        return JOB_KINDS[self.kind]


@dataclass
class Graph:
    """Jobs in the order a one-process study runs them (every job after the jobs it reads)."""

    jobs: dict[str, Job] = field(default_factory=dict)

    def add(self, job: Job) -> Job:
        """Add ``job`` (its deps must be in the graph already); returns it."""
        if job.name in self.jobs:
            raise ValueError(f"two jobs named {job.name}")
        unknown = [d for d in job.deps if d not in self.jobs]
        if unknown:
            raise ValueError(f"job {job.name} reads jobs not in the graph: {unknown}")
        self.jobs[job.name] = job
        return job

    def __iter__(self):
        return iter(self.jobs.values())

    def __len__(self) -> int:
        return len(self.jobs)

    def levels(self) -> dict[str, int]:
        """Each job's depth: 0 for jobs that read none, else 1 + the deepest job it reads."""
        level: dict[str, int] = {}
        for job in self.jobs.values():  # insertion order is a topological order
            level[job.name] = 1 + max((level[d] for d in job.deps), default=-1)
        return level

    def max_width(self, kinds: Sequence[str] | None = None) -> int:
        """The most jobs (of ``kinds``, default all) that can run at once when every job
        takes the same time: the largest level of :meth:`levels`."""
        counts: dict[int, int] = {}
        for name, lv in self.levels().items():
            if kinds is None or self.jobs[name].kind in kinds:
                counts[lv] = counts.get(lv, 0) + 1
        return max(counts.values(), default=0)


@dataclass(frozen=True)
class JobOutcome:
    """What a finished job sends back: its outputs, its own run time and, of that, the
    time its process took to load the job's code (importing what it uses: a fresh process
    pays it once per job, a Dask worker once), seconds; when its run began and ended (wall
    clock, seconds since the epoch) and in which process (``host:pid``): what the driver
    needs to tell a wait for a busy worker from the executor's overhead
    (:meth:`RunStats.waited_s`)."""

    outputs: tuple[str, ...]
    duration_s: float
    load_s: float = 0.0
    started_at: float = 0.0
    ended_at: float = 0.0
    worker: str = ""


def job_log_path(run_dir: str | Path, name: str) -> Path:
    """``<run_dir>/logs/<job>.log``: the job's own log (its lines and, on failure, the traceback)."""
    return Path(run_dir) / "logs" / f"{record_stem(name)}.log"


def execute_job(name: str, fingerprint: str, run: JobRun, run_dir: str, echo: Log | None = None,
                exit_fast: bool = False, skip_done: bool = False) -> JobOutcome:
    """Run one job where it was sent: its lines go to its log file (and ``echo``), its
    outputs are recorded done in the ledger (atomically, from this process) once written.
    Raises what the job raised (after writing the traceback to the log).

    ``exit_fast`` (a process started for this one job, as submitit's): once the job is
    done and its result written, its process skips the interpreter's teardown when it
    exits (:func:`_exit_at_once`). ``skip_done`` (jobs sent away): a job the ledger already
    records done with ``fingerprint`` is not run again but answers with its recorded
    outputs: a scheduler's retry of a finished job (Dask recomputing a result lost with a
    worker, a second submission) never rewrites what later jobs may be reading."""
    path = job_log_path(run_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if skip_done and Ledger(run_dir).is_done(name, fingerprint):
        with path.open("a", encoding="utf-8") as stream:
            stream.write(f"== {name}: sent again on {socket.gethostname()} but done already with these inputs; "
                         "not run again\n")
        now = time.time()
        return JobOutcome(tuple((Ledger(run_dir).record(name) or {}).get("outputs", ())), 0.0, started_at=now,
                          ended_at=now, worker=_process_id())
    with path.open("a", encoding="utf-8") as stream:
        def log(line: str) -> None:
            stream.write(f"{line}\n")
            stream.flush()
            if echo is not None:
                echo(line)

        stream.write(f"== {name} on {socket.gethostname()} pid {os.getpid()} "
                     f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
                     + (f" slurm job {os.environ['SLURM_JOB_ID']}" if "SLURM_JOB_ID" in os.environ else "") + "\n")
        stream.flush()
        _fault_drill(name, run_dir)
        t0, started_at = time.perf_counter(), time.time()
        load_s = 0.0
        try:
            if isinstance(run, Packed):
                run = run.unpack()
                load_s = time.perf_counter() - t0
            outputs = tuple(str(p) for p in (run(log) or []))
        except BaseException:
            stream.write(traceback.format_exc())
            raise
        elapsed = time.perf_counter() - t0
        Ledger(run_dir).mark_done(name, fingerprint, outputs, duration_s=elapsed)
        stream.write(f"== done in {elapsed:.2f} s" + (f" (loading the job's code {load_s:.2f} s)" if load_s else "")
                     + "\n")
    if exit_fast:
        atexit.register(_exit_at_once)
    return JobOutcome(outputs, elapsed, load_s, started_at=started_at, ended_at=started_at + elapsed,
                      worker=_process_id())


def _process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _exit_at_once() -> None:
    """End a one-job process now, when that loses nothing: registered once the job is
    recorded done, so it runs first at exit. Only when submitit has written the job's
    result and the process has no child processes left (a pool's workers are shut down by
    the handlers this skips): then logging and stdio are flushed and ``os._exit(0)`` skips
    the other exit handlers and the interpreter's teardown (1.2 s of freeing modules with
    torch and transformers loaded, measured on the 2-core VM). Otherwise the process exits
    as usual, with its own status."""
    if not _result_written() or _has_children():
        return
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed
            pass
    os._exit(0)


def _result_written() -> bool:
    try:
        from submitit import JobEnvironment

        return JobEnvironment().paths.result_pickle.exists()
    except Exception:  # noqa: BLE001 - not a submitit job, or no result: exit as usual
        return False


def _has_children() -> bool:
    try:
        import psutil

        return bool(psutil.Process().children())
    except Exception:  # noqa: BLE001 - cannot tell: assume there are
        return True


def _fault_drill(name: str, run_dir: str) -> None:
    if os.environ.get(KILL_ENV) != name:
        return
    marker = Path(run_dir) / "ledger" / f"killed-{record_stem(name)}"
    if marker.exists():
        return
    marker.touch()
    os.kill(os.getpid(), signal.SIGKILL)


class Handle(Protocol):
    """A submitted job: ``done()``, ``result()`` (a :class:`JobOutcome`, or raises),
    ``cancel()`` (whether it was stopped before finishing), ``job_id``, ``log``."""

    job_id: str
    log: str

    def done(self) -> bool: ...

    def result(self) -> JobOutcome: ...

    def cancel(self) -> bool: ...


class Executor(Protocol):
    """Where jobs run (:mod:`study.executors`)."""

    name: str
    split_jobs: bool  # fine-tuning folds as separate jobs
    poll_s: float

    def submit(self, jobs: Sequence[tuple[Job, str]]) -> list[Handle]: ...

    def close(self) -> None: ...


@dataclass
class RunStats:
    """What :func:`run_graph` measured: per job, submission to completion as the driver saw
    it, the job's own run time (seconds), when it was submitted, began and ended (wall
    clock) and in which process; the most jobs in flight (submitted, not landed) at once."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    max_in_flight: int = 0
    wall_s: float = 0.0

    def _sent(self) -> list[dict[str, Any]]:
        return [j for j in self.jobs if j["where"] != "driver"]

    def overhead_s(self) -> list[float]:
        """Scheduling overhead of each job that ran: seconds in flight beyond its own run time
        (which includes loading its code: :meth:`load_s`) and beyond its wait for a busy
        worker (:meth:`waited_s`)."""
        return [max(0.0, j["in_flight_s"] - j["duration_s"] - w) for j, w in zip(self._sent(), self.waited_s(),
                                                                                  strict=True)]

    def waited_s(self) -> list[float]:
        """Seconds each job sent away waited for a busy worker: while it was queued (from its
        submission to its start), how long the process that ran it was running other jobs
        (a Dask worker, a slurm pool worker; 0 for a process of its own). That is the
        executor's width (two workers, say), not its overhead. Wall clocks of the driver
        and the workers: exact on one machine, as good as their clocks' sync across nodes."""
        sent = self._sent()
        waits = []
        for j in sent:
            start, queued = j.get("started_at", 0.0), j.get("submitted_at", 0.0)
            busy = 0.0
            if j.get("worker") and start > queued > 0:
                for k in sent:
                    if k is not j and k.get("worker") == j["worker"]:
                        busy += max(0.0, min(k.get("ended_at", 0.0), start) - max(k.get("started_at", 0.0), queued))
            waits.append(busy)
        return waits

    def load_s(self) -> list[float]:
        """Seconds each job sent away spent loading its code (imports) inside its run time."""
        return [j.get("load_s", 0.0) for j in self._sent()]

    def ran_at_once(self) -> int:
        """The most jobs that were running at the same moment (their run times overlapping)."""
        edges = sorted((t, step) for j in self.jobs if j.get("ended_at", 0.0) > j.get("started_at", 0.0) > 0
                       for t, step in ((j["started_at"], 1), (j["ended_at"], -1)))
        running = most = 0
        for _, step in edges:  # at equal times an end (-1) sorts before a start (+1)
            running += step
            most = max(most, running)
        return most


def run_graph(graph: Graph, ledger: Ledger, executor: Executor, log: Log = print) -> RunStats:
    """Run every job of ``graph`` that is not done, each once the jobs it reads are done.

    The ``local`` executor stops at the first failure and raises it, as a one-process study
    always has; others run every job they can, then raise :class:`StudyJobsFailed` naming
    each failed job and its log."""
    stats, t_start = RunStats(), time.perf_counter()
    pending = list(graph)
    finished: set[str] = set()
    failed: dict[str, str] = {}
    flying: dict[str, tuple[Job, Handle, float]] = {}
    sent_at: dict[str, float] = {}  # wall clock of each job's submission
    try:
        while pending or flying:
            ready: list[tuple[Job, str]] = []
            for job in list(pending):
                if any(d in failed for d in job.deps):
                    failed[job.name] = "not run: " + ", ".join(d for d in job.deps if d in failed) + " failed"
                    pending.remove(job)
                    continue
                if not all(d in finished for d in job.deps):
                    continue
                pending.remove(job)
                fp = job.fingerprint()
                covered = job.covered_by and ledger.is_done(job.covered_by, graph.jobs[job.covered_by].fingerprint())
                if (ledger.is_done(job.name, fp) or covered) and not job.always_run:
                    log(f"[skip] {job.name} (done, inputs unchanged)")
                    ledger.clear_state(job.name)
                    finished.add(job.name)
                    continue
                if job.resource_kind == "driver" or executor.split_jobs is False:
                    # in this process, now (later jobs of this pass may read it)
                    _run_here(job, fp, ledger, executor, log, stats, finished, failed)
                    continue
                ready.append((job, fp))
            if ready:
                for job, _ in ready:
                    log(f"[run ] {job.name}")
                now, submitted_at = time.perf_counter(), time.time()
                for (job, _), handle in zip(ready, executor.submit(ready), strict=True):
                    ledger.set_state(job.name, "running", job_id=handle.job_id, log=handle.log, executor=executor.name)
                    flying[job.name] = (job, handle, now)
                    sent_at[job.name] = submitted_at
                stats.max_in_flight = max(stats.max_in_flight, len(flying))
            landed = [name for name, (_, h, _) in flying.items() if h.done()]
            for name in landed:
                job, handle, t0 = flying.pop(name)
                try:
                    outcome = handle.result()
                except Exception as err:  # noqa: BLE001 - any failure of a job is reported with its log
                    failed[name] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
                    ledger.set_state(name, "failed", job_id=handle.job_id, log=handle.log, error=failed[name],
                                     executor=executor.name)
                    log(f"[fail] {name}: {failed[name]} (log: {handle.log})")
                    continue
                stats.jobs.append({"name": name, "kind": job.kind, "where": executor.name,
                                   "in_flight_s": time.perf_counter() - t0, "duration_s": outcome.duration_s,
                                   "load_s": outcome.load_s, "submitted_at": sent_at.pop(name, 0.0),
                                   "started_at": outcome.started_at, "ended_at": outcome.ended_at,
                                   "worker": outcome.worker})
                ledger.clear_state(name)
                finished.add(name)
                log(f"[done] {name} in {outcome.duration_s:.1f} s")
            if flying and not landed and not ready:
                time.sleep(executor.poll_s)
    except BaseException:  # Ctrl-C, or the driver failing: what is in flight is cancelled, and recorded so
        _cancel_in_flight(flying, ledger, executor.name)
        raise
    stats.wall_s = time.perf_counter() - t_start
    if failed:
        lines = [f"  {name}: {why}" + (f" (log: {ledger.state(name).get('log')})" if ledger.state(name) else "")
                 for name, why in failed.items()]
        raise StudyJobsFailed(f"{len(failed)} job(s) of the study did not finish; rerun the same command to run "
                              "them (finished jobs are kept):\n" + "\n".join(lines))
    return stats


def _cancel_in_flight(flying: dict[str, tuple[Job, Handle, float]], ledger: Ledger, executor: str) -> None:
    """Cancel the jobs in flight when the study stops; those cancelled show ``cancelled``
    in ``--status`` (not ``interrupted``, which says a job may still be running)."""
    for name, (_, handle, _) in flying.items():
        try:
            cancelled = handle.cancel()
        except Exception:  # noqa: BLE001 - cannot tell (the scheduler is unreachable): left as running
            continue
        if cancelled:
            ledger.set_state(name, "cancelled", job_id=handle.job_id, log=handle.log, executor=executor)


def _run_here(job: Job, fp: str, ledger: Ledger, executor: Executor, log: Log, stats: RunStats,
              finished: set[str], failed: dict[str, str]) -> None:
    """Run ``job`` in this process (the local executor, and light ``driver`` jobs)."""
    say = log if job.announce else (lambda _line: None)
    say(f"[run ] {job.name}")
    ledger.set_state(job.name, "running", job_id=f"pid {os.getpid()}", log=str(job_log_path(ledger.run_dir, job.name)),
                     executor="this process")
    t0 = time.perf_counter()
    try:
        outcome = execute_job(job.name, fp, job.run, str(ledger.run_dir), echo=log)
    except Exception as err:
        ledger.set_state(job.name, "failed", job_id=f"pid {os.getpid()}", error=f"{type(err).__name__}: {err}",
                         log=str(job_log_path(ledger.run_dir, job.name)), executor="this process")
        if not executor.split_jobs:  # a one-process study stops at its first failure, as it always has
            raise
        failed[job.name] = f"{type(err).__name__}: {err}"
        log(f"[fail] {job.name}: {failed[job.name]}")
        return
    stats.jobs.append({"name": job.name, "kind": job.kind, "where": "driver" if executor.split_jobs else "local",
                       "in_flight_s": time.perf_counter() - t0, "duration_s": outcome.duration_s, "load_s": outcome.load_s,
                       "started_at": outcome.started_at, "ended_at": outcome.ended_at, "worker": outcome.worker})
    ledger.clear_state(job.name)
    finished.add(job.name)
    say(f"[done] {job.name} in {outcome.duration_s:.1f} s")


def job_states(graph: Graph, ledger: Ledger) -> list[tuple[str, str, str]]:
    """``(job, state, detail)`` for every job: ``done``; ``running`` (the job id; while no
    study holds the run directory's lock a job left running is ``interrupted``: its study
    was killed, the job may still run; rerun to resume); ``cancelled`` (by its study when it
    stopped); ``failed`` (the path of its log); ``waiting`` (for the jobs it reads, or to be run)."""
    live = StudyLock(ledger.run_dir).held_elsewhere()
    done: set[str] = set()
    rows = []
    for job in graph:
        try:
            fp = job.fingerprint() if all(d in done for d in job.deps) else None
        except Exception:  # noqa: BLE001 - an input not readable yet: the job waits
            fp = None
        covered = False
        if fp is not None and job.covered_by:
            cover = graph.jobs[job.covered_by]
            covered = ledger.is_done(cover.name, cover.fingerprint())
        if fp is not None and (ledger.is_done(job.name, fp) or covered):
            done.add(job.name)
            rows.append((job.name, "done", ""))
            continue
        state = ledger.state(job.name) or {}
        if state.get("state") == "running":
            where = f"job {state.get('job_id')}" + (f", log {state['log']}" if state.get("log") else "")
            rows.append((job.name, "running" if live else "interrupted", where if live else
                         f"{where}; rerun to resume"))
        elif state.get("state") == "cancelled":
            rows.append((job.name, "cancelled", f"job {state.get('job_id')} cancelled when its study stopped; "
                                                "rerun to run it"))
        elif state.get("state") == "failed":
            rows.append((job.name, "failed", f"log {state.get('log')}: {state.get('error', '')}"))
        else:
            blocked = [d for d in job.deps if d not in done]
            named = ", ".join(blocked[:3]) + (f" and {len(blocked) - 3} more" if len(blocked) > 3 else "")
            rows.append((job.name, "waiting", f"for {named}" if blocked else "ready"))
    return rows


def format_states(rows: Sequence[tuple[str, str, str]]) -> list[str]:
    """One line per job (``state  job  detail``) and a count per state at the end."""
    lines = [f"{state:<11} {name}" + (f"  ({detail})" if detail else "") for name, state, detail in rows]
    counts: dict[str, int] = {}
    for _, state, _ in rows:
        counts[state] = counts.get(state, 0) + 1
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(rows)} jobs")
    return lines
