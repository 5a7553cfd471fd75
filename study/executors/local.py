"""The ``local`` executor: every job in the study's own process, one after the other."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from study.graph import Job, JobOutcome, execute_job, job_log_path

if TYPE_CHECKING:
    from study.config import ExecutorSettings, ResourceSpec


@dataclass
class _Done:
    job_id: str
    log: str
    outcome: JobOutcome | None = None
    error: BaseException | None = None

    def done(self) -> bool:
        return True

    def result(self) -> JobOutcome:
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome

    def cancel(self) -> bool:
        return False  # ran already


class LocalExecutor:
    """Runs each job now, in this process (the driver runs jobs inline: ``split_jobs`` is
    False, so fine-tuning keeps one job per run, as a one-process study always had)."""

    name = "local"
    split_jobs = False
    poll_s = 0.0

    def __init__(self, settings: ExecutorSettings, resources: Mapping[str, ResourceSpec], run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    def submit(self, jobs: Sequence[tuple[Job, str]]) -> list[_Done]:
        """Run ``(job, fingerprint)`` pairs one after the other; each handle is done."""
        handles = []
        for job, fp in jobs:
            handle = _Done("this process", str(job_log_path(self.run_dir, job.name)))
            try:
                handle.outcome = execute_job(job.name, fp, job.run, str(self.run_dir))
            except Exception as err:  # noqa: BLE001 - handed back through result()
                handle.error = err
            handles.append(handle)
        return handles

    def close(self) -> None:
        """Nothing to release."""
