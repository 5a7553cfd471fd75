"""The demo learns: on its synthetic speech every trainable step beats chance (25 % UA)
by a clear margin. The margins are computed here from the result files the demo wrote."""

from __future__ import annotations

import json

import polars as pl
import pytest

from study.demo import DEMO_MODELS, FINETUNE_STRATEGIES, DemoConfig, run_demo

pytestmark = pytest.mark.slow

MIN_BEST_MONO_PROBE_UA = 0.60
MIN_FINETUNE_UA = 0.45


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo-learning")
    config = DemoConfig(cache_root=tmp / "cache", out=tmp / "run")
    run_demo(config, log=lambda _line: None)
    return tmp / "run"


def test_best_monolingual_probe_layer_beats_chance(demo_run):
    results = pl.read_parquet(demo_run / "probes" / "results.parquet")
    mono = results.filter(pl.col("setting") == "mono")
    assert set(mono["model"]) == set(DEMO_MODELS)
    per_layer = mono.group_by(["model", "layer"]).agg(pl.col("ua").mean())
    best = per_layer.group_by("model").agg(pl.col("ua").max())
    for model, ua in best.iter_rows():
        assert ua >= MIN_BEST_MONO_PROBE_UA, f"{model}: best monolingual layer at {100 * ua:.1f} % UA"


def test_every_finetuning_run_beats_chance(demo_run):
    for strategy in FINETUNE_STRATEGIES:
        results = pl.read_parquet(demo_run / "finetune" / strategy.replace("+", "_") / "results.parquet")
        assert results.height >= 1
        ua = float(results["ua"].mean())
        assert ua >= MIN_FINETUNE_UA, f"{strategy}: {100 * ua:.1f} % UA"
        # a collapsed head predicts one class for every clip: not the case here
        predictions = pl.read_parquet(demo_run / "finetune" / strategy.replace("+", "_") / "predictions.parquet")
        assert predictions["pred"].n_unique() > 1, strategy


def test_margins_in_study_meta_match_the_result_files(demo_run):
    meta = json.loads((demo_run / "study.json").read_text())
    margins = meta["margins"]
    assert margins["chance_ua_pct"] == 25.0
    results = pl.read_parquet(demo_run / "probes" / "results.parquet").filter(pl.col("setting") == "mono")
    best = results.group_by(["model", "layer"]).agg(pl.col("ua").mean()).group_by("model").agg(pl.col("ua").max())
    assert margins["best_mono_probe_ua_pct"] == pytest.approx(100 * float(best["ua"].min()), abs=0.01)
    finetune = [float(pl.read_parquet(demo_run / "finetune" / s.replace("+", "_") / "results.parquet")["ua"].mean())
                for s in FINETUNE_STRATEGIES]
    assert margins["min_finetune_ua_pct"] == pytest.approx(100 * min(finetune), abs=0.01)
    assert meta["models"] and meta["demo"]["per_emotion"] == DemoConfig().per_emotion
