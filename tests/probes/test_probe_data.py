"""Loading the probes' inputs from a cache and a fold table (probes.data)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from featstore.cache import write_cache
from featstore.manifest import CANONICAL_EMOTIONS, make_manifest
from featstore.paths import features_path, splits_path
from featstore.splits import FoldTable, save_folds
from probes.data import ProbeDataError, corpus_from_arrays, corpus_language, load_corpus
from probes.synthetic import fold_table


def _esd_like(root, fold_langs=("cn",)):
    """An ESD-like cache: Mandarin and English speakers plus a 'surprise' class; the
    folds use only the utterances of ``fold_langs``."""
    rows, emotions = [], [*CANONICAL_EMOTIONS, "surprise"]
    for i in range(100):
        lang = "cn" if i < 60 else "en"
        emo = emotions[i % 5]
        rows.append({"utt_id": f"u{i:03d}", "corpus": "esd", "language": lang, "speaker": f"{lang}{i % 3}",
                     "emotion": emo, "label": emo, "path": f"/x/u{i:03d}.wav", "duration": 2.0,
                     "sample_rate": 16000})
    manifest = make_manifest(rows)
    ids = manifest["utt_id"].to_list()
    mean = np.random.default_rng(0).standard_normal((3, 100, 8)).astype(np.float32)
    mean[:, :, 0] = np.arange(100)  # feature 0 = row number, to check the selection
    prov = {"model_alias": "m", "model_language": "cn", "model_fingerprint": "fp-m", "manifest_fingerprint": "fp-x"}
    write_cache(features_path("m", "esd", root), ids, mean, mean, prov, manifest, dtype="float32")
    used = manifest.filter(pl.col("language").is_in(list(fold_langs)) & (pl.col("emotion") != "surprise"))
    save_folds(FoldTable(fold_table(used["utt_id"].to_list(), 2, 0), {"scheme": "test"}), splits_path("esd", root))
    return manifest, used


def test_load_corpus_keeps_the_folds_four_class_utterances(tmp_path):
    manifest, used = _esd_like(tmp_path)
    assert corpus_language("m", "esd", tmp_path) == ("cn", "cn")
    data = load_corpus("m", "esd", tmp_path, layers=[2, 0], n_folds=2)
    assert data.language == "cn" and data.layers == (2, 0)
    assert data.utt_ids == used["utt_id"].to_list()
    rows = [int(u[1:]) for u in data.utt_ids]
    np.testing.assert_array_equal(data.features[0, :, 0], rows)
    assert [CANONICAL_EMOTIONS[k] for k in data.labels] == used["emotion"].to_list()
    table = pl.read_parquet(splits_path("esd", tmp_path))
    for fold in (0, 1):
        for part in ("train", "valid", "test"):
            want = table.filter((pl.col("fold") == fold) & (pl.col("part") == part))["utt_id"].to_list()
            assert sorted(data.utt_ids[r] for r in data.rows(fold, part)) == sorted(want)
    assert data.provenance["fold_scheme"] == "test" and data.provenance["model_fingerprint"] == "fp-m"
    with pytest.raises(ProbeDataError, match="out of range"):
        load_corpus("m", "esd", tmp_path, layers=[3])
    with pytest.raises(ProbeDataError, match="asked for"):
        load_corpus("m", "esd", tmp_path, n_folds=3)


def test_folds_mixing_languages_are_refused(tmp_path):
    _esd_like(tmp_path, fold_langs=("cn", "en"))
    with pytest.raises(ProbeDataError, match="mix languages"):
        corpus_language("m", "esd", tmp_path)


def test_corpus_from_arrays_checks_shapes_and_drops_other_emotions():
    table = fold_table([f"u{i}" for i in range(40)], 2, 0)
    emotions = [("angry", "happy", "neutral", "sad", "fear")[i % 5] for i in range(40)]
    data = corpus_from_arrays("m", "c", "de", [f"u{i}" for i in range(40)], emotions,
                              np.zeros((2, 40, 4)), table)
    assert len(data.utt_ids) == 32 and data.features.shape == (2, 32, 4)
    assert all(r < 32 for f in data.folds.values() for rows in f.values() for r in rows)
    with pytest.raises(ProbeDataError, match="features must be"):
        corpus_from_arrays("m", "c", "de", ["a"], ["angry"], np.zeros((2, 3, 4)), table)
