"""The ``slurm`` executor with ``[executor] pool = N``: long-lived SLURM jobs that run the
study's jobs one after another.

Without a pool every graph job is a SLURM job of its own: it waits in the queue, starts a
Python process and imports torch, transformers and the job's code (seconds), all for one job.
With a pool, up to ``N`` worker jobs per resource kind are submitted through submitit (with
that kind's ``[resources.<kind>]``) and each pulls graph jobs from a queue on the shared file
system until none has come for ``pool_idle_s``: the queue wait and the imports are paid once
per worker, not once per job.

The queue (``<run dir>/jobs/pool/<session>/<kind>/``, one ``<session>`` per ``crossling
study``, so a worker left from an earlier study never takes a job of this one):

- ``todo/<seq>.task``: a job to run (name, fingerprint, its pickled work, run directory,
  whether a record of it done skips it), written by the driver atomically;
- ``claimed/<seq>.task@<worker>``: taken by a worker (an atomic rename: one worker each);
- ``done/<seq>.result``: what the job sent back (its outcome, or its error), written by the
  worker atomically once the job has recorded itself done in the ledger
  (:func:`study.graph.execute_job`, as every executor's jobs do).

A worker killed or pre-empted while it holds a job leaves that job claimed and without a
result: the driver sees the worker's SLURM job ended and reports the job failed with the
worker's log; the next ``crossling study`` runs it again (and only it).
"""

from __future__ import annotations

import itertools
import os
import pickle
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from study.executors.slurm import SubmititBase
from study.graph import Job, JobOutcome, Packed, execute_job

if TYPE_CHECKING:
    from study.config import ExecutorSettings, ResourceSpec

STOP_FILE = "stop"
"""Written into the session folder when the study ends: its workers exit."""


CLOSE_WAIT_S = 15.0
"""Seconds the driver waits at the study's end for its workers to see the stop file and exit."""


class PoolWorkerLost(RuntimeError):
    """The pool worker running a job ended before the job sent its result back."""


def _write_atomic(path: Path, data: bytes) -> None:
    # not featstore.io.atomic_write: its temporary name keeps the suffix (".x.tmp-1.task"),
    # which the workers' "*.task" listing (pathlib globs match dot files) could claim mid-write
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _worker_id() -> str:
    try:
        from submitit import JobEnvironment

        return str(JobEnvironment().job_id)
    except Exception:  # noqa: BLE001 - not a submitit job (a test calling the loop itself)
        return f"{socket.gethostname()}-{os.getpid()}"


def pool_worker(queue: str, idle_s: float, poll_s: float) -> int:
    """Run jobs from the queue folder ``queue`` (one resource kind of one study session)
    until none has come for ``idle_s`` seconds or the study has ended; returns how many ran.

    A job this worker had claimed before (SLURM requeued it after a pre-emption, under the
    same job id) is run again first. A job that fails sends its error back and ends the
    worker: the failure may have spoilt the process (a CUDA error, a time-limit signal from
    submitit), so the next job gets a fresh one. ``SystemExit`` or ``KeyboardInterrupt``
    (submitit's exit after requeuing a pre-empted job) ends the worker with the job still
    claimed. The job's traceback is in its own log (:func:`study.graph.job_log_path`)."""
    folder = Path(queue)
    todo, claimed, done = folder / "todo", folder / "claimed", folder / "done"
    me = _worker_id()
    n_run, last = 0, time.monotonic()
    while not (folder.parent / STOP_FILE).exists():
        task = _claim(todo, claimed, me)
        if task is None:
            if time.monotonic() - last > idle_s:
                break
            time.sleep(poll_s)
            continue
        name, fingerprint, run, run_dir, skip_done = pickle.loads(task.read_bytes())  # noqa: S301 - the driver's own
        seq = task.name.split("@")[0].removesuffix(".task")
        _note_running(run_dir, name, me)
        try:
            outcome = execute_job(name, fingerprint, run, run_dir, print, skip_done=skip_done)
        except Exception as err:
            _write_atomic(done / f"{seq}.result", pickle.dumps(("error", _sendable(err))))
            task.unlink(missing_ok=True)
            return n_run + 1  # a fresh worker for the next job
        # SystemExit / KeyboardInterrupt (submitit exits so after requeuing a pre-empted job)
        # leave the job claimed: the requeued worker runs it first, or the driver sees the
        # worker gone and reports the job failed
        _write_atomic(done / f"{seq}.result", pickle.dumps(("ok", outcome)))
        task.unlink(missing_ok=True)
        n_run, last = n_run + 1, time.monotonic()
    return n_run


def _sendable(err: BaseException) -> BaseException:
    """``err`` itself when it pickles (the driver raises it as the job raised it), else its text."""
    try:
        pickle.loads(pickle.dumps(err))  # noqa: S301 - made just now
    except Exception:  # noqa: BLE001 - any exception that does not travel goes as text
        return RuntimeError(f"{type(err).__name__}: {err}")
    return err


def _note_running(run_dir: str, name: str, worker: str) -> None:
    """The ledger's in-flight state names the worker (its SLURM job id) and the job's log."""
    from study.graph import job_log_path
    from study.ledger import Ledger

    Ledger(run_dir).set_state(name, "running", job_id=f"{worker} (pool worker)",
                              log=str(job_log_path(run_dir, name)), executor="slurm")


def _claim(todo: Path, claimed: Path, me: str) -> Path | None:
    """A job this worker claimed before (requeued after a pre-emption), else the oldest of
    ``todo`` taken by an atomic rename into ``claimed``; None when there is none."""
    for path in sorted(claimed.glob(f"*.task@{me}")):
        return path
    for path in sorted(todo.glob("*.task")):
        target = claimed / f"{path.name}@{me}"
        try:
            os.rename(path, target)
        except FileNotFoundError:  # another worker took it first
            continue
        return target
    return None


class _PoolHandle:
    def __init__(self, pool: PoolExecutor, kind: str, seq: str, log: str) -> None:
        self._pool, self._kind, self._seq = pool, kind, seq
        self.job_id = f"pool {kind} #{int(seq)}"
        self.log = log

    @property
    def _queue(self) -> Path:
        return self._pool.session / self._kind

    def _result_path(self) -> Path:
        return self._queue / "done" / f"{self._seq}.result"

    def _holder(self, fresh: bool = False) -> str | None:
        """The id of the worker that claimed this job (None: not claimed)."""
        return self._pool.claims(self._kind, fresh).get(self._seq)

    def _finished(self, fresh: bool = False) -> bool:
        """Whether this job's result is in ``done/`` (one listing per poll serves every job)."""
        return self._seq in self._pool.results(self._kind, fresh)

    def done(self) -> bool:
        if self._finished():
            return True
        holder = self._holder()
        if holder is None:  # queued (or done since the listings: seen at the next poll)
            self._pool.ensure_workers(self._kind)  # keep a worker alive for it
            if self._pool.broken(self._kind) is None:
                return False
            # no worker can start for it: failed, unless it is done or a live one has just taken it
            return self._finished(fresh=True) or self._holder(fresh=True) is None
        return self._pool.worker_ended(self._kind, holder) and not self._finished(fresh=True)

    def result(self) -> JobOutcome:
        path = self._result_path()
        if not path.exists():
            holder = self._holder(fresh=True)
            if holder is None:
                raise PoolWorkerLost(f"no pool worker of kind {self._kind} could start; {self._pool.broken(self._kind)}")
            raise PoolWorkerLost(f"pool worker {holder} ended (killed, pre-empted, out of time or exited) while "
                                 f"running this job; job log: {self.log}; worker log: {self._pool.worker_log(holder)}")
        status, value = pickle.loads(path.read_bytes())  # noqa: S301 - written by this study's workers
        if status != "ok":
            raise value
        return value

    def cancel(self) -> bool:
        """Take the job out of the queue; False once a worker has claimed it (the worker
        finishes it, records it done, then sees the study's stop file and exits)."""
        try:
            (self._queue / "todo" / f"{self._seq}.task").unlink()
        except FileNotFoundError:
            return False
        return True


MAX_FAILED_WORKERS = 3
"""Workers of one kind that may end in an error (killed, or unable to start) before the
jobs still queued for that kind are failed instead of starting more workers."""


class PoolExecutor(SubmititBase):
    """Sends jobs to a pool of long-lived submitit workers, at most ``pool`` per resource kind."""

    def __init__(self, settings: ExecutorSettings, resources: Mapping[str, ResourceSpec], run_dir: Path) -> None:
        super().__init__(settings, resources, run_dir, job_name="crossling-pool-{kind}")
        self.size, self.idle_s = settings.pool, settings.pool_idle_s
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        self.session = self.run_dir / "jobs" / "pool" / f"{stamp}-{uuid.uuid4().hex[:8]}"
        self._workers: dict[str, list[Any]] = {}
        self._by_id: dict[str, Any] = {}
        self._failed: dict[str, list[Any]] = {}
        self._looked: dict[str, float] = {}
        self._claims: dict[str, tuple[float, dict[str, str]]] = {}
        self._results: dict[str, tuple[float, set[str]]] = {}
        self._seq = itertools.count()

    def submit(self, jobs: Sequence[tuple[Job, str]]) -> list[_PoolHandle]:
        """Queue ``(job, fingerprint)`` pairs and start workers for them as needed."""
        from study.graph import job_log_path

        handles = []
        for job, fingerprint in jobs:
            kind = job.resource_kind
            queue = self.session / kind
            for sub in ("todo", "claimed", "done"):
                (queue / sub).mkdir(parents=True, exist_ok=True)
            seq = f"{next(self._seq):06d}"
            task = (job.name, fingerprint, Packed.of(job.run), str(self.run_dir), not job.always_run)
            _write_atomic(queue / "todo" / f"{seq}.task", pickle.dumps(task))
            handles.append(_PoolHandle(self, kind, seq, str(job_log_path(self.run_dir, job.name))))
        for kind in {job.resource_kind for job, _ in jobs}:
            self.ensure_workers(kind, now=True)
        return handles

    def ensure_workers(self, kind: str, now: bool = False) -> None:
        """Start workers of ``kind`` until as many live as its queued jobs, at most ``pool``
        (looked at once per ``poll_s`` unless ``now``); none once :meth:`broken`."""
        if not now and time.monotonic() - self._looked.get(kind, 0.0) < self.poll_s:
            return
        self._looked[kind] = time.monotonic()
        live = []
        for worker in self._workers.get(kind, []):
            if not worker.done():
                live.append(worker)
            elif _ended_badly(worker) and worker not in self._failed.setdefault(kind, []):
                self._failed[kind].append(worker)
        self._workers[kind] = live
        if self.broken(kind) is not None:
            return
        queue = self.session / kind
        waiting = len(list((queue / "todo").glob("*.task")))
        busy = len(self.claims(kind, fresh=True))
        want = min(self.size, waiting + busy) - len(live)
        if want <= 0:
            return
        executor = self._executors[kind]
        with executor.batch():
            new = [executor.submit(pool_worker, str(queue), self.idle_s, self.poll_s) for _ in range(want)]
        for worker in new:
            self._by_id[str(worker.job_id)] = worker
        self._workers[kind] = live + new

    def claims(self, kind: str, fresh: bool = False) -> dict[str, str]:
        """Jobs of ``kind`` claimed by a worker: sequence number -> worker id. One listing of
        ``claimed/`` per ``poll_s`` (unless ``fresh``) serves every job in flight: on a
        network file system a listing per job per poll would add up."""
        seen_at, listing = self._claims.get(kind, (float("-inf"), {}))
        if fresh or time.monotonic() - seen_at >= self.poll_s:
            listing = {}
            for path in (self.session / kind / "claimed").glob("*.task@*"):
                task, worker = path.name.split("@", 1)
                listing[task.removesuffix(".task")] = worker
            self._claims[kind] = (time.monotonic(), listing)
        return listing

    def results(self, kind: str, fresh: bool = False) -> set[str]:
        """Sequence numbers of the jobs of ``kind`` whose result is written: one listing of
        ``done/`` per ``poll_s`` (unless ``fresh``), as :meth:`claims`."""
        seen_at, listing = self._results.get(kind, (float("-inf"), set()))
        if fresh or time.monotonic() - seen_at >= self.poll_s:
            listing = {path.name.removesuffix(".result") for path in (self.session / kind / "done").glob("*.result")}
            self._results[kind] = (time.monotonic(), listing)
        return listing

    def broken(self, kind: str) -> str | None:
        """Why no more workers of ``kind`` start (``MAX_FAILED_WORKERS`` ended in an error), or None."""
        failed = self._failed.get(kind, [])
        if len(failed) < MAX_FAILED_WORKERS:
            return None
        return f"{len(failed)} workers ended in an error; the last one's log: {failed[-1].paths.stderr}"

    def worker_ended(self, kind: str, worker_id: str) -> bool:
        """Whether the worker ``worker_id`` (a submitit job id) is no longer running; a
        worker this driver did not start counts as running while one of ``kind`` lives."""
        worker = self._by_id.get(worker_id)
        if worker is None:
            return all(w.done() for w in self._workers.get(kind, []))
        return bool(worker.done())

    def worker_log(self, worker_id: str | None) -> str:
        """The worker's stderr file (or a note that the worker is unknown)."""
        worker = self._by_id.get(worker_id or "")
        return str(worker.paths.stderr) if worker is not None else f"unknown worker {worker_id}"

    def close(self) -> None:
        """Tell the workers to exit (the study ended): cancel those still waiting in the
        SLURM queue at once, and those not gone within ``CLOSE_WAIT_S``."""
        if self.session.exists():
            (self.session / STOP_FILE).touch()
        workers = [w for ws in self._workers.values() for w in ws]
        for worker in workers:
            if not worker.done() and _pending(worker):
                worker.cancel(check=False)
        deadline = time.monotonic() + CLOSE_WAIT_S
        for worker in workers:
            while not worker.done() and time.monotonic() < deadline:
                time.sleep(self.poll_s)
            if not worker.done():
                worker.cancel(check=False)


def _ended_badly(worker: Any) -> bool:
    try:
        return worker.exception() is not None
    except Exception:  # noqa: BLE001 - its result cannot be read: it did not end well
        return True


def _pending(worker: Any) -> bool:
    try:
        return str(worker.state).upper() in ("PENDING", "CONFIGURING", "REQUEUED")
    except Exception:  # noqa: BLE001 - unknown: let it see the stop file
        return False
