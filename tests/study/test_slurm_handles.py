"""The slurm executor's handles without SLURM: a job is cancelled once (a second signal
cut submitit's clean-up short), never after it ended; a job that must always run is sent
without the done-already check."""

from __future__ import annotations

import contextlib
from pathlib import Path

from study.config import ExecutorSettings, ResourceSpec
from study.executors.slurm import SubmititExecutor, _SubmititHandle
from study.graph import Job


class _FakeJob:
    def __init__(self, done: bool = False) -> None:
        self.job_id, self._done, self.cancels = "81240_3", done, 0
        self.paths = type("P", (), {"stderr": Path("/jobs/81240_3_0_log.err"), "stdout": Path("/jobs/81240_3_0_log.out")})()

    def done(self) -> bool:
        return self._done

    def cancel(self, check: bool = True) -> None:
        self.cancels += 1


def test_a_job_is_cancelled_once_and_never_after_it_ended(tmp_path):
    running, ended = _FakeJob(), _FakeJob(done=True)
    executor = SubmititExecutor(ExecutorSettings(kind="slurm", cluster="local"), {"default": ResourceSpec()}, tmp_path)
    executor._handles = [_SubmititHandle(running, "a.log"), _SubmititHandle(ended, "b.log")]
    assert [h.cancel() for h in executor._handles] == [True, False]  # the study stopping (run_graph)
    executor.close()  # then the executor closing: no second signal
    assert (running.cancels, ended.cancels) == (1, 0)


class _Capture:
    def __init__(self) -> None:
        self.calls: list = []

    def batch(self):
        return contextlib.nullcontext()

    def submit(self, call):
        self.calls.append(call)
        return _FakeJob()


def test_skip_done_is_off_for_a_job_that_always_runs(tmp_path):
    executor = SubmititExecutor(ExecutorSettings(kind="slurm", cluster="local"), {"default": ResourceSpec()}, tmp_path)
    capture = executor._executors["default"] = _Capture()
    jobs = [Job("prepare/esd", "prepare", (), lambda: "fp", lambda log: []),
            Job("human", "human", (), lambda: "fp", lambda log: [], always_run=True)]
    executor.submit([(job, "fp") for job in jobs])
    assert [call.keywords["skip_done"] for call in capture.calls] == [True, False]
