"""The study graph, its driver and the ledger under concurrency and failure, without
subprocesses: the steps are stubs, and a thread-pool executor finishes jobs out of order."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import study.report
from study import runner, steps
from study.config import (
    CorpusEntry,
    FinetuneRun,
    FinetuneSection,
    ModelEntry,
    ProbesSection,
    StudyConfig,
    StudyConfigError,
    load_study_config,
)
from study.executors.slurm import submitit_parameters
from study.graph import (
    Graph,
    Job,
    JobOutcome,
    StudyJobsFailed,
    execute_job,
    format_states,
    job_states,
    run_graph,
)
from study.ledger import Ledger, StudyLock, StudyLockedError


def _config(tmp_path: Path, runs: int = 1, folds: int = 5) -> StudyConfig:
    return StudyConfig(
        name="t", out=tmp_path / "run", cache_root=tmp_path / "cache",
        corpora=(CorpusEntry("esd", "esd", tmp_path), CorpusEntry("pavoque", "esd", tmp_path, language="de")),
        models=(ModelEntry("w2v2-cn"),),
        probes=ProbesSection(models=("w2v2-cn",), corpora=("esd", "pavoque")),
        finetune=FinetuneSection(folds=folds, runs=tuple(
            FinetuneRun("w2v2-cn", "esd", test, strategy="lora") for test in ("esd", "pavoque")[:runs])))


@pytest.fixture
def stubbed(monkeypatch, tmp_path):
    """Every step a stub that writes one file and notes its call (thread-safe)."""
    calls: list[str] = []
    lock = threading.Lock()

    def stub(name):
        def fn(*args, **kwargs):
            with lock:
                calls.append(name)
                n = len(calls)
            path = tmp_path / "outputs" / f"{name}-{n}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
            return [path]
        return fn

    for name in ("prepare", "splits", "probes", "probes_group", "probes_gather", "finetune_run", "finetune_fold",
                 "finetune_gather", "table_one"):
        monkeypatch.setattr(steps, name, stub(name))
    monkeypatch.setattr(runner, "_extract", stub("extract"))
    monkeypatch.setattr(runner, "_manifest_fp", lambda corpus, root: "manifest-fp")
    monkeypatch.setattr(study.report, "build_report", lambda out: out / "report.html")
    return calls


class _Future:
    def __init__(self, future, job_id: str, log: str) -> None:
        self._future, self.job_id, self.log = future, job_id, log

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> JobOutcome:
        return self._future.result()

    def cancel(self) -> bool:
        return self._future.cancel()


class ThreadExecutor:
    """Jobs on threads; later jobs sleep less, so jobs finish in another order than sent."""

    name = "threads"
    split_jobs = True
    poll_s = 0.005

    def __init__(self, run_dir: Path, fail: set[str] = frozenset()) -> None:
        self.run_dir, self.fail = run_dir, set(fail)
        self.pool = ThreadPoolExecutor(8)
        self.finished: list[str] = []

    def submit(self, jobs):
        handles = []
        for i, (job, fp) in enumerate(jobs):
            def work(job=job, fp=fp, delay=0.02 * (len(jobs) - i)):
                time.sleep(delay)
                if job.name in self.fail:
                    raise RuntimeError(f"{job.name} died")
                outcome = execute_job(job.name, fp, job.run, str(self.run_dir))
                self.finished.append(job.name)
                return outcome
            handles.append(_Future(self.pool.submit(work), f"t{len(self.finished)}-{i}", f"{self.run_dir}/x.log"))
        return handles

    def close(self) -> None:
        self.pool.shutdown()


def test_the_graph_exposes_every_finetuning_fold_at_once(tmp_path):
    graph = runner.build_graph(_config(tmp_path, runs=2), split=True)
    names = [job.name for job in graph]
    run = "finetune/w2v2-cn/esd-to-esd/lora-every-layer"
    assert [n for n in names if n.startswith(run + "/")] == [f"{run}/fold-{k}" for k in range(5)]
    assert graph.jobs[run].kind == "finetune-gather" and graph.jobs[run].deps == tuple(f"{run}/fold-{k}" for k in range(5))
    assert graph.jobs[f"{run}/fold-3"].covered_by == run
    assert set(graph.jobs["finetune/table1"].deps) == {run, run.replace("esd-to-esd", "esd-to-pavoque")}
    assert names[-1] == "report" and set(graph.jobs["report"].deps) == set(names[:-1])
    assert graph.max_width(["finetune-fold"]) == 10  # 5 folds x 2 runs together, not 1
    assert graph.jobs["probes"].deps == ("probes/w2v2-cn",) and graph.jobs["probes/w2v2-cn"].covered_by == "probes"
    assert graph.jobs["extract/w2v2-cn/esd"].resource_kind == "extract"
    sharded = dataclasses.replace(_config(tmp_path), executor=dataclasses.replace(
        _config(tmp_path).executor, extract_shards=3))
    graph = runner.build_graph(sharded, split=True)
    shards = [f"extract/w2v2-cn/esd/shard-{i}-of-3" for i in range(3)]
    assert graph.jobs["extract/w2v2-cn/esd"].deps == tuple(shards) and graph.jobs[shards[0]].kind == "extract"
    assert "extract/w2v2-cn/esd" in graph.jobs["probes/w2v2-cn"].deps
    one_process = runner.build_graph(_config(tmp_path, runs=2), split=False)
    assert one_process.max_width(["finetune", "finetune-fold"]) == 2  # a run's folds in one job
    with pytest.raises(ValueError, match="not in the graph"):
        Graph().add(Job("a", "probes", ("b",), lambda: "", lambda log: []))


def test_jobs_finish_out_of_order_and_each_records_itself(stubbed, tmp_path):
    config = _config(tmp_path)
    executor = ThreadExecutor(config.out)
    run_graph(runner.build_graph(config, split=True), Ledger(config.out), executor, log=lambda _: None)
    folds = [n for n in executor.finished if "/fold-" in n]
    assert len(folds) == 5 and folds != sorted(folds)  # they landed in another order than sent
    records = sorted(p.name for p in (config.out / "ledger" / "done").glob("*.json"))
    assert len(records) == len(runner.build_graph(config, split=True))  # one file per job
    record = json.loads((config.out / "ledger" / "done" / "probes.json").read_text())
    assert record["name"] == "probes" and record["duration_s"] >= 0 and record["outputs"]
    assert stubbed.count("finetune_fold") == 5 and stubbed.count("finetune_gather") == 1
    assert stubbed.count("probes_group") == 1 and stubbed.count("probes_gather") == 1 and "probes" not in stubbed
    # nothing left to do: no job runs again, not even a fold (the gathered run covers them)
    stubbed.clear()
    run_graph(runner.build_graph(config, split=True), Ledger(config.out), ThreadExecutor(config.out),
              log=lambda _: None)
    assert stubbed == []


def test_a_failed_job_is_named_with_its_log_and_only_it_reruns(stubbed, tmp_path):
    config = _config(tmp_path)
    run = "finetune/w2v2-cn/esd-to-esd/lora-every-layer"
    lines: list[str] = []
    with pytest.raises(StudyJobsFailed, match=f"{run}/fold-2: RuntimeError") as err:
        run_graph(runner.build_graph(config, split=True), Ledger(config.out),
                  ThreadExecutor(config.out, fail={f"{run}/fold-2"}), log=lines.append)
    assert "x.log" in str(err.value) and f"{run}: not run: {run}/fold-2 failed" in str(err.value)
    assert stubbed.count("finetune_fold") == 4 and "finetune_gather" not in stubbed
    states = {name: state for name, state, _ in job_states(runner.build_graph(config, split=True), Ledger(config.out))}
    assert states[f"{run}/fold-2"] == "failed" and states[f"{run}/fold-1"] == "done"
    assert states[run] == "waiting" and states["probes"] == "done"
    stubbed.clear()
    lines.clear()
    run_graph(runner.build_graph(config, split=True), Ledger(config.out), ThreadExecutor(config.out), log=lines.append)
    assert sorted(stubbed) == ["finetune_fold", "finetune_gather", "table_one"]
    assert [ln.split()[-1] for ln in lines if ln.startswith("[run ]")] == [f"{run}/fold-2", run, "finetune/table1"]


def test_status_shows_done_running_with_job_id_interrupted_failed_and_waiting(stubbed, tmp_path):
    config = _config(tmp_path)
    graph = runner.build_graph(config, split=True)
    ledger = Ledger(config.out)
    execute_job("prepare/esd", graph.jobs["prepare/esd"].fingerprint(), graph.jobs["prepare/esd"].run, str(config.out))
    ledger.set_state("prepare/pavoque", "running", job_id="4242_1", log="/shared/jobs/4242_1_0_log.err")
    ledger.set_state("splits/esd", "failed", job_id="4243", log="/shared/jobs/4243_0_log.err", error="OOM")
    with StudyLock(config.out):  # a study holds the run directory: the job is running
        rows = {name: (state, detail) for name, state, detail in job_states(graph, ledger)}
    assert rows["prepare/esd"] == ("done", "")
    assert rows["prepare/pavoque"][0] == "running" and "job 4242_1" in rows["prepare/pavoque"][1]
    assert rows["splits/esd"] == ("failed", "log /shared/jobs/4243_0_log.err: OOM")
    assert rows["extract/w2v2-cn/esd"] == ("waiting", "ready")
    assert rows["probes/w2v2-cn"][0] == "waiting" and "for extract/w2v2-cn/esd" in rows["probes/w2v2-cn"][1]
    assert rows["probes"] == ("waiting", "for probes/w2v2-cn")
    # no study holds the lock: a job left "running" was killed with its study
    rows = {name: (state, detail) for name, state, detail in job_states(graph, ledger)}
    assert rows["prepare/pavoque"][0] == "interrupted" and "rerun to resume" in rows["prepare/pavoque"][1]
    lines = format_states(job_states(graph, ledger))
    assert lines[0] == "done        prepare/esd" and lines[-1].endswith(f"of {len(graph)} jobs")


def test_two_studies_on_one_output_refuse_with_a_clear_message(stubbed, tmp_path):
    config = _config(tmp_path)
    with StudyLock(config.out):
        with pytest.raises(StudyLockedError, match="another `crossling study` .* is running on this output"):
            runner.run_study(config, log=lambda _: None)
    assert stubbed == []
    runner.run_study(config, log=lambda _: None)  # released: the study runs
    assert "probes" in stubbed and not (config.out / "study.lock").exists()


def test_ledger_records_from_many_writers_all_survive(tmp_path):
    def mark(i):
        Ledger(tmp_path).mark_done(f"finetune/run/fold-{i}", f"fp{i}", [tmp_path])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(mark, range(40)))
    ledger = Ledger(tmp_path)
    assert all(ledger.is_done(f"finetune/run/fold-{i}", f"fp{i}") for i in range(40))
    # a ledger of an earlier version still counts as done, and is never rewritten
    (tmp_path / "steps.json").write_text(json.dumps({"probes": {"fingerprint": "old", "outputs": []}}))
    assert Ledger(tmp_path).is_done("probes", "old") and "probes" in Ledger(tmp_path).steps
    (tmp_path / "ledger" / "done" / "finetune~run~fold-3.json").write_text("{half")
    with pytest.raises(ValueError, match="fold-3.json: corrupt ledger record"):
        Ledger(tmp_path).is_done("finetune/run/fold-3", "fp3")


def test_executor_and_resources_in_the_toml(tmp_path):
    base = f"""
[study]
executor = "slurm"
[corpora.esd]
reader = "esd"
root = "{tmp_path}"
[probes]
enabled = false
[finetune]
enabled = false
"""
    path = tmp_path / "s.toml"
    path.write_text(base + '[executor]\nfolder = "jobs"\n[resources.finetune]\npartition = "gpu"\ntime_min = 90\n')
    config = load_study_config(path)
    assert config.executor.kind == "slurm" and config.executor.folder == tmp_path / "jobs"
    r = config.resources
    assert r["extract"].gpus == 1 and r["finetune"].gpus == 1 and r["probes"].gpus == 0 and r["probes"].cpus >= 4
    assert r["finetune"].partition == "gpu" and r["finetune"].time_min == 90 and r["extract"].partition is None
    params = submitit_parameters(r["finetune"], "finetune")
    assert params["gpus_per_node"] == 1 and params["timeout_min"] == 90 and params["slurm_partition"] == "gpu"
    assert params["slurm_array_parallelism"] == r["finetune"].array_parallelism
    path.write_text(base.replace('"slurm"', '"pbs"') + '[resources.finetuning]\ngpus = 1\n[resources.probes]\n'
                    'gpus = "one"\n[executor]\nkind = "dask"\n')
    with pytest.raises(StudyConfigError) as err:
        load_study_config(path)
    text = str(err.value)
    for must in ("[study.executor]", "pbs", "[resources.finetuning]", "did you mean", "[resources.probes.gpus]",
                 "[executor.kind]"):
        assert must in text, (must, text)


def test_status_and_unknown_executor_on_the_command_line(stubbed, tmp_path):
    from typer.testing import CliRunner

    from cli import app

    path = tmp_path / "s.toml"
    path.write_text(f'[study]\nout = "run"\n[corpora.esd]\nreader = "esd"\nroot = "{tmp_path}"\n'
                    '[probes]\nenabled = false\n[finetune]\nenabled = false\n')
    result = CliRunner().invoke(app, ["study", "--config", str(path), "--status"])
    assert result.exit_code == 0, result.output
    assert "waiting     prepare/esd  (ready)" in result.output and "of 2 jobs" in result.output
    result = CliRunner().invoke(app, ["study", "--config", str(path), "--executor", "sge"])
    assert result.exit_code == 2 and "sge" in result.output and "slurm" in result.output
    # a scheduler address with another executor would silently run elsewhere: refused
    result = CliRunner().invoke(app, ["study", "--config", str(path), "--scheduler", "tcp://h:8786"])
    assert result.exit_code == 2 and "--scheduler is for the dask executor" in result.output
    assert "runs on local" in result.output and "--executor dask" in result.output


def test_executor_settings_another_executor_ignores_are_named(stubbed, tmp_path):
    from study.executors import settings_notes

    config = dataclasses.replace(_config(tmp_path), out=tmp_path / "noted")
    config = dataclasses.replace(config, executor=dataclasses.replace(config.executor, pool=4,
                                                                      scheduler="tcp://h:8786"))
    assert settings_notes(dataclasses.replace(config.executor, kind="slurm")) == [
        "note: the Dask scheduler tcp://h:8786 is used by the dask executor only; the slurm executor does not "
        "connect to it"]
    assert settings_notes(dataclasses.replace(config.executor, kind="dask", scheduler=None)) == [
        "note: [executor] pool = 4 applies to the slurm executor only; the dask executor runs without a pool"]
    lines: list[str] = []
    runner.run_study(config, log=lines.append)  # a TOML written for SLURM still runs here, with the notes
    assert lines[:2] == settings_notes(config.executor) and len(lines[:2]) == 2


def test_local_study_keeps_one_job_per_run_in_this_process(stubbed, tmp_path):
    config = dataclasses.replace(_config(tmp_path), out=tmp_path / "one")
    lines: list[str] = []
    runner.run_study(config, log=lines.append)
    assert stubbed == ["prepare", "splits", "prepare", "splits", "extract", "extract", "probes", "finetune_run",
                       "table_one"]
    assert (config.out / "logs" / "probes.log").read_text().startswith("== probes on ")


class _Stuck:
    """A job in flight when the user presses Ctrl-C (raised while the driver polls)."""

    def __init__(self, job_id: str, cancellable: bool) -> None:
        self.job_id, self.log, self.cancellable = job_id, f"/jobs/{job_id}.err", cancellable

    def done(self) -> bool:
        raise KeyboardInterrupt

    def result(self) -> JobOutcome:
        raise AssertionError("never landed")

    def cancel(self) -> bool:
        return self.cancellable  # False: already taken by a worker that will finish it


class _StuckExecutor:
    name, split_jobs, poll_s = "stuck", True, 0.0

    def submit(self, jobs):
        return [_Stuck(f"9{i}", cancellable=job.name != "prepare/b") for i, (job, _) in enumerate(jobs)]

    def close(self) -> None:
        pass


def test_jobs_cancelled_when_the_study_stops_show_cancelled_not_interrupted(tmp_path):
    graph = Graph()
    for name in ("prepare/a", "prepare/b"):
        graph.add(Job(name, "prepare", (), lambda: "fp", lambda log: []))
    ledger = Ledger(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_graph(graph, ledger, _StuckExecutor(), log=lambda _line: None)
    assert ledger.state("prepare/a")["state"] == "cancelled" and ledger.state("prepare/a")["job_id"] == "90"
    assert ledger.state("prepare/b")["state"] == "running"  # not cancellable: it may still finish
    rows = {name: (state, detail) for name, state, detail in job_states(graph, ledger)}
    assert rows["prepare/a"] == ("cancelled", "job 90 cancelled when its study stopped; rerun to run it")
    assert rows["prepare/b"][0] == "interrupted" and "rerun to resume" in rows["prepare/b"][1]


def test_status_names_each_job_waited_for_once_and_a_long_list_short(stubbed, tmp_path):
    graph = runner.build_graph(_config(tmp_path), split=True)
    assert all(len(set(job.deps)) == len(job.deps) for job in graph)  # a corpus read twice is one dependency
    rows = {name: detail for name, state, detail in job_states(graph, Ledger(tmp_path / "run")) if state == "waiting"}
    report = graph.jobs["report"]
    assert len(report.deps) > 3 and rows["report"] == f"for {', '.join(report.deps[:3])} and {len(report.deps) - 3} more"
