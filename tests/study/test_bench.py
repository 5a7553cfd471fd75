"""``crossling study-bench``: its figures from a run's stats (checked by hand), its lines,
its JSON, and a real run of the local executor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from study.bench import measure
from study.graph import Graph, Job, RunStats


def _graph(folds: int) -> Graph:
    graph = Graph()
    graph.add(Job("prepare/esd", "prepare", (), lambda: "", lambda log: []))
    for k in range(folds):
        graph.add(Job(f"finetune/r/fold-{k}", "finetune-fold", ("prepare/esd",), lambda: "", lambda log: []))
    return graph


def _job(name, worker, submitted, started, duration, in_flight, load):
    return {"name": name, "where": "slurm-pool", "worker": worker, "submitted_at": submitted, "started_at": started,
            "ended_at": started + duration, "duration_s": duration, "in_flight_s": in_flight, "load_s": load}


def test_figures_from_a_run_s_stats():
    jobs = [  # in flight = overhead + wait for a busy worker + run time (of which loading)
        _job("prepare/esd", "w1", 100.0, 100.5, 1.0, 1.5, 0.5),  # its worker's first job: no wait
        _job("finetune/r/fold-0", "w1", 101.0, 101.6, 8.0, 10.0, 4.0),  # waited 0.5 s for prepare/esd to end
        _job("finetune/r/fold-1", "w1", 101.0, 109.6, 6.0, 15.0, 0.0),  # waited 0.5 s + all of fold-0 (8 s)
        _job("finetune/r/fold-2", "w2", 101.0, 102.0, 6.0, 7.2, 4.0),  # another worker: no wait
        {"name": "report", "where": "driver", "in_flight_s": 3.0, "duration_s": 0.1},  # not sent: not counted
    ]
    stats = RunStats(jobs=jobs, max_in_flight=3, wall_s=20.0)
    assert stats.waited_s() == pytest.approx([0.0, 0.5, 8.5, 0.0])
    assert stats.overhead_s() == pytest.approx([0.5, 1.5, 0.5, 1.2]) and stats.ran_at_once() == 2  # fold-0 and 2
    figures = measure("slurm-pool", stats, _graph(3), max_overhead_s=1.0)
    assert figures.jobs_sent == 4 and figures.graph_jobs == 4 and figures.work_s == pytest.approx(21.1)
    assert figures.overhead_mean_s == pytest.approx(0.925) and figures.overhead_max_s == pytest.approx(1.5)
    assert figures.waited_mean_s == pytest.approx(2.25) and figures.load_mean_s == pytest.approx(2.125)
    assert figures.total_mean_s == pytest.approx(3.05) and figures.passed
    assert (figures.graph_width, figures.graph_width_finetune, figures.sent_at_once, figures.ran_at_once) == (3, 3, 3, 2)
    line = figures.line()
    for part in ("4 jobs sent", "scheduling overhead per job mean 0.93 s [PASS <= 1 s], max 1.50 s",
                 "waiting for a busy worker", "mean 2.25 s", "overhead + loading 3.05 s per job [FAIL <= 1 s]",
                 "graph allows 3 (3 fine-tuning), sent together 3, ran 2"):
        assert part in line, (part, line)
    slower = measure("slurm", RunStats(jobs=jobs[:1], wall_s=2.0), _graph(1), max_overhead_s=0.4)
    assert not slower.passed and "[FAIL <= 0.4 s]" in slower.line() and "busy worker" not in slower.line()


def test_study_bench_on_the_local_executor_prints_json_and_refuses_an_unknown_executor(tmp_path):
    from cli import app

    result = CliRunner().invoke(app, ["study-bench", "--out", str(tmp_path), "--executors", "local", "--folds", "2",
                                      "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output[result.output.index("{"):])
    local, = record["executors"]
    assert record["folds"] == 2 and record["machine"]["cpus"] >= 1 and record["versions"]["torch"]
    # in this process: every job of the graph ran here, one after the other, with nothing to load
    assert local["executor"] == "local" and local["jobs_sent"] == local["graph_jobs"] >= 6
    assert 0 <= local["overhead_mean_s"] < 0.5 and local["load_mean_s"] == 0 and local["waited_mean_s"] == 0
    assert local["work_s"] > 0 and local["wall_s"] >= local["work_s"] and local["passed"]
    assert local["graph_width_finetune"] == 1 and local["ran_at_once"] == local["sent_at_once"] == 1  # one job
    bad = CliRunner().invoke(app, ["study-bench", "--out", str(tmp_path), "--executors", "local,sge"])
    assert bad.exit_code == 2 and "unknown executor 'sge'" in bad.output and "slurm-pool" in bad.output


def test_write_only_leaves_a_study_per_executor_to_run_by_hand(tmp_path):
    from cli import app
    from study.config import load_study_config

    result = CliRunner().invoke(app, ["study-bench", "--out", str(tmp_path), "--executors", "slurm-pool,dask",
                                      "--folds", "3", "--write-only"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["slurm-pool", "dask"]
    for line, (kind, pool) in zip(lines, [("slurm", 2), ("dask", 0)], strict=True):
        path = Path(line.split("--config ")[1])
        config = load_study_config(path)  # its corpus and model are there: it can run as it is
        assert (config.executor.kind, config.executor.pool, config.finetune.folds) == (kind, pool, 3)
        assert config.executor.cluster == "local" and not config.out.exists()  # nothing ran
    listed = CliRunner().invoke(app, ["study-bench", "--out", str(tmp_path), "--executors", "dask", "--write-only",
                                      "--json"])
    assert listed.exit_code == 0 and list(json.loads(listed.output)) == ["dask"]
    none = CliRunner().invoke(app, ["study-bench", "--out", str(tmp_path), "--executors", " , "])
    assert none.exit_code == 2 and "give one or more of local, slurm, slurm-pool, dask" in none.output


def test_json_on_stdout_is_all_there_is_with_a_local_dask_cluster(tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(root / "cli.py"), "study-bench", "--out", str(tmp_path), "--executors",
                           "dask", "--folds", "2", "--json"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(done.stdout)  # the workers' job lines go to the job logs, not this stdout
    dask, = record["executors"]
    assert dask["executor"] == "dask" and dask["jobs_sent"] >= 6 and dask["load_mean_s"] > 0
