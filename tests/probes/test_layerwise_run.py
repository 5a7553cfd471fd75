"""The layer-wise analysis end to end on synthetic caches written with ``write_cache``."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from featstore.cache import open_cache
from featstore.manifest import CANONICAL_EMOTIONS
from featstore.paths import features_path
from probes.config import LayerwiseConfig, ProbeConfig
from probes.data import ProbeDataError
from probes.layerwise import predict_layer, run_layerwise_full
from probes.results import RESULT_COLUMNS, best_layer, best_layers_path, confusions
from probes.synthetic import write_synthetic_study

PLANTED = 2
N_LAYERS = 4
KEYS = ["model", "setting", "train_corpus", "test_corpus", "layer", "fold"]
PROBE = ProbeConfig(lr=3e-3, max_epochs=30, patience=5)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    strength = np.zeros(N_LAYERS)
    strength[PLANTED] = 1.5  # only this layer carries the emotion
    write_synthetic_study(root, n_utts=120, n_layers=N_LAYERS, dim=16, strength=strength, shared=0.7)
    return root


@pytest.fixture(scope="module")
def run(study):
    return run_layerwise_full(LayerwiseConfig(cache_root=study, run_name="main", probe=PROBE))


def test_grid_has_every_condition_of_the_paper(run):
    conds = set(run.results.select("model", "setting", "train_corpus", "test_corpus").unique().iter_rows())
    assert conds == {
        ("w2v2-cn", "mono", "esd", "esd"), ("w2v2-cn", "cross", "esd", "pavoque"),
        ("w2v2-cn", "cross", "esd", "iemocap"), ("w2v2-cn", "trans", "pavoque", "pavoque"),
        ("w2v2-cn", "trans", "iemocap", "iemocap"),
        ("w2v2-de", "mono", "pavoque", "pavoque"), ("w2v2-de", "cross", "pavoque", "esd"),
        ("w2v2-de", "cross", "pavoque", "iemocap"), ("w2v2-de", "trans", "esd", "esd"),
        ("w2v2-de", "trans", "iemocap", "iemocap"),
    }
    assert run.results.height == 10 * N_LAYERS * 5
    assert run.results.select(KEYS).is_duplicated().sum() == 0


def test_planted_layer_is_found_best(run):
    for model in ("w2v2-cn", "w2v2-de"):
        assert run.best[model] == {"mono": PLANTED, "cross": PLANTED, "trans": PLANTED}
    mono = run.results.filter(pl.col("setting") == "mono").group_by("layer").agg(pl.col("ua").mean())
    ua = dict(mono.iter_rows())
    assert ua[PLANTED] > 0.8
    assert max(v for k, v in ua.items() if k != PLANTED) < 0.5


def test_metrics_match_an_independent_computation_on_saved_predictions(run):
    preds = pl.read_parquet(run.paths["predictions"])
    assert preds.height == int(run.results["n_test"].sum())
    table = run.results.join(
        preds.group_by(KEYS).agg(pl.col("true"), pl.col("pred")), on=KEYS, how="left")
    cms = confusions(run.results)
    for row, cm in zip(table.iter_rows(named=True), cms, strict=True):
        assert row["ua"] == pytest.approx(balanced_accuracy_score(row["true"], row["pred"]))
        assert row["wa"] == pytest.approx(accuracy_score(row["true"], row["pred"]))
        assert row["macro_f1"] == pytest.approx(f1_score(row["true"], row["pred"], average="macro"))
        np.testing.assert_array_equal(cm, confusion_matrix(row["true"], row["pred"], labels=list(CANONICAL_EMOTIONS)))
        assert row["n_test"] == len(row["true"])
    probs = preds.select([f"prob_{c}" for c in CANONICAL_EMOTIONS]).to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    argmax = [CANONICAL_EMOTIONS[i] for i in probs.argmax(1)]
    assert argmax == preds["pred"].to_list()


def test_cross_reuses_the_mono_heads(run):
    r = run.results
    mono = r.filter(pl.col("setting") == "mono").select("model", "train_corpus", "layer", "fold",
                                                        "epochs", "best_val_loss", "best_epoch")
    cross = r.filter(pl.col("setting") == "cross").join(mono, on=["model", "train_corpus", "layer", "fold"],
                                                        suffix="_mono")
    assert cross.height == mono.height * 2
    assert (cross["epochs"] == cross["epochs_mono"]).all()
    assert (cross["best_val_loss"] == cross["best_val_loss_mono"]).all()


def test_rows_carry_provenance_and_files_are_written(run, study):
    r = run.results
    assert tuple(r.columns) == RESULT_COLUMNS
    with open_cache(features_path("w2v2-cn", "esd", study)) as cache:
        fp, manifest_fp = cache.fingerprint, cache.provenance["manifest_fingerprint"]
    row = r.filter((pl.col("model") == "w2v2-cn") & (pl.col("train_corpus") == "esd")
                   & (pl.col("test_corpus") == "pavoque")).row(0, named=True)
    assert row["cache_fingerprint"] == fp and row["manifest_fingerprint"] == manifest_fp
    assert row["test_cache_path"].endswith("w2v2-cn/pavoque.h5") and row["test_cache_fingerprint"] != fp
    assert row["model_fingerprint"] == "synthetic-w2v2-cn"
    assert row["fold_scheme"] == "synthetic" and row["seed"] == 0 and row["head"] == "mlp"
    assert json.loads(row["config_json"])["probe"]["lr"] == PROBE.lr
    for path in run.paths.values():
        assert path.exists(), path
    assert pl.read_csv(run.paths["results_csv"]).height == r.height
    summary = pl.read_csv(run.paths["summary"])
    assert summary.height == 10 * N_LAYERS and (summary["n_folds"] == 5).all()
    assert json.loads(best_layers_path(study).read_text()) == json.loads(run.paths["best_layers"].read_text())
    assert best_layer("w2v2-de", "trans", root=study) == PLANTED
    table = pl.read_csv(run.paths["best_layers_csv"])
    assert table.height == 6 and (table["layer"] == PLANTED).all()
    mono_cn = run.results.filter((pl.col("model") == "w2v2-cn") & (pl.col("setting") == "mono")
                                 & (pl.col("layer") == PLANTED))["ua"].mean()
    row = table.filter((pl.col("model") == "w2v2-cn") & (pl.col("setting") == "mono")).row(0, named=True)
    assert row["ua_mean"] == pytest.approx(mono_cn)


def test_layer_subset_and_per_fold_jobs_reproduce_the_full_run(run, study, tmp_path):
    probe = ProbeConfig(lr=PROBE.lr, max_epochs=PROBE.max_epochs, patience=PROBE.patience, split_folds=True)
    sub = run_layerwise_full(LayerwiseConfig(models=("w2v2-de",), settings=("mono", "cross"), layers=(1, 2),
                                             cache_root=study, out_dir=tmp_path, write_best=False, probe=probe))
    assert set(sub.results["setting"]) == {"mono", "cross"} and set(sub.results["layer"]) == {1, 2}
    full = run.results.join(sub.results.select(*KEYS, pl.col("ua").alias("ua_sub")), on=KEYS)
    assert full.height == sub.results.height
    np.testing.assert_array_equal(full["ua"].to_numpy(), full["ua_sub"].to_numpy())


def test_predict_layer_matches_the_run(run, study):
    preds = pl.read_parquet(run.paths["predictions"]).filter(
        (pl.col("model") == "w2v2-cn") & (pl.col("setting") == "mono") & (pl.col("layer") == PLANTED)
        & (pl.col("fold") == 3))
    ids = preds["utt_id"].to_list()[:6]
    got = predict_layer("w2v2-cn", "esd", "esd", PLANTED, ids, probe=PROBE, cache_root=study)
    assert got["utt_id"].to_list() == ids and (got["n_heads"] == 1).all()
    want = preds.filter(pl.col("utt_id").is_in(ids)).sort(pl.col("utt_id").replace_strict(ids, list(range(6))))
    assert got["pred"].to_list() == want["pred"].to_list()
    np.testing.assert_allclose(got["prob_angry"].to_numpy(), want["prob_angry"].to_numpy(), atol=1e-5)
    cross = predict_layer("w2v2-cn", "esd", "pavoque", PLANTED, ["pavoque_00001"], probe=PROBE, cache_root=study)
    assert cross["n_heads"][0] == 5  # every fold head, none saw a PAVOQUE utterance


def test_logreg_grid_finds_the_planted_layer(study, tmp_path):
    out = run_layerwise_full(LayerwiseConfig(cache_root=study, out_dir=tmp_path, write_best=False,
                                             probe=ProbeConfig(head="logreg")))
    assert out.best["w2v2-cn"]["mono"] == PLANTED and (out.results["head"] == "logreg").all()


def test_missing_cache_and_fold_table_are_named(study, tmp_path):
    with pytest.raises(ProbeDataError, match="w2v2-xx/esd.h5"):
        run_layerwise_full(LayerwiseConfig(models=("w2v2-xx",), cache_root=study, out_dir=tmp_path))
    with pytest.raises(ProbeDataError, match="no fold table"):
        predict_layer("w2v2-cn", "nope", "nope", 0, ["a"], cache_root=study)


@pytest.mark.slow
def test_loky_and_dask_give_the_sequential_results(run, study, tmp_path):
    from distributed import Client, LocalCluster

    base = dict(models=("w2v2-cn",), layers=(1, 2), cache_root=study, write_best=False)
    seq = run.results.filter((pl.col("model") == "w2v2-cn") & pl.col("layer").is_in([1, 2]))
    loky = run_layerwise_full(LayerwiseConfig(**base, out_dir=tmp_path / "loky",
                                              probe=ProbeConfig(lr=3e-3, max_epochs=30, patience=5, n_jobs=2)))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster):
        dask = run_layerwise_full(LayerwiseConfig(
            **base, out_dir=tmp_path / "dask",
            probe=ProbeConfig(lr=3e-3, max_epochs=30, patience=5, backend="dask", n_jobs=2,
                              scheduler=cluster.scheduler_address)))
    for other in (loky.results, dask.results):
        assert other.height == seq.height
        np.testing.assert_array_equal(other.sort(KEYS)["ua"].to_numpy(), seq.sort(KEYS)["ua"].to_numpy())
        np.testing.assert_array_equal(other.sort(KEYS)["best_val_loss"].to_numpy(),
                                      seq.sort(KEYS)["best_val_loss"].to_numpy())
