"""How a job travels to another process: the submitted call unpickles without importing
the job's heavy code (torch, the study's configs), the job times loading it apart, and a
one-job process exits without the interpreter's teardown once its job is recorded done."""

from __future__ import annotations

import functools
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import cloudpickle

from study.config import FinetuneRun
from study.graph import JobOutcome, Packed, execute_job
from study.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)


def test_a_packed_job_unpickles_without_importing_its_code(tmp_path):
    run = FinetuneRun("w2v2-cn", "esd", "esd", strategy="lora")  # study.config imports finetune and torch
    job = lambda log, run=run: [run.model]  # noqa: E731 - pickled by value, as the study's jobs are
    sent = tmp_path / "sent.pkl"
    sent.write_bytes(cloudpickle.dumps(functools.partial(execute_job, "finetune/x", "fp", Packed.of(job),
                                                         str(tmp_path / "run"))))
    bare = tmp_path / "bare.pkl"
    bare.write_bytes(cloudpickle.dumps(functools.partial(execute_job, "finetune/x", "fp", job, str(tmp_path / "run"))))
    probe = """
        import pickle, sys
        call = pickle.loads(open({path!r}, "rb").read())
        print("torch" in sys.modules, "study.config" in sys.modules)
        outcome = call()
        print("torch" in sys.modules, outcome.outputs, outcome.load_s > 0)
    """
    packed = _python(probe.format(path=str(sent)), tmp_path)
    assert packed.returncode == 0, packed.stderr
    assert packed.stdout.split("\n")[:2] == ["False False", "True ('w2v2-cn',) True"]
    # the same job sent as it is imports torch while being unpickled, before its timer starts
    unpacked = _python(probe.format(path=str(bare)), tmp_path)
    assert unpacked.returncode == 0, unpacked.stderr
    assert unpacked.stdout.split("\n")[:2] == ["True True", "True ('w2v2-cn',) False"]


def test_loading_the_job_is_timed_inside_its_run_time(tmp_path):
    (tmp_path / "a").touch()
    outcome = execute_job("probes", "fp1", Packed.of(lambda log: [tmp_path / "a"]), str(tmp_path))
    assert isinstance(outcome, JobOutcome) and outcome.outputs == (str(tmp_path / "a"),)
    assert 0 < outcome.load_s <= outcome.duration_s
    assert Ledger(tmp_path).is_done("probes", "fp1")
    plain = execute_job("splits", "fp2", lambda log: [], str(tmp_path))
    assert plain.load_s == 0.0
    assert pickle.loads(pickle.dumps(Packed.of(lambda log: ["x"])))(print) == ["x"]


def _register_marker(marker: str, child: bool):
    """A job body: registers an exit handler that writes ``marker`` (any other library's
    handler), and with ``child`` leaves a child process running."""
    def run(log):
        import atexit
        import subprocess as sp
        from pathlib import Path as P

        atexit.register(lambda: P(marker).write_text("teardown ran"))
        if child:
            sp.Popen(["sleep", "3"])
        return []
    return run


def test_a_submitit_job_skips_teardown_only_when_its_result_is_written_and_no_child_lives(tmp_path):
    import submitit

    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="local")
    executor.update_parameters(timeout_min=2)
    outcomes = {}
    for case, child in (("plain", False), ("child", True)):
        marker = tmp_path / f"{case}.marker"
        job = executor.submit(functools.partial(execute_job, f"sed/{case}", "fp", Packed.of(_register_marker(str(marker), child)),
                                                str(tmp_path / "run"), None, exit_fast=True))
        outcomes[case] = (job.result(), marker.exists())
        assert Ledger(tmp_path / "run").is_done(f"sed/{case}", "fp")
    assert outcomes["plain"][1] is False  # the result was written, no child: teardown skipped
    assert outcomes["child"][1] is True  # a child still ran: the process exited as usual
    assert all(isinstance(o, JobOutcome) for o, _ in outcomes.values())


def test_outside_submitit_a_job_process_exits_as_usual(tmp_path):
    code = """
        import atexit
        from study.graph import execute_job
        atexit.register(lambda: open("teardown-ran", "w").close())
        execute_job("sed", "fp", lambda log: [], "run", exit_fast=True)
    """
    done = _python(code, tmp_path)
    assert done.returncode == 0 and (tmp_path / "teardown-ran").exists()  # no result of submitit's: exit as usual
    assert Ledger(tmp_path / "run").is_done("sed", "fp")


def test_a_job_sent_again_after_it_finished_is_not_run_again(tmp_path):
    (tmp_path / "a").touch()
    calls: list[str] = []

    def run(log):
        calls.append("ran")
        return [tmp_path / "a"]

    first = execute_job("probes", "fp1", run, str(tmp_path), skip_done=True)
    again = execute_job("probes", "fp1", run, str(tmp_path), skip_done=True)  # a scheduler's retry
    assert calls == ["ran"] and again.outputs == first.outputs == (str(tmp_path / "a"),)
    log = (tmp_path / "logs" / "probes.log").read_text()
    assert log.count(" pid ") == 1 and "sent again" in log and "not run again" in log
    execute_job("probes", "fp2", run, str(tmp_path), skip_done=True)  # other inputs: it runs
    (tmp_path / "a").unlink()
    execute_job("probes", "fp2", run, str(tmp_path), skip_done=True)  # its output is gone: it runs
    execute_job("probes", "fp2", lambda log: [], str(tmp_path))  # the driver's own call always runs
    assert calls == ["ran"] * 3
