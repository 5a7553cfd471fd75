"""The same study on three executors: in this process, through submitit (its local
executor: the real submission path, each job a subprocess) and on a local Dask cluster,
with one job killed mid-run and the study rerun. The result tables are identical, a killed
job is rerun and only it, and ``--status`` shows the graph.

One demo-sized study exercises every kind of job a cluster gets: preparing corpora, folds,
extraction, the probes, fine-tuning folds (each its own job) and their gathering, Table I,
diarization and the report (one tiny model, one corpus, two folds, one epoch)."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from featstore.models.testing import save_tiny_model
from featstore.synth import SynthConfig, synthesize_demo
from study import bench
from study.config import load_study_config
from study.graph import KILL_ENV, StudyJobsFailed
from study.runner import run_study, study_status

pytestmark = pytest.mark.slow

FOLD_JOB = "finetune/w2v2-cn/esd-to-esd/lora-every-layer/fold-1"
RUN_JOB = "finetune/w2v2-cn/esd-to-esd/lora-every-layer"
# columns that hold where a file is or how long a step took, not a result
VOLATILE = ("checkpoint", "cache_path", "test_cache_path", "seconds")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Demo speech of one language, a ZED-style diarization corpus made from it, a tiny
    wav2vec 2.0 and a tiny SpeechBrain emotion WavLM: built once for every test here."""
    from featstore.audio import load_row
    from featstore.manifest import load_manifest
    from featstore.paths import manifest_path
    from probes.sed import ConcatConfig, concatenate_for_sed
    from study import steps

    base = tmp_path_factory.mktemp("inputs")
    synthesize_demo(SynthConfig(out=base / "data", per_emotion=2, languages=("cn",)))
    steps.prepare("esd", base / "data" / "cn", "demo-cn", base / "scratch")
    manifest = load_manifest(manifest_path("demo-cn", base / "scratch"))
    manifest = manifest.filter(pl.col("speaker") == manifest["speaker"].min())  # a few clips are enough
    concatenate_for_sed(manifest, base / "zed", load_row, ConcatConfig(seed=0))
    save_tiny_model(base / "models" / "w2v2-cn", "wav2vec2", "pretraining", feat_extract_norm="group", language="cn")
    save_tiny_model(base / "models" / "emo", "wavlm", "speechbrain", language="en")
    return base


SED = """
[corpora.zed]
reader = "zed"
root = "{zed}"
[models.emo]
path = "{emo}"
[sed]
enabled = true
model = "emo"
corpus = "zed"
device = "cpu"
[resources.sed]
gpus = 0
"""


def write_study(inputs: Path, folder: Path, executor: str, shards: int = 1, pool: int = 0) -> Path:
    """The study's TOML in ``folder`` (own cache and run directory), on ``executor``: the
    benchmark's study (``crossling study-bench``) with two folds and diarization."""
    return bench.write_study(inputs, folder, executor, folds=2, pool=pool, shards=shards, name="tiny",
                             extra=SED.format(zed=inputs / "zed", emo=inputs / "models" / "emo"))


def tables(out: Path) -> dict[str, pl.DataFrame]:
    """Every result table of a run, without the columns that say where files are."""
    found = {}
    for rel in ("probes/results.parquet", "probes/predictions.parquet", "finetune/table1.csv",
                "finetune/w2v2-cn/esd-to-esd/lora-every-layer/results.parquet",
                "finetune/w2v2-cn/esd-to-esd/lora-every-layer/predictions.parquet",
                "finetune/w2v2-cn/esd-to-esd/lora-every-layer/table_one.csv",
                "sed/model/per_utterance.parquet"):
        path = out / rel
        frame = pl.read_csv(path) if rel.endswith(".csv") else pl.read_parquet(path)
        frame = frame.drop([c for c in VOLATILE if c in frame.columns])
        # the configs recorded in the rows name this study's own folders
        found[rel] = frame.with_columns(pl.col(pl.Utf8).str.replace_all(str(out.parent), "<study>", literal=True))
    return found


def same_tables(out: Path, reference: Path) -> None:
    """Every result table of ``out`` equals the reference run's, value for value."""
    theirs = tables(reference)
    for name, frame in tables(out).items():
        try:
            assert_frame_equal(frame, theirs[name], check_exact=True)
        except AssertionError as err:
            raise AssertionError(f"{name} differs from the local run's: {err}") from None


def starts(out: Path) -> dict[str, int]:
    """How many times each job of a run started (the header lines of its log)."""
    return {lines[0].split()[1]: sum(1 for line in lines if line.startswith("== ") and " pid " in line)
            for lines in (log.read_text().splitlines() for log in (out / "logs").rglob("*.log")) if lines}


def ran(lines: list[str]) -> list[str]:
    return [line.split()[-1] for line in lines if line.startswith("[run ]")]


@pytest.fixture(scope="module")
def local_run(inputs, tmp_path_factory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("local")
    lines: list[str] = []
    run_study(load_study_config(write_study(inputs, folder, "local")), log=lines.append)
    return folder / "out", lines


def test_local_runs_every_kind_of_job_in_order(local_run):
    out, lines = local_run
    assert ran(lines) == ["prepare/esd", "splits/esd", "prepare/zed", "extract/w2v2-cn/esd", "probes", RUN_JOB,
                          "finetune/table1", "sed"]
    assert (out / "report.html").exists()


def test_slurm_through_submitit_gives_the_same_tables_and_reruns_only_a_killed_job(
        inputs, local_run, tmp_path, monkeypatch):
    folder = tmp_path / "slurm"
    config = load_study_config(write_study(inputs, folder, "slurm"))
    monkeypatch.setenv(KILL_ENV, FOLD_JOB)  # this fold's process dies (SIGKILL) the first time it starts
    first: list[str] = []
    with pytest.raises(StudyJobsFailed, match="fold-1") as failure:
        run_study(config, log=first.append)
    # what happened and where to look (not the tail of submitit's own output)
    assert "ended without sending its result" in str(failure.value) and "_log.out" in str(failure.value)
    status = "\n".join(study_status(config))
    assert f"failed      {FOLD_JOB}" in status and f"waiting     {RUN_JOB}" in status
    assert "done        extract/w2v2-cn/esd" in status and "done        sed" in status
    second: list[str] = []
    run_study(config, log=second.append)
    assert set(ran(second)) == {FOLD_JOB, RUN_JOB, "finetune/table1"}  # the killed job and what waited on it
    assert f"[skip] {FOLD_JOB.replace('fold-1', 'fold-0')} (done, inputs unchanged)" in second
    same_tables(folder / "out", local_run[0])
    # every job shows done, and nothing reruns
    assert all(line.startswith("done") for line in study_status(config)[1:-1])
    third: list[str] = []
    run_study(config, log=third.append)
    assert ran(third) == []


def test_dask_with_a_worker_killed_mid_run_gives_the_same_tables(inputs, local_run, tmp_path, monkeypatch):
    import dask
    import distributed  # noqa: F401 - its defaults must be in dask's config before one is set and restored

    folder = tmp_path / "dask"
    config = load_study_config(write_study(inputs, folder, "dask", shards=2))  # extraction in 2 jobs, merged
    monkeypatch.setenv(KILL_ENV, FOLD_JOB)  # the worker running this fold dies
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # no silent retry: the study fails
        with pytest.raises(StudyJobsFailed, match="fold-1"):
            run_study(config, log=lambda _: None)
        # the dead worker's finished jobs are not run again (released, or skipped as done): each ran once
        runs = starts(folder / "out")
        assert runs.pop(FOLD_JOB) == 1 and len(runs) >= 6 and set(runs.values()) == {1}, sorted(runs.items())
        again: list[str] = []
        run_study(config, log=again.append)
    assert set(ran(again)) == {FOLD_JOB, RUN_JOB, "finetune/table1"}
    assert (folder / "cache" / "w2v2-cn" / "esd.shard-1-of-2.h5").exists()
    same_tables(folder / "out", local_run[0])


def test_slurm_pool_workers_run_several_jobs_each_and_a_killed_worker_s_job_is_rerun(
        inputs, local_run, tmp_path, monkeypatch):
    folder = tmp_path / "pool"
    config = load_study_config(write_study(inputs, folder, "slurm", pool=2))
    monkeypatch.setenv(KILL_ENV, FOLD_JOB)  # the worker running this fold dies (SIGKILL) the first time
    first: list[str] = []
    with pytest.raises(StudyJobsFailed, match="fold-1") as failure:
        run_study(config, log=first.append)
    assert "pool worker" in str(failure.value) and "submitit" in str(failure.value)  # the worker's log is named
    status = "\n".join(study_status(config))
    assert f"failed      {FOLD_JOB}" in status and f"waiting     {RUN_JOB}" in status
    assert "done        extract/w2v2-cn/esd" in status and "done        sed" in status
    # the jobs sent away ran in fewer processes than jobs: each worker ran several
    out = folder / "out"
    pids = [line.split(" pid ")[1].split()[0] for log in (out / "logs").rglob("*.log")
            for line in log.read_text().splitlines() if line.startswith("== ") and " pid " in line]
    sent = [pid for pid in pids if pid != str(os.getpid())]  # not run in this (the driver's) process
    workers = list((out / "jobs" / "submitit").glob("*_log.out"))
    assert len(sent) >= 6 and 0 < len(workers) < len(sent) and len(set(sent)) < len(sent), (workers, pids)
    second: list[str] = []
    run_study(config, log=second.append)
    assert set(ran(second)) == {FOLD_JOB, RUN_JOB, "finetune/table1"}
    same_tables(out, local_run[0])
    third: list[str] = []
    run_study(config, log=third.append)
    assert ran(third) == []
