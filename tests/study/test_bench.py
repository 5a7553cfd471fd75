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


def test_figures_from_a_run_s_stats():
    jobs = [  # in flight = overhead + waited + run time (of which loading)
        {"name": "prepare/esd", "where": "slurm", "in_flight_s": 1.5, "duration_s": 1.0, "load_s": 0.5},
        {"name": "finetune/r/fold-0", "where": "slurm", "in_flight_s": 10.0, "duration_s": 8.0, "load_s": 4.0,
         "waited_s": 0.5},
        {"name": "finetune/r/fold-1", "where": "slurm", "in_flight_s": 9.0, "duration_s": 6.0, "load_s": 0.0,
         "waited_s": 2.0},
        {"name": "report", "where": "driver", "in_flight_s": 3.0, "duration_s": 0.1},  # not sent: not counted
    ]
    figures = measure("slurm-pool", RunStats(jobs=jobs, max_in_flight=2, wall_s=20.0), _graph(2), max_overhead_s=1.0)
    assert figures.jobs_sent == 3 and figures.graph_jobs == 3 and figures.work_s == pytest.approx(15.1)
    assert figures.overhead_mean_s == pytest.approx((0.5 + 1.5 + 1.0) / 3)  # 1.0: at the target
    assert figures.overhead_max_s == pytest.approx(1.5) and figures.waited_mean_s == pytest.approx(2.5 / 3)
    assert figures.load_mean_s == pytest.approx(1.5) and figures.total_mean_s == pytest.approx(2.5)
    assert figures.passed and (figures.graph_width, figures.graph_width_finetune, figures.ran_at_once) == (2, 2, 2)
    line = figures.line()
    for part in ("3 jobs sent", "overhead per job mean 1.00 s, max 1.50 s [PASS <= 1 s]",
                 "waiting for a busy pool worker", "mean 0.83 s", "overhead + loading 2.50 s per job [FAIL <= 1 s]",
                 "graph allows 2 (2 fine-tuning), ran 2"):
        assert part in line, (part, line)
    slower = measure("slurm", RunStats(jobs=jobs[:1], wall_s=2.0), _graph(1), max_overhead_s=0.4)
    assert not slower.passed and "[FAIL <= 0.4 s]" in slower.line() and "busy pool worker" not in slower.line()


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
    assert local["graph_width_finetune"] == 1 and local["ran_at_once"] == 1  # a run's folds in one job here
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
