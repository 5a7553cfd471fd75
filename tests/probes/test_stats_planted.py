"""A planted signal: layers 5-7 carry the label, the others noise. The statistics a
layer-wise run writes must find exactly that."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from featstore.io import parquet_metadata
from probes.config import LayerwiseConfig, ProbeConfig
from probes.layerwise import run_layerwise_full
from probes.results import best_layer
from probes.stats import StatsConfig
from probes.synthetic import write_synthetic_study

SIGNAL = (5, 6, 7)
pytestmark = pytest.mark.slow  # one small logreg grid (~5 s on 2 busy cores)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    strength = np.zeros(13)
    strength[list(SIGNAL)] = 1.2
    write_synthetic_study(root, models={"m": "cn"}, corpora={"c": "cn"}, n_utts=400, dim=16, strength=strength,
                          dtype="float32")
    config = LayerwiseConfig(models=("m",), corpora=("c",), cache_root=root, out_dir=root / "run",
                             probe=ProbeConfig(head="logreg"), stats=StatsConfig(n_resamples=2000, seed=3))
    return root, run_layerwise_full(config)


def test_the_best_layer_set_is_the_planted_layers(planted):
    root, run = planted
    tests = pl.read_parquet(run.paths["stats_layer_tests"])
    cond = tests.filter(pl.col("scope") == "condition")
    assert cond.height == 13 and set(cond["correction"]) == {"holm"}
    assert set(cond.filter(pl.col("in_best_set"))["layer"].to_list()) == set(SIGNAL)
    assert (cond.filter(~pl.col("layer").is_in(SIGNAL))["p_adj"] < 0.05).all()
    assert json.loads(run.paths["stats_best_sets"].read_text()) == {"m": {"mono": list(SIGNAL)}}
    # --layer best-smallest: the smallest layer of the set; best: the highest UA
    assert best_layer("m", "mono", root, rule="smallest-in-set") == 5
    assert best_layer("m", "mono", root) in SIGNAL


def test_intervals_exclude_chance_at_the_planted_layers_only(planted):
    _, run = planted
    ci = pl.read_parquet(run.paths["stats_layer_ci"]).sort("layer")
    assert set(ci["unit"]) == {"speaker"} and set(ci["n_units"]) == {10}
    excludes = ((ci["ua_lo"] > 0.25) | (ci["ua_hi"] < 0.25)).to_list()
    assert [k for k, e in zip(ci["layer"], excludes, strict=True) if e] == list(SIGNAL)
    assert ((ci["ua_lo"] <= ci["ua"]) & (ci["ua"] <= ci["ua_hi"])).all()


def test_tables_carry_provenance_and_units(planted):
    _, run = planted
    ci_path = run.paths["stats_layer_ci"]
    ci = pl.read_parquet(ci_path)
    for col in ("model_fingerprint", "manifest_fingerprint", "fold_scheme", "seed", "stats_seed", "n_resamples",
                "alpha", "correction", "config_json"):
        assert col in ci.columns, col
    assert ci["stats_seed"][0] == 3 and ci["model_fingerprint"][0] == "synthetic-m"
    assert ci["ua"].is_between(0, 1).all()  # fractions
    meta = parquet_metadata(ci_path)
    assert meta["stats_config"]["n_resamples"] == 2000 and "table" in meta
    assert ci_path.with_suffix(".csv").exists()
    assert run.paths["figure_png"].exists()


def test_the_statistics_are_reproducible_from_the_seed(planted):
    root, run = planted
    from probes.stats.run import stats_for_run

    tables, _ = stats_for_run(run.out_dir, StatsConfig(n_resamples=2000, seed=3), root)
    again = pl.read_parquet(run.paths["stats_layer_ci"])
    assert tables.layer_ci.select("layer", "ua_lo", "ua_hi").equals(again.select("layer", "ua_lo", "ua_hi"))


def test_the_report_shows_the_statistics(planted, tmp_path):
    import shutil

    from study.report import build_report

    _, run = planted
    shutil.copytree(run.out_dir, tmp_path / "probes")
    text = build_report(tmp_path).read_text()
    for needle in ("Best-layer sets", "Cross-lingual gaps per layer", "probes/stats/best_set_table.csv",
                   "95 % speaker-bootstrap interval"):
        assert needle in text, needle
    # no gaps without cross conditions: the gap section says so instead of showing a figure
    assert not (tmp_path / "probes" / "stats" / "gaps.png").exists()


def test_probes_plot_redraws_figure1_with_the_saved_intervals(planted, tmp_path):
    from typer.testing import CliRunner

    from cli import probes_app
    from probes.stats.run import load_stats

    _, run = planted
    assert load_stats(tmp_path) is None
    stats = load_stats(run.out_dir)
    assert stats is not None and stats.layer_ci.height == 13
    from probes.stats.plot import figure1_interval_lines

    lines = figure1_interval_lines(stats)  # what Figure 1 draws: pooled UA, band, filled markers
    assert lines.filter(pl.col("in_best_set"))["layer"].to_list() == list(SIGNAL)
    assert (lines["ua_lo"] <= lines["ua_mean"]).all() and lines["label"].unique().to_list() == ["mono: c"]
    res = CliRunner().invoke(probes_app, ["plot", str(run.paths["results"]), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "figure1.png").exists()
