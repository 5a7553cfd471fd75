"""The ``dask`` executor: each job a task on a Dask cluster.

``[executor] scheduler = "tcp://host:8786"`` (or ``--scheduler``) sends the jobs to a
running cluster whose workers see the run directory and cache (a shared file system);
without one, a local cluster of ``workers`` processes (one job at a time each, computing
with the threads a local run would use) is started for the study and closed after it. A
finished job's future is released at once: Dask keeps no result to recompute when a worker
is lost later. A job that needs GPUs asks for the worker resource ``GPU``
when the cluster's workers declare one (``dask worker ... --resources GPU=1``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featstore.errors import CrosslingError, safe_file_stem
from study.graph import Job, JobOutcome, Packed, execute_job, job_log_path

if TYPE_CHECKING:
    from study.config import ExecutorSettings, ResourceSpec


class _DaskHandle:
    def __init__(self, future: Any, log: str) -> None:
        self._future: Any = future
        self.job_id = str(future.key)
        self.log = log

    def done(self) -> bool:
        return self._future is None or bool(self._future.done())

    def result(self) -> JobOutcome:
        """The job's outcome; the future is released then: Dask forgets the finished job,
        so a worker lost later never makes it run again (its outputs are on disk and in the
        ledger, not in the worker's memory)."""
        future, self._future = self._future, None
        try:
            return future.result()
        finally:
            future.release()

    def cancel(self) -> bool:
        """Cancel the task; False once it has ended. A task already running in a worker of
        a cluster that goes on (an external one) runs to its end and records itself done."""
        if self._future is None or self._future.done():  # finished (its result read, or not yet)
            return False
        self._future.cancel()
        return True


class DaskSchedulerError(CrosslingError, OSError):
    """The Dask scheduler given could not be reached."""


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""What Dask's nanny sets to 1 in its workers by default (``distributed.nanny.pre-spawn-environ``);
the local cluster leaves them as in the study's process, so its jobs compute with the
same threads as a local or submitit run on this machine (the same numbers)."""


def _local_cluster(workers: int) -> Any:
    import dask
    from distributed import LocalCluster

    spawn = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
             if k not in THREAD_VARIABLES}
    # the nanny runs in this process and writes its pre-spawn variables into os.environ:
    # without the thread ones, neither this process nor the workers are pinned to one thread
    with dask.config.set({"distributed.nanny.pre-spawn-environ": spawn}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                            memory_limit=0)


class DaskExecutor:
    """Submits jobs to a ``distributed.Client``."""

    name = "dask"
    split_jobs = True

    def __init__(self, settings: ExecutorSettings, resources: Mapping[str, ResourceSpec], run_dir: Path) -> None:
        from distributed import Client

        self.run_dir = Path(run_dir)
        self.poll_s = settings.poll_s
        self.resources = dict(resources)
        self._cluster = None
        if settings.scheduler:
            try:
                self.client = Client(settings.scheduler)
            except (OSError, TimeoutError, ValueError) as err:  # ValueError: not an address
                raise DaskSchedulerError(
                    f"cannot reach the Dask scheduler {settings.scheduler} ({type(err).__name__}: {err}); start it "
                    "(`dask scheduler`) and its workers, or check the address ([executor] scheduler or "
                    "--scheduler); without an address the study starts a local cluster") from None
        else:
            self._cluster = _local_cluster(settings.workers)
            self.client = Client(self._cluster)
        info = self.client.scheduler_info().get("workers", {})
        self._has_gpu = any("GPU" in (w.get("resources") or {}) for w in info.values())
        self._handles: list[_DaskHandle] = []

    @property
    def address(self) -> str:
        """The scheduler's address."""
        return str(self.client.scheduler.address)

    def submit(self, jobs: Sequence[tuple[Job, str]]) -> list[_DaskHandle]:
        """Submit ``(job, fingerprint)`` pairs as tasks (never retried as cached results)."""
        handles = []
        for job, fp in jobs:
            spec = self.resources.get(job.resource_kind)
            extra = {"resources": {"GPU": spec.gpus}} if spec is not None and spec.gpus and self._has_gpu else {}
            key = f"{safe_file_stem(job.name.replace('/', '~'), 'job name')}-{uuid.uuid4().hex[:8]}"
            # a worker's print goes to its own log on a cluster, but to this terminal from a local
            # cluster's processes: there the job's lines go to its log file only
            echo = None if self._cluster is not None else print
            future = self.client.submit(execute_job, job.name, fp, Packed.of(job.run), str(self.run_dir), echo,
                                        skip_done=not job.always_run, key=key,
                                        pure=False, **extra)
            handles.append(_DaskHandle(future, str(job_log_path(self.run_dir, job.name))))
        self._handles = [h for h in self._handles if not h.done()] + handles  # only those in flight
        return handles

    def close(self) -> None:
        """Cancel what is left, disconnect, and stop the local cluster if this started one."""
        for handle in self._handles:
            if not handle.done():
                handle.cancel()
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
