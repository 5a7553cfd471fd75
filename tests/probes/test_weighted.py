"""Weighted-sum probes: the one-hot oracle, the planted layer, and the run's files."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import balanced_accuracy_score

from featstore.io import parquet_metadata
from featstore.manifest import CANONICAL_EMOTIONS
from probes._stacked import HeadTask, train_stacked
from probes._weighted import WeightedTask, train_weighted
from probes.config import LayerwiseConfig, ProbeConfig
from probes.layerwise import run_layerwise_full
from probes.results import RESULT_COLUMNS
from probes.synthetic import write_synthetic_study
from probes.weighted import WEIGHT_COLUMNS, WEIGHTED_LAYER

PLANTED = 2
N_LAYERS = 4


def _data(n_layers=4, n=160, dim=12, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    x = rng.standard_normal((n_layers, n, dim)).astype(np.float32)
    means = rng.standard_normal((4, dim)).astype(np.float32)
    for layer in range(n_layers):
        x[layer] += layer * 0.6 * means[y]
    return x, y


def _parts(n, fold):
    perm = np.random.default_rng(50 + fold).permutation(n)
    return perm[:112], perm[112:136]


def _params(head):
    return [p.numpy() for p in head.weights + head.biases]


@pytest.mark.parametrize("standardize", [False, True])
def test_one_hot_frozen_weights_train_exactly_as_the_layer_probe(standardize):
    """The oracle: frozen one-hot on layer k, seeded as the layer-k head -> the same head."""
    x, y = _data()
    config = ProbeConfig(lr=3e-3, max_epochs=14, patience=3, batch_size=16, standardize=standardize)
    tasks = [HeadTask(slot=k, layer=k, fold=f, train_rows=_parts(160, f)[0], valid_rows=_parts(160, f)[1])
             for f in range(2) for k in range(N_LAYERS)]
    grid = train_stacked(x, y, tasks, config)  # the per-layer heads as the grid trains them (one stack)
    epochs = set()
    for task, in_grid in zip(tasks, grid, strict=True):
        one_hot = np.eye(N_LAYERS)[task.layer]
        wtask = WeightedTask(fold=task.fold, train_rows=task.train_rows, valid_rows=task.valid_rows,
                             seed_layer=task.layer, frozen=one_hot)
        (weighted,) = train_weighted(x, y, [wtask], config)
        alone = train_stacked(x, y, [task], config)[0]
        # bit for bit the layer-k head trained alone: same draws, same arithmetic
        for a, b in zip(_params(alone), _params(weighted.head), strict=True):
            np.testing.assert_array_equal(a, b)
        assert (weighted.head.epochs, weighted.head.best_epoch) == (alone.epochs, alone.best_epoch)
        assert weighted.head.best_val_loss == alone.best_val_loss
        # and the head of the stacked grid: same predictions, same UA
        for a, b in zip(_params(in_grid), _params(weighted.head), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)
        test = np.setdiff1d(np.arange(160), np.concatenate([task.train_rows, task.valid_rows]))
        pred_w = weighted.predict_proba(x[:, test]).argmax(1)
        np.testing.assert_array_equal(pred_w, in_grid.predict(x[task.slot, test]))
        assert balanced_accuracy_score(y[test], pred_w) == balanced_accuracy_score(
            y[test], in_grid.predict(x[task.slot, test]))
        np.testing.assert_array_equal(weighted.layer_weights, one_hot)
        epochs.add(alone.epochs)
    assert len(epochs) > 1  # early stopping differed between heads: the oracle covered it


def test_learned_weights_find_the_informative_layer_and_sum_to_one():
    x, y = _data()
    x[:3] = np.random.default_rng(9).standard_normal(x[:3].shape)  # only the last layer carries the label
    tasks = [WeightedTask(fold=f, train_rows=_parts(160, f)[0], valid_rows=_parts(160, f)[1]) for f in range(3)]
    heads = train_weighted(x, y, tasks, ProbeConfig(lr=3e-3, max_epochs=30, patience=5, batch_size=16),
                           logit_scale=30.0)
    for head in heads:
        assert head.layer_weights.sum() == pytest.approx(1.0)
        assert int(np.argmax(head.layer_weights)) == 3
        assert head.layer_weights[3] > 0.4
    # the folds trained as one stack follow the runs alone
    alone = train_weighted(x, y, tasks[1:2], ProbeConfig(lr=3e-3, max_epochs=30, patience=5, batch_size=16),
                           logit_scale=30.0)[0]
    np.testing.assert_allclose(alone.layer_weights, heads[1].layer_weights, atol=1e-5)


def test_mixed_frozen_and_bad_weights_are_refused():
    x, y = _data()
    tr, va = _parts(160, 0)
    config = ProbeConfig(max_epochs=1)
    with pytest.raises(ValueError, match="summing to 1"):
        train_weighted(x, y, [WeightedTask(0, tr, va, frozen=np.ones(N_LAYERS))], config)
    with pytest.raises(ValueError, match="gradient descent"):
        train_weighted(x, y, [WeightedTask(0, tr, va)], ProbeConfig(head="logreg"))
    with pytest.raises(ValueError, match="empty"):
        train_weighted(x, y, [WeightedTask(0, tr, va[:0])], config)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    strength = np.zeros(N_LAYERS)
    strength[PLANTED] = 1.5
    write_synthetic_study(root, n_utts=120, n_layers=N_LAYERS, dim=16, strength=strength, shared=0.7)
    config = LayerwiseConfig(cache_root=root, run_name="w", write_best=False, weighted_lr_scale=30.0,
                             probe=ProbeConfig(lr=3e-3, max_epochs=12, patience=4))
    return run_layerwise_full(config)


def test_run_writes_weighted_results_beside_the_grid(run):
    w = pl.read_parquet(run.paths["weighted_results"])
    assert w.columns == list(RESULT_COLUMNS)
    assert set(w["layer"].to_list()) == {WEIGHTED_LAYER}
    cond = ["model", "setting", "train_corpus", "test_corpus", "fold"]
    per_layer = run.results.filter(pl.col("layer") == PLANTED).select(*cond, "n_train", "n_valid", "n_test")
    # one probe per condition and fold, on the same folds and test corpora as the per-layer heads
    assert w.select(*cond, "n_train", "n_valid", "n_test").sort(cond).equals(per_layer.sort(cond))
    assert (w["cache_fingerprint"] != "").all() and (w["fold_scheme"] != "").all() and (w["seed"] == 0).all()
    assert json.loads(w["config_json"][0])["weighted"]["lr_scale"] == 30.0
    assert pl.read_csv(run.paths["weighted_results_csv"]).height == w.height
    assert run.weighted is not None and run.weighted.height == w.height
    # UA from the saved predictions, by sklearn
    preds = pl.read_parquet(run.paths["weighted_predictions"])
    for row in w.head(6).iter_rows(named=True):
        p = preds.filter((pl.col("model") == row["model"]) & (pl.col("setting") == row["setting"])
                         & (pl.col("test_corpus") == row["test_corpus"]) & (pl.col("fold") == row["fold"]))
        assert p.height == row["n_test"]
        assert balanced_accuracy_score(p["true"], p["pred"]) == pytest.approx(row["ua"])
    # the mix finds the planted layer and beats chance clearly
    assert w["ua"].mean() > 0.6


def test_layer_weights_table_and_figures(run):
    weights = pl.read_parquet(run.paths["layer_weights"])
    assert weights.columns == list(WEIGHT_COLUMNS)
    sums = weights.group_by("model", "setting", "train_corpus", "fold").agg(pl.col("weight").sum())
    np.testing.assert_allclose(sums["weight"].to_numpy(), 1.0, atol=1e-9)
    assert weights.group_by("model", "setting", "train_corpus", "fold").len()["len"].unique().to_list() == [N_LAYERS]
    mean = weights.group_by("layer").agg(pl.col("weight").mean()).sort("weight", descending=True)
    assert mean["layer"][0] == PLANTED
    meta = parquet_metadata(run.paths["layer_weights"])
    assert meta["layer_marker"] == WEIGHTED_LAYER and "config_json" in meta
    assert (weights["cache_fingerprint"] != "").all() and (weights["seed"] == 0).all()
    assert pl.read_csv(run.paths["layer_weights_csv"]).height == weights.height
    for key in ("layer_weights_png", "layer_weights_svg", "figure_png"):
        assert run.paths[key].stat().st_size > 1000
    assert "weighted sum" in run.paths["figure_svg"].read_text()


def test_weighted_off_and_logreg_write_nothing(run, tmp_path):
    root = run.out_dir.parents[2]
    base = LayerwiseConfig(cache_root=root, models=("w2v2-cn",), settings=("mono",), out_dir=tmp_path / "a",
                           write_best=False, n_folds=2, probe=ProbeConfig(head="logreg"))
    assert run_layerwise_full(base).weighted is None
    off = run_layerwise_full(LayerwiseConfig(cache_root=root, models=("w2v2-cn",), settings=("mono",),
                                             out_dir=tmp_path / "b", write_best=False, n_folds=2, weighted=False,
                                             probe=ProbeConfig(max_epochs=2)))
    assert off.weighted is None and not (tmp_path / "b" / "weighted_results.parquet").exists()
    assert set(CANONICAL_EMOTIONS) >= set(off.predictions["true"].unique().to_list())
