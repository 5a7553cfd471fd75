"""End to end: the demo on a small demo corpus, and `crossling study` on real-layout data
with tiny models; both resume without redoing finished steps."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from featstore.models.testing import save_tiny_model
from featstore.synth import SynthConfig, synthesize_demo
from study.config import load_study_config
from study.demo import DEMO_MODELS, DemoConfig, run_demo
from study.runner import run_study

pytestmark = pytest.mark.slow


def _quiet(lines: list[str]):
    return lines.append


def test_demo_runs_end_to_end_and_resumes(tmp_path):
    config = DemoConfig(out=tmp_path / "run", cache_root=tmp_path / "cache", per_emotion=4, finetune_epochs=1,
                        listeners_per_group=3)
    lines: list[str] = []
    report = run_demo(config, log=_quiet(lines))
    run = tmp_path / "run"
    page = report.read_text()
    assert "UNTRAINED" in page and "data:image/png;base64," in page
    for must in ("probes/results.parquet", "probes/figure1.png", "finetune/table1.csv", "human/table2_ua.csv",
                 "human/ttests.csv", "sed/table_iv.csv", "sed/timelines.png",
                 "human/likeness/likeness.parquet", "human/likeness/human_likeness.png"):
        assert (run / must).exists(), must
    results = pl.read_parquet(run / "probes" / "results.parquet")
    assert set(results["setting"]) == {"mono", "cross", "trans"}
    assert set(results["model"]) == set(DEMO_MODELS)  # "untrained-..." in every row
    assert results["model_fingerprint"].null_count() == 0 and results["manifest_fingerprint"].null_count() == 0
    table1 = pl.read_csv(run / "finetune" / "table1.csv")
    assert table1["two_stage"].to_list() == [True] * table1.height and table1.height == 4
    table2 = pl.read_csv(run / "human" / "table2_ua.csv")
    assert set(table2["group"]) == {"cn", "de"}
    sed = pl.read_csv(run / "sed" / "table_iv.csv")
    assert sed["emotion"].to_list()[-1] == "average"
    for alias in DEMO_MODELS:
        meta = json.loads((tmp_path / "cache" / "models" / alias / "crossling.json").read_text())
        assert meta["untrained"] is True
    ran = [line for line in lines if line.startswith("[run ]")]
    assert len(ran) > 10
    # a rerun reuses everything
    again: list[str] = []
    run_demo(config, log=_quiet(again))
    assert not [line for line in again if line.startswith("[run ]")]
    assert len([line for line in again if line.startswith("[skip]")]) == len(ran)


def _study_toml(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    synthesize_demo(SynthConfig(out=data, per_emotion=4, languages=("cn", "de")))
    models = tmp_path / "models"
    save_tiny_model(models / "w2v2-cn", "wav2vec2", "pretraining", feat_extract_norm="group", language="cn")
    save_tiny_model(models / "w2v2-de", "wav2vec2", "ctc", feat_extract_norm="group", seed=1, language="de")
    text = f"""
[study]
name = "tiny"
out = "runs/tiny"
cache_root = "cache"

[corpora.esd]
reader = "esd"
root = "{data / 'cn'}"

[corpora.pavoque]
reader = "esd"
root = "{data / 'de'}"
language = "de"

[models.w2v2-cn]
path = "{models / 'w2v2-cn'}"
[models.w2v2-de]
path = "{models / 'w2v2-de'}"

[probes]
models = ["w2v2-cn", "w2v2-de"]
corpora = ["esd", "pavoque"]
head = "logreg"

[finetune]
folds = 1
device = "cpu"

[finetune.train]
max_epochs = 1

[[finetune.runs]]
model = "w2v2-cn"
strategy = "lora+ba+wg"
train_corpus = "pavoque"
test_corpus = "pavoque"
two_stage = true
source_corpus = "esd"
"""
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_study_runs_what_is_missing(tmp_path):
    path = _study_toml(tmp_path)
    lines: list[str] = []
    report = run_study(load_study_config(path), log=_quiet(lines))
    assert report.exists()
    out = tmp_path / "runs" / "tiny"
    results = pl.read_parquet(out / "probes" / "results.parquet")
    assert {("w2v2-cn", "mono"), ("w2v2-cn", "cross"), ("w2v2-de", "trans")} <= set(
        results.select("model", "setting").unique().iter_rows())
    assert (tmp_path / "cache" / "w2v2-cn" / "esd.h5").exists()
    # one run (w2v2-cn, esd then pavoque); under the default two_stage_reading "text" it fills
    # two Table I cells (rows 6 and 9), one row each
    table1 = pl.read_csv(out / "finetune" / "table1.csv")
    assert table1.select("stage1_corpus", "stage2_corpus", "test_corpus").unique().height == 1
    # nothing changed: nothing reruns
    again: list[str] = []
    run_study(load_study_config(path), log=_quiet(again))
    assert not [line for line in again if line.startswith("[run ]")]
    # a probes setting changed: the probes rerun, extraction does not; the fine-tuning run
    # (at layer "best") reruns exactly when the probes' best layers of its model changed
    best_path = tmp_path / "cache" / "runs" / "probes" / "best_layers.json"
    before = json.loads(best_path.read_text())["w2v2-cn"]
    path.write_text(path.read_text().replace('head = "logreg"', 'head = "linear"\nmax_epochs = 2'))
    third: list[str] = []
    run_study(load_study_config(path), log=_quiet(third))
    ran = [line.split()[-1] for line in third if line.startswith("[run ]")]
    after = json.loads(best_path.read_text())["w2v2-cn"]
    finetune = ["finetune/w2v2-cn/esd-then-pavoque-to-pavoque/lora_ba_wg-every-layer", "finetune/table1"]
    assert ran == ["probes"] + (finetune if after != before else []), (before, after)
