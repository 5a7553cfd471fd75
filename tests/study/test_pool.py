"""The slurm pool's queue, in this process: a worker takes each job once, runs it, sends its
outcome (or its error) back and goes on; two workers never take the same job."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from study.executors.pool import STOP_FILE, _claim, pool_worker
from study.graph import JobOutcome, Packed
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
        _write(queue / "todo" / f"{i:06d}.task", pickle.dumps((name, f"fp-{name}", Packed.of(run), str(tmp_path))))
    return queue


def test_a_worker_runs_every_queued_job_once_and_sends_errors_back(tmp_path):
    queue = _queue(tmp_path, [("a", _out("a", str(tmp_path))), ("bad", _boom), ("b", _out("b", str(tmp_path)))])
    assert pool_worker(str(queue), idle_s=0.2, poll_s=0.01) == 3
    results = {p.name: pickle.loads(p.read_bytes()) for p in (queue / "done").glob("*.result")}
    assert sorted(results) == ["000000.result", "000001.result", "000002.result"]
    status, outcome = results["000000.result"]
    assert status == "ok" and isinstance(outcome, JobOutcome) and outcome.outputs == (str(tmp_path / "a.txt"),)
    assert results["000001.result"] == ("error", "ValueError: bad input in x.wav")
    assert results["000002.result"][0] == "ok"
    assert not list((queue / "todo").iterdir()) and not list((queue / "claimed").iterdir())
    ledger = Ledger(tmp_path)
    assert ledger.is_done("a", "fp-a") and ledger.is_done("b", "fp-b") and not ledger.is_done("bad", "fp-bad")
    assert "ValueError: bad input" in (tmp_path / "logs" / "bad.log").read_text()  # the traceback, in its log


def test_a_job_is_claimed_by_one_worker_only(tmp_path):
    queue = _queue(tmp_path, [("a", _out("a", str(tmp_path)))])
    first = _claim(queue / "todo", queue / "claimed", "w1")
    assert first is not None and first.name == "000000.task@w1"
    assert _claim(queue / "todo", queue / "claimed", "w2") is None


@pytest.mark.parametrize("stop", [False, True])
def test_a_worker_stops_when_idle_or_told(tmp_path, stop):
    queue = _queue(tmp_path, [])
    if stop:
        (queue.parent / STOP_FILE).touch()
        _write(queue / "todo" / "000000.task", pickle.dumps(("a", "fp", Packed.of(_out("a", str(tmp_path))),
                                                                 str(tmp_path))))
    assert pool_worker(str(queue), idle_s=0.1, poll_s=0.01) == 0
    assert (queue / "todo" / "000000.task").exists() == stop  # told to stop: it takes nothing more
