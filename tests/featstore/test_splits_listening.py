"""The listening-test subset: 12 test utterances per emotion, improvised only for IEMOCAP."""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest

from featstore.manifest import CANONICAL_EMOTIONS, make_manifest
from featstore.splits import make_folds, select_listening_subset


def corpus(n_speakers=10, per_emotion=60, modes=False):
    rows = []
    for s in range(n_speakers):
        for emotion in (*CANONICAL_EMOTIONS, "surprise"):
            for k in range(per_emotion):
                utt = f"s{s:02d}_{emotion}_{k:03d}"
                rows.append(dict(utt_id=utt, corpus="c", language="en", speaker=f"s{s:02d}", emotion=emotion,
                                 label=emotion, path=f"/x/{utt}.wav", duration=1.0, sample_rate=16000,
                                 mode=("improvised" if k % 3 == 0 else "scripted") if modes else None))
    return make_manifest(rows)


def test_twelve_per_emotion_from_test_parts_spread_over_speakers():
    manifest = corpus()
    folds = make_folds(manifest)
    subset = select_listening_subset(manifest, folds)
    assert subset.height == 48
    assert Counter(subset["emotion"].to_list()) == {e: 12 for e in CANONICAL_EMOTIONS}
    test_ids = set(folds.table.filter(pl.col("part") == "test")["utt_id"])
    assert set(subset["utt_id"]) <= test_ids
    assert subset["emotion"].to_list() == sorted(subset["emotion"].to_list(), key=CANONICAL_EMOTIONS.index)
    for emotion in CANONICAL_EMOTIONS:
        per_speaker = Counter(subset.filter(pl.col("emotion") == emotion)["speaker"].to_list())
        assert len(per_speaker) == 10 and max(per_speaker.values()) - min(per_speaker.values()) <= 1
    assert set(subset.columns) >= {"utt_id", "path", "emotion", "speaker"}


def test_deterministic_for_a_seed_and_accepts_a_plain_table():
    manifest = corpus()
    folds = make_folds(manifest)
    a = select_listening_subset(manifest, folds, seed=4)
    b = select_listening_subset(manifest.reverse(), folds.table, seed=4)
    c = select_listening_subset(manifest, folds, seed=5)
    assert a.equals(b)
    assert set(a["utt_id"]) != set(c["utt_id"])


def test_improvised_only_when_the_corpus_has_modes():
    manifest = corpus(modes=True)
    folds = make_folds(manifest)
    subset = select_listening_subset(manifest, folds)
    assert set(subset["mode"]) == {"improvised"}
    mixed = select_listening_subset(manifest, folds, improvised_only=False, seed=1)
    assert set(mixed["mode"]) == {"improvised", "scripted"}


def test_not_enough_candidates_is_an_error_with_numbers():
    manifest = corpus(modes=True)
    folds = make_folds(manifest)
    with pytest.raises(ValueError, match=r"improvised only.*'angry': \d+"):
        select_listening_subset(manifest, folds, per_emotion=200)
