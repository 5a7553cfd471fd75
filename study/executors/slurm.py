"""The ``slurm`` executor: each job a SLURM job, submitted through submitit.

Each kind of job gets its ``[resources.<kind>]`` (GPUs, CPUs, memory, time limit,
partition, account, array parallelism) as submitit parameters; jobs of one kind that are
ready together are submitted as one job array (``slurm_array_parallelism`` of them run at
once). ``[executor] cluster = "local"`` sends the same submissions to submitit's local
executor (each job a subprocess), which is how the tests run the real path without SLURM.
Job files and logs: ``<run dir>/jobs/submitit/`` (``%j_0_log.out`` / ``.err``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from study.graph import Job, JobOutcome, Packed, execute_job, job_log_path

if TYPE_CHECKING:
    from study.config import ExecutorSettings, ResourceSpec


def submitit_parameters(spec: ResourceSpec, kind: str) -> dict[str, Any]:
    """``AutoExecutor.update_parameters`` keywords of one ``[resources.<kind>]`` table
    (memory in GB, time limit in minutes)."""
    params: dict[str, Any] = {
        "name": f"crossling-{kind}", "timeout_min": int(spec.time_min), "mem_gb": float(spec.memory_gb),
        "cpus_per_task": int(spec.cpus), "gpus_per_node": int(spec.gpus), "nodes": 1, "tasks_per_node": 1,
        "slurm_array_parallelism": int(spec.array_parallelism),
    }
    if spec.partition:
        params["slurm_partition"] = spec.partition
    if spec.account:
        params["slurm_account"] = spec.account
    if spec.extra:
        params["slurm_additional_parameters"] = dict(spec.extra)
    return params


class _SubmititHandle:
    def __init__(self, job: Any, job_log: str) -> None:
        self._job = job
        self.job_id = str(job.job_id)
        self.log = str(job.paths.stderr)
        self.job_log = job_log
        self.cancelled = False

    def done(self) -> bool:
        return bool(self._job.done())

    def result(self) -> JobOutcome:
        from submitit.core.utils import UncompletedJobError

        try:
            return self._job.result()
        except UncompletedJobError:  # its process ended before writing a result: say so, and where to look
            raise SlurmJobLost(
                f"SLURM job {self.job_id} ended without sending its result (killed, pre-empted, out of time or out "
                f"of memory; scheduler state {self._state()}); the job's log: {self.job_log}; submitit's output: "
                f"{self._job.paths.stdout}") from None

    def _state(self) -> str:
        try:
            return str(self._job.state)
        except Exception:  # noqa: BLE001 - sacct unreachable: the message goes on without it
            return "unknown"

    def cancel(self) -> bool:
        """scancel (the local executor: a signal to its process), once; False for a job
        that has ended (its result or error is what it is) or was cancelled already."""
        if self.cancelled or self._job.done():
            return False
        self._job.cancel(check=False)
        self.cancelled = True
        return True


class SlurmJobLost(RuntimeError):
    """A SLURM job ended (killed, pre-empted, timed out) before its job sent a result back."""


class SubmititBase:
    """What both submitit executors hold: the run directory, submitit's job folder
    (``[executor] folder``, else ``<run dir>/jobs/submitit``) and one ``submitit.AutoExecutor``
    per resource kind with its parameters (the job name ``job_name`` with the kind filled in)."""

    name = "slurm"
    split_jobs = True

    def __init__(self, settings: ExecutorSettings, resources: Mapping[str, ResourceSpec], run_dir: Path,
                 job_name: str = "crossling-{kind}") -> None:
        import submitit

        self.run_dir = Path(run_dir)
        self.folder = Path(settings.folder) if settings.folder else self.run_dir / "jobs" / "submitit"
        self.poll_s = settings.poll_s
        self._executors: dict[str, Any] = {}
        for kind, spec in resources.items():
            executor = submitit.AutoExecutor(folder=self.folder, cluster=settings.cluster)
            executor.update_parameters(**{**submitit_parameters(spec, kind), "name": job_name.format(kind=kind)})
            self._executors[kind] = executor


class SubmititExecutor(SubmititBase):
    """Submits each job through ``submitit.AutoExecutor`` (one per resource kind)."""

    def __init__(self, settings: ExecutorSettings, resources: Mapping[str, ResourceSpec], run_dir: Path) -> None:
        super().__init__(settings, resources, run_dir)
        self._handles: list[_SubmititHandle] = []

    def submit(self, jobs: Sequence[tuple[Job, str]]) -> list[_SubmititHandle]:
        """Submit ``(job, fingerprint)`` pairs; jobs of one kind go as one array."""
        by_kind: dict[str, list[int]] = {}
        for i, (job, _) in enumerate(jobs):
            by_kind.setdefault(job.resource_kind, []).append(i)
        handles: list[_SubmititHandle | None] = [None] * len(jobs)
        for kind, indices in by_kind.items():
            executor = self._executors[kind]
            calls = [functools.partial(execute_job, jobs[i][0].name, jobs[i][1], Packed.of(jobs[i][0].run),
                                       str(self.run_dir), print, exit_fast=True,
                                       skip_done=not jobs[i][0].always_run) for i in indices]
            if len(calls) == 1:
                submitted = [executor.submit(calls[0])]
            else:
                with executor.batch():
                    submitted = [executor.submit(call) for call in calls]
            for i, job in zip(indices, submitted, strict=True):
                handles[i] = _SubmititHandle(job, str(job_log_path(self.run_dir, jobs[i][0].name)))
        done = [h for h in handles if h is not None]
        self._handles += done
        return done

    def close(self) -> None:
        """Cancel jobs still queued or running (the study stopped: a rerun resubmits them),
        each once (a second signal would cut short submitit's own clean-up)."""
        for handle in self._handles:
            handle.cancel()
