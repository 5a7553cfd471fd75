"""The ``dask`` executor: each job a task on a Dask cluster.

``[executor] scheduler = "tcp://host:8786"`` (or ``--scheduler``) sends the jobs to a
running cluster whose workers see the run directory and cache (a shared file system);
without one, a local cluster of ``workers`` processes (one thread each) is started for the
study and closed after it. A job that needs GPUs asks for the worker resource ``GPU``
when the cluster's workers declare one (``dask worker ... --resources GPU=1``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featstore.errors import safe_file_stem
from study.graph import Job, JobOutcome, Packed, execute_job, job_log_path

if TYPE_CHECKING:
    from study.config import ExecutorSettings, ResourceSpec


class _DaskHandle:
    def __init__(self, future: Any, log: str) -> None:
        self._future = future
        self.job_id = str(future.key)
        self.log = log

    def done(self) -> bool:
        return bool(self._future.done())

    def result(self) -> JobOutcome:
        return self._future.result()

    def cancel(self) -> None:
        self._future.cancel()


class DaskExecutor:
    """Submits jobs to a ``distributed.Client``."""

    name = "dask"
    split_jobs = True

    def __init__(self, settings: ExecutorSettings, resources: Mapping[str, ResourceSpec], run_dir: Path) -> None:
        from distributed import Client, LocalCluster

        self.run_dir = Path(run_dir)
        self.poll_s = settings.poll_s
        self.resources = dict(resources)
        self._cluster = None
        if settings.scheduler:
            self.client = Client(settings.scheduler)
        else:
            self._cluster = LocalCluster(n_workers=settings.workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None, memory_limit=0)
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
            future = self.client.submit(execute_job, job.name, fp, Packed.of(job.run), str(self.run_dir), print, key=key,
                                        pure=False, **extra)
            handles.append(_DaskHandle(future, str(job_log_path(self.run_dir, job.name))))
        self._handles += handles
        return handles

    def close(self) -> None:
        """Cancel what is left, disconnect, and stop the local cluster if this started one."""
        for handle in self._handles:
            if not handle.done():
                handle.cancel()
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
