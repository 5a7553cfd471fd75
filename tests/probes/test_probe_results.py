"""Results helpers (summary, best layers, best_layer) and config validation."""

from __future__ import annotations

import json

import polars as pl
import pytest

from probes.config import LayerwiseConfig, ProbeConfig
from probes.results import best_layer, best_layers, best_layers_path, summarise, write_best_layers


def _frame(rows):
    return pl.DataFrame(rows, schema=["model", "setting", "train_corpus", "test_corpus", "layer", "fold", "ua",
                                      "wa", "macro_f1"], orient="row")


def test_summary_mean_and_sample_std_over_folds():
    frame = _frame([("m", "mono", "a", "a", 0, f, ua, ua, ua) for f, ua in enumerate([0.5, 0.7, 0.9])])
    row = summarise(frame).row(0, named=True)
    assert row["ua_mean"] == pytest.approx(0.7) and row["ua_std"] == pytest.approx(0.2) and row["n_folds"] == 3


def test_best_layers_average_over_corpora_and_break_ties_low():
    rows = [("m", "cross", "a", t, layer, 0, ua, 0, 0) for t, layer, ua in [
        ("b", 0, 0.9), ("c", 0, 0.1), ("b", 1, 0.6), ("c", 1, 0.6), ("b", 2, 0.6), ("c", 2, 0.6)]]
    rows += [("m", "mono", "a", "a", layer, 0, 0.5, 0, 0) for layer in (3, 1, 2)]
    assert best_layers(_frame(rows)) == {"m": {"cross": 1, "mono": 1}}


def test_best_layers_file_merges_and_reads_back(tmp_path):
    path = best_layers_path(tmp_path)
    with pytest.raises(FileNotFoundError, match="probes layerwise"):
        best_layer("m", "mono", root=tmp_path)
    write_best_layers({"m": {"mono": 3}, "n": {"trans": 1}}, path)
    write_best_layers({"m": {"cross": 5}}, path)
    assert json.loads(path.read_text()) == {"m": {"mono": 3, "cross": 5}, "n": {"trans": 1}}
    assert best_layer("m", "cross", root=tmp_path) == 5
    with pytest.raises(KeyError, match="no best layer"):
        best_layer("n", "mono", root=tmp_path)


@pytest.mark.parametrize("kwargs", [
    {"head": "svm"}, {"lr": 0}, {"max_epochs": 0}, {"batch_size": 0}, {"n_jobs": 0},
    {"backend": "ray"}, {"backend": "dask"}, {"stat": "max"}, {"weight_decay": -1.0},
])
def test_probe_config_rejects(kwargs):
    with pytest.raises(ValueError):
        ProbeConfig(**kwargs)


def test_probe_config_defaults_are_the_papers():
    c = ProbeConfig()
    assert (c.head, c.lr, c.eps, c.weight_decay, c.max_epochs, c.batch_size, c.patience) == (
        "mlp", 1e-4, 1e-8, 1e-5, 100, 32, 10)
    assert "n_jobs" not in json.loads(c.to_json())  # parallelism does not change results


@pytest.mark.parametrize("kwargs", [
    {"settings": ("mono", "bogus")}, {"models": ()}, {"layers": (1, 1)}, {"layers": (-1,)}, {"n_folds": 0},
    {"corpora": ("esd", "esd")},
])
def test_layerwise_config_rejects(kwargs):
    with pytest.raises(ValueError):
        LayerwiseConfig(**kwargs)


def test_figure1_lines_are_fold_means_and_stds(tmp_path):
    import numpy as np

    from probes.plot import figure1_lines, plot_figure1

    rng = np.random.default_rng(0)
    rows = []
    for setting, train, test in [("mono", "a", "a"), ("cross", "a", "b"), ("cross", "a", "c"), ("trans", "b", "b")]:
        for layer in range(3):
            rows += [("m", setting, train, test, layer, f, float(rng.uniform()), 0.0, 0.0) for f in range(4)]
    frame = _frame(rows)
    lines = figure1_lines(frame)
    assert set(lines["label"]) == {"mono: a", "cross: a→b", "cross: a→c", "trans: b"}
    got = lines.filter((pl.col("label") == "cross: a→c") & (pl.col("layer") == 1)).row(0, named=True)
    uas = [r[6] for r in rows if r[3] == "c" and r[4] == 1]
    assert got["ua_mean"] == pytest.approx(np.mean(uas)) and got["ua_std"] == pytest.approx(np.std(uas, ddof=1))
    mean = figure1_lines(frame, per_corpus=False)
    got = mean.filter((pl.col("setting") == "cross") & (pl.col("layer") == 1)).row(0, named=True)
    per_fold = [np.mean([r[6] for r in rows if r[1] == "cross" and r[4] == 1 and r[5] == f]) for f in range(4)]
    assert got["ua_mean"] == pytest.approx(np.mean(per_fold)) and got["ua_std"] == pytest.approx(np.std(per_fold, ddof=1))
    png, svg = plot_figure1(frame, tmp_path)
    assert png.read_bytes()[:4] == b"\x89PNG" and b"<svg" in svg.read_bytes()[:500]


def test_unreadable_results_table_is_named(tmp_path):
    from probes.results import load_results

    bad = tmp_path / "results.parquet"
    bad.write_text("not parquet")
    with pytest.raises(ValueError, match="results.parquet: cannot read the results table"):
        load_results(bad)


def test_corrupt_best_layers_file_is_named(tmp_path):
    path = best_layers_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="best_layers.json: not a best-layers JSON file"):
        best_layer("m", "mono", root=tmp_path)
    with pytest.raises(ValueError, match="best_layers.json: not a best-layers JSON file"):
        write_best_layers({"m": {"mono": 1}}, path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected"):
        best_layer("m", "mono", root=tmp_path)
