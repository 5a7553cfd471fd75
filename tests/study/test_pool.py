"""The slurm pool's queue, in this process and a few: a worker takes each job once, runs it
and sends its outcome back; after a failed job it sends the error and stops (a fresh worker
takes the next job); a requeued worker runs the job it held first; workers racing for jobs
never take the same one."""

from __future__ import annotations

import multiprocessing
import pickle
import time
from pathlib import Path

import pytest

import study.executors.pool as pool
from study.executors.pool import STOP_FILE, _claim, pool_worker
from study.graph import JobOutcome, Packed, RunStats
from study.ledger import Ledger


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _out(name: str, folder: str):
    def run(log):
        log(f"running {name}")
        target = Path(folder) / f"{name}.txt"
        target.write_text(name)
        return [target]
    return run


def _boom(log):
    raise ValueError("bad input in x.wav")


def _queue(tmp_path: Path, runs) -> Path:
    queue = tmp_path / "jobs" / "pool" / "s" / "default"
    for sub in ("todo", "claimed", "done"):
        (queue / sub).mkdir(parents=True, exist_ok=True)
    for i, (name, run) in enumerate(runs):
        _write(queue / "todo" / f"{i:06d}.task", pickle.dumps((name, f"fp-{name}", Packed.of(run), str(tmp_path),
                                                                            True)))
    return queue


def _results(queue: Path) -> dict:
    return {p.name: pickle.loads(p.read_bytes()) for p in (queue / "done").glob("*.result")}


def test_a_worker_runs_queued_jobs_once_and_stops_after_a_failed_one(tmp_path):
    runs = [("a", _out("a", str(tmp_path))), ("b", _out("b", str(tmp_path))), ("bad", _boom),
            ("c", _out("c", str(tmp_path)))]
    queue = _queue(tmp_path, runs)
    assert pool_worker(str(queue), idle_s=0.2, poll_s=0.01) == 3  # a, b, then bad: it stops there
    results = _results(queue)
    assert sorted(results) == ["000000.result", "000001.result", "000002.result"]
    status, outcome = results["000000.result"]
    assert status == "ok" and isinstance(outcome, JobOutcome) and outcome.outputs == (str(tmp_path / "a.txt"),)
    status, error = results["000002.result"]
    assert status == "error" and isinstance(error, ValueError) and str(error) == "bad input in x.wav"
    assert [p.name for p in (queue / "todo").iterdir()] == ["000003.task"]  # left for a fresh worker
    assert not list((queue / "claimed").iterdir())
    ledger = Ledger(tmp_path)
    assert ledger.is_done("a", "fp-a") and ledger.is_done("b", "fp-b") and not ledger.is_done("bad", "fp-bad")
    assert "ValueError: bad input" in (tmp_path / "logs" / "bad.log").read_text()  # the traceback, in its log
    assert "(pool worker)" in ledger.state("bad")["job_id"]  # the ledger named the worker that ran it
    assert pool_worker(str(queue), idle_s=0.2, poll_s=0.01) == 1 and ledger.is_done("c", "fp-c")


def test_a_job_ending_the_process_stays_claimed_for_the_requeued_worker(tmp_path, monkeypatch):
    """submitit requeues a pre-empted job and exits (SystemExit): the job it held is run first
    by the worker SLURM starts again under the same id."""
    calls = tmp_path / "calls"

    def preempted_once(log):
        calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
        if len(calls.read_text()) == 1:
            raise SystemExit(-1)
        return []

    queue = _queue(tmp_path, [("pre", preempted_once), ("a", _out("a", str(tmp_path)))])
    monkeypatch.setattr(pool, "_worker_id", lambda: "81240_3")
    with pytest.raises(SystemExit):
        pool_worker(str(queue), idle_s=0.2, poll_s=0.01)
    assert not _results(queue) and (queue / "claimed" / "000000.task@81240_3").exists()
    assert (queue / "todo" / "000001.task").exists()
    assert pool_worker(str(queue), idle_s=0.2, poll_s=0.01) == 2  # the same id again: its job first
    assert _results(queue)["000000.result"][0] == "ok" and calls.read_text() == "xx"


def test_a_requeued_worker_runs_the_job_it_held_first(tmp_path, monkeypatch):
    queue = _queue(tmp_path, [("a", _out("a", str(tmp_path))), ("b", _out("b", str(tmp_path)))])
    held = _claim(queue / "todo", queue / "claimed", "81240_3")  # claimed, then pre-empted
    assert held is not None and held.name == "000000.task@81240_3"
    assert _claim(queue / "todo", queue / "claimed", "81240_3") == held  # its own claim comes back first
    monkeypatch.setattr(pool, "_worker_id", lambda: "81240_3")
    assert pool_worker(str(queue), idle_s=0.2, poll_s=0.01) == 2
    assert sorted(_results(queue)) == ["000000.result", "000001.result"]


def _race(args) -> list[str]:
    queue, me = args
    got = []
    while (task := _claim(Path(queue) / "todo", Path(queue) / "claimed", me)) is not None:
        got.append(task.name.split("@")[0])
        task.rename(Path(queue) / "done" / task.name)  # out of claimed/, as a worker's finished job
    return got


def test_workers_racing_for_jobs_never_take_the_same_one(tmp_path):
    queue = tmp_path / "q"
    for sub in ("todo", "claimed", "done"):
        (queue / sub).mkdir(parents=True)
    for i in range(200):
        (queue / "todo" / f"{i:06d}.task").write_bytes(b"x")
    with multiprocessing.get_context("spawn").Pool(4) as workers:
        taken = workers.map(_race, [(str(queue), f"w{k}") for k in range(4)])
    every = [name for got in taken for name in got]
    assert sorted(every) == sorted(f"{i:06d}.task" for i in range(200))  # each exactly once


def _slow(name: str, folder: str, seconds: float):
    def run(log):
        time.sleep(seconds)
        return _out(name, folder)(log)
    return run


def test_a_job_queued_behind_a_busy_worker_counts_its_wait_apart_from_the_overhead(tmp_path):
    # one worker, two jobs queued at once: the second waits while the first runs (0.4 s)
    queued = time.time()
    queue = _queue(tmp_path, [("a", _slow("a", str(tmp_path), 0.4)), ("b", _out("b", str(tmp_path)))])
    assert pool_worker(str(queue), idle_s=0.1, poll_s=0.01) == 2
    results = _results(queue)
    first, second = results["000000.result"][1], results["000001.result"][1]
    assert first.worker == second.worker and first.duration_s >= 0.4 and second.started_at >= first.ended_at
    stats = RunStats(jobs=[{"where": "slurm", "worker": o.worker, "submitted_at": queued, "started_at": o.started_at,
                            "ended_at": o.ended_at, "duration_s": o.duration_s,
                            "in_flight_s": o.ended_at + 0.5 - queued} for o in (first, second)])
    waited = stats.waited_s()
    assert waited[0] == 0.0 and waited[1] == pytest.approx(first.ended_at - first.started_at)  # all of a's run
    assert stats.overhead_s()[1] == pytest.approx(second.started_at - queued - waited[1] + 0.5)
    assert stats.ran_at_once() == 1


@pytest.mark.parametrize("stop", [False, True])
def test_a_worker_stops_when_idle_or_told(tmp_path, stop):
    queue = _queue(tmp_path, [])
    if stop:
        (queue.parent / STOP_FILE).touch()
        _write(queue / "todo" / "000000.task", pickle.dumps(("a", "fp", Packed.of(_out("a", str(tmp_path))),
                                                                 str(tmp_path), True)))
    assert pool_worker(str(queue), idle_s=0.1, poll_s=0.01) == 0
    assert (queue / "todo" / "000000.task").exists() == stop  # told to stop: it takes nothing more


class _FakeWorker:
    """A submitit job that has already ended with an error (as a worker that cannot start)."""

    def __init__(self, n: int) -> None:
        self.job_id = f"9{n}"
        self.paths = type("P", (), {"stderr": Path(f"/logs/9{n}_0_log.err")})()

    def done(self) -> bool:
        return True

    def exception(self):
        return RuntimeError("python: not found")


class _FakeExecutor:
    def __init__(self) -> None:
        self.started: list[_FakeWorker] = []

    def batch(self):
        import contextlib

        return contextlib.nullcontext()

    def submit(self, *args):
        worker = _FakeWorker(len(self.started))
        self.started.append(worker)
        return worker


def test_workers_that_keep_failing_fail_the_queued_jobs_instead_of_restarting_forever(tmp_path):
    from study.config import ExecutorSettings, ResourceSpec
    from study.executors.pool import MAX_FAILED_WORKERS, PoolExecutor, PoolWorkerLost
    from study.graph import Job

    executor = PoolExecutor(ExecutorSettings(kind="slurm", cluster="local", pool=1, poll_s=0.01),
                            {"default": ResourceSpec()}, tmp_path)
    fake = executor._executors["default"] = _FakeExecutor()
    job = Job(name="prepare/esd", kind="prepare", deps=(), fingerprint=lambda: "fp", run=_out("a", str(tmp_path)))
    handle, = executor.submit([(job, "fp")])
    for _ in range(20):
        executor.ensure_workers("default", now=True)
    assert len(fake.started) == MAX_FAILED_WORKERS  # then no more
    assert handle.done()
    last_log = f"9{MAX_FAILED_WORKERS - 1}_0_log.err"  # the last fake worker started
    with pytest.raises(PoolWorkerLost, match=rf"could start.*{last_log}"):
        handle.result()


class _Busy(_FakeWorker):
    """A worker still running."""

    def done(self) -> bool:
        return False

    def exception(self):
        return None


def test_the_driver_lists_a_kind_s_results_once_per_poll_for_every_job_in_flight(tmp_path, monkeypatch):
    from study.config import ExecutorSettings, ResourceSpec
    from study.executors.pool import PoolExecutor
    from study.graph import Job

    executor = PoolExecutor(ExecutorSettings(kind="slurm", cluster="local", pool=2, poll_s=60.0),
                            {"default": ResourceSpec()}, tmp_path)
    fake = executor._executors["default"] = _FakeExecutor()
    fake.submit = lambda *args: _Busy(0)
    jobs = [(Job(name=f"prepare/c{i}", kind="prepare", deps=(), fingerprint=lambda: "fp",
                 run=_out("a", str(tmp_path))), "fp") for i in range(30)]
    handles = executor.submit(jobs)
    queue = executor.session / "default"
    for handle in handles[:2]:  # claimed by a worker that is running
        (queue / "todo" / f"{handle._seq}.task").rename(queue / "claimed" / f"{handle._seq}.task@90")
    executor._by_id["90"] = _Busy(0)
    executor._claims.clear()  # a new poll
    listings: list[str] = []
    glob = Path.glob
    monkeypatch.setattr(Path, "glob", lambda self, pattern: listings.append(self.name) or glob(self, pattern))
    assert not any(h.done() for h in handles)  # within one poll: one listing of done/ and claimed/ for all 30
    assert listings.count("done") == 1 and listings.count("claimed") == 1
    _write(queue / "done" / f"{handles[0]._seq}.result", pickle.dumps(("ok", JobOutcome(("x",), 1.0))))
    assert not handles[0].done()  # not seen until the next poll: listings are not repeated per job
    executor._results.clear()  # the next poll
    assert handles[0].done() and handles[0].result().outputs == ("x",) and not handles[1].done()
