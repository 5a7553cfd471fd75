"""The dask executor's own seams, on a one-worker local cluster: its workers compute with
the threads of the study's process (not Dask's one-thread default), a finished job is
forgotten by Dask (a worker lost later never reruns it), an unreachable scheduler is one
clear error."""

from __future__ import annotations

import os
import time

import dask
import pytest

from study.config import ExecutorSettings
from study.executors.dask import DaskExecutor, DaskSchedulerError
from study.graph import Job


def _threads() -> tuple[str | None, int]:
    import torch

    return os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()


def _write(log):
    return []


def test_local_cluster_workers_keep_the_study_s_threads_and_forget_finished_jobs(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # as a user's shell may have it (unset: torch's default)
    executor = DaskExecutor(ExecutorSettings(kind="dask", workers=1, poll_s=0.05), {}, tmp_path)
    try:
        # Dask's nanny would pin its workers (and this process) to OMP_NUM_THREADS=1
        assert executor.client.submit(_threads, pure=False).result() == ("2", 2)
        assert os.environ["OMP_NUM_THREADS"] == "2"
        handle, = executor.submit([(Job("prepare/esd", "prepare", (), lambda: "fp", _write), "fp")])
        while not handle.done():
            time.sleep(0.05)
        assert handle.result().outputs == () and handle.done()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and executor.client.run_on_scheduler(lambda dask_scheduler: list(
                dask_scheduler.tasks)):
            time.sleep(0.1)
        # no result left on a worker for Dask to recompute if that worker dies
        assert executor.client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks)) == []
    finally:
        executor.close()


def test_an_unreachable_scheduler_is_one_clear_error(tmp_path):
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(DaskSchedulerError, match=r"cannot reach the Dask scheduler tcp://127\.0\.0\.1:9.*dask "
                                                     r"scheduler"):
            DaskExecutor(ExecutorSettings(kind="dask", scheduler="tcp://127.0.0.1:9"), {}, tmp_path)
