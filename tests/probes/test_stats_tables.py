"""probes.stats tables from hand-made predictions: pairing, units, gaps, errors."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from featstore.configs import ConfigError
from featstore.manifest import CANONICAL_EMOTIONS
from probes.data import ProbeDataError
from probes.results import PREDICTION_SCHEMA, best_layer, write_best_layers, write_best_sets
from probes.stats import StatsConfig
from probes.stats.tables import compute_stats
from probes.stats.units import condition_arrays

LAYERS = (0, 1, 2)


def _preds(model, setting, train, test, n, acc_by_layer, seed, prefix=None):
    rng = np.random.default_rng(seed)
    true = np.arange(n) % 4
    rows = []
    for layer, acc in zip(LAYERS, acc_by_layer, strict=True):
        pred = np.where(rng.random(n) < acc, true, (true + 1) % 4)
        for i in range(n):
            rows.append({"model": model, "setting": setting, "train_corpus": train, "test_corpus": test,
                         "layer": layer, "fold": i % 5, "utt_id": f"{prefix or test}_{i:04d}",
                         "true": CANONICAL_EMOTIONS[true[i]], "pred": CANONICAL_EMOTIONS[pred[i]],
                         **{f"prob_{c}": 0.25 for c in CANONICAL_EMOTIONS}})
    return rows


@pytest.fixture
def grid():
    rows = (_preds("m", "mono", "a", "a", 200, (0.5, 0.9, 0.9), 0)
            + _preds("m", "cross", "a", "b", 160, (0.3, 0.5, 0.6), 1)
            + _preds("m", "trans", "b", "b", 160, (0.4, 0.8, 0.9), 2)
            + _preds("n", "mono", "b", "b", 160, (0.5, 0.85, 0.7), 3))
    preds = pl.DataFrame(rows, schema=PREDICTION_SCHEMA)
    speakers = {"a": {f"a_{i:04d}": f"s{i % 8}" for i in range(200)},
                "b": {f"b_{i:04d}": "only" for i in range(160)}}  # one speaker: resample utterances
    return preds, speakers


def test_units_pairing_gaps_and_best_sets(grid):
    preds, speakers = grid
    conds = condition_arrays(preds, speakers, min_speakers=5)
    units = {c.key: c.unit for c in conds}
    assert units[("m", "mono", "a", "a")] == "speaker" and units[("m", "cross", "a", "b")] == "utterance"
    tables = compute_stats(conds, StatsConfig(n_resamples=500, seed=1))
    gaps = tables.gaps
    assert set(gaps["gap"]) == {"mono_minus_cross", "trans_minus_mono", "trans_minus_cross"}
    paired = gaps.group_by("gap").agg(pl.col("paired").all(), pl.col("p").is_nan().all().alias("no_p"))
    flags = {r["gap"]: (r["paired"], r["no_p"]) for r in paired.iter_rows(named=True)}
    # trans and cross share the test utterances of b; mono tests on a
    assert flags == {"trans_minus_cross": (True, False), "mono_minus_cross": (False, True),
                     "trans_minus_mono": (False, True)}
    assert (gaps["diff_lo"] <= gaps["diff"]).all() and (gaps["diff"] <= gaps["diff_hi"]).all()
    # pairs on the same utterances: m cross, m trans and n mono all test on b
    pairs = tables.pair_tests
    assert pairs.select("model_a", "setting_a", "model_b", "setting_b").unique().height == 3
    assert (pairs["p"].is_between(0, 1)).all() and pairs["paired"].all()
    # layer 0 is clearly worse everywhere; setting-scope rows pool the conditions
    tests = tables.layer_tests
    assert not tests.filter(pl.col("layer") == 0)["in_best_set"].any()
    sett = tests.filter(pl.col("scope") == "setting")
    assert set(sett["train_corpus"]) == {"*"} and sett.filter(pl.col("in_best_set")).height >= 2
    assert tables.best_sets["m"]["mono"] == [1, 2]


def test_paired_conditions_share_their_resamples(grid):
    """Two conditions with the same answers on the same utterances: a paired difference of
    exactly 0 in every resample (independent resamples would give a wide interval), p = 1."""
    preds, speakers = grid
    twin = preds.filter(pl.col("setting") == "trans").with_columns(pl.lit("twin").alias("model"))
    tables = compute_stats(condition_arrays(pl.concat([preds, twin]), speakers), StatsConfig(n_resamples=500))
    pair = tables.pair_tests.filter((pl.col("model_a") == "m") & (pl.col("setting_a") == "trans") & (pl.col("model_b") == "twin"))
    assert pair.height == len(LAYERS)
    assert (pair["diff"] == 0).all() and (pair["diff_lo"] == 0).all() and (pair["diff_hi"] == 0).all()
    assert (pair["p"] == 1).all()


def test_bad_predictions_are_named(grid):
    preds, speakers = grid
    with pytest.raises(ProbeDataError, match="no speaker for test utterance"):
        condition_arrays(preds, {"a": speakers["a"], "b": {}})
    uneven = preds.filter(~((pl.col("layer") == 2) & (pl.col("utt_id") == "a_0003")))
    with pytest.raises(ProbeDataError, match="different numbers of utterances"):
        condition_arrays(uneven, speakers)
    twice = pl.concat([preds, preds.filter(pl.col("utt_id") == "a_0003")])
    with pytest.raises(ProbeDataError, match="more than once|different"):
        condition_arrays(twice, speakers)


def test_stats_config_rules():
    with pytest.raises(ConfigError, match="n_resamples"):
        StatsConfig(n_resamples=10)
    with pytest.raises(ConfigError, match="correction"):
        StatsConfig(correction="fdr")


def test_best_layer_rules(tmp_path):
    with pytest.raises(FileNotFoundError, match="best-layer sets"):
        best_layer("m", "mono", tmp_path, rule="smallest-in-set")
    write_best_layers({"m": {"mono": 9, "cross": 4}}, tmp_path / "runs" / "probes" / "best_layers.json")
    write_best_sets({"m": {"mono": [6, 7, 9], "cross": [0]}}, tmp_path / "runs" / "probes" / "best_layer_sets.json")
    assert best_layer("m", "mono", tmp_path) == 9
    assert best_layer("m", "mono", tmp_path, rule="smallest-in-set") == 6
    assert best_layer("m", "cross", tmp_path, rule="smallest-in-set") == 4  # no k >= 1 in the set
    with pytest.raises(ValueError, match="unknown best-layer rule"):
        best_layer("m", "mono", tmp_path, rule="median")
