"""Fold generation: the paper's counts, balance, held-out groups, determinism, scaling."""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest
from typer.testing import CliRunner

from featstore.manifest import CANONICAL_EMOTIONS, make_manifest, manifest_fingerprint, save_manifest
from featstore.paths import manifest_path, splits_path
from featstore.splits import FoldConfig, FoldError, FoldTable, load_folds, make_folds, save_folds

ESD_BASE = {"neutral": 0, "angry": 350, "happy": 700, "sad": 1050, "surprise": 1400}


def esd_like(speakers=range(1, 11), per_emotion=60, language="cn", emotions=tuple(ESD_BASE)):
    rows = []
    for s in speakers:
        spk = f"{s:04d}"
        for emotion in emotions:
            for k in range(1, per_emotion + 1):
                utt = f"{spk}_{ESD_BASE[emotion] + k:06d}"
                rows.append(dict(utt_id=utt, corpus="esd", language=language, speaker=spk, emotion=emotion,
                                 label=emotion.title(), path=f"/data/{utt}.wav", duration=1.0,
                                 sample_rate=16000))
    return make_manifest(rows)


def iemocap_like(per_speaker_emotion=60):
    rows = []
    for session in range(1, 6):
        for gender in "FM":
            for emotion in CANONICAL_EMOTIONS + ("frustrated",):
                for k in range(per_speaker_emotion):
                    mode = "impro" if k % 2 else "script01_1"
                    utt = f"Ses0{session}F_{mode}{emotion[:3]}_{gender}{k:03d}"
                    rows.append(dict(utt_id=utt, corpus="iemocap", language="en", speaker=f"{session}{gender}",
                                     emotion=emotion, label=emotion[:3], path=f"/data/{utt}.wav", duration=2.0,
                                     sample_rate=16000, session=session,
                                     mode="improvised" if k % 2 else "scripted"))
    return make_manifest(rows)


def pavoque_like(per_emotion=520):
    rows = [dict(utt_id=f"p{k:04d}-{emotion}", corpus="pavoque", language="de", speaker="pavoque",
                 emotion=emotion, label=emotion, path=f"/data/p{k:04d}-{emotion}.wav", duration=1.5,
                 sample_rate=44100)
            for emotion in (*CANONICAL_EMOTIONS, "poker") for k in range(per_emotion)]
    return make_manifest(rows)


def part_rows(folds: FoldTable, manifest: pl.DataFrame, fold: int, part: str) -> pl.DataFrame:
    ids = folds.ids(fold, part)
    return manifest.filter(pl.col("utt_id").is_in(ids))


def test_esd_protocol_counts_balance_and_held_out_speakers():
    manifest = esd_like()
    folds = make_folds(manifest)
    assert folds.scheme == "held-out-speakers"
    assert folds.meta["scaled"] is False
    assert folds.meta["manifest_fingerprint"] == manifest_fingerprint(manifest)
    assert set(folds.table.columns) == {"fold", "part", "utt_id"}
    speakers_seen = {}
    for fold in range(5):
        parts = {p: part_rows(folds, manifest, fold, p) for p in ("train", "valid", "test")}
        ids = {p: folds.ids(fold, p) for p in parts}
        assert [len(ids[p]) for p in ("train", "valid", "test")] == [1600, 200, 200]
        assert all(len(set(v)) == len(v) for v in ids.values())
        assert not set(ids["train"]) & set(ids["valid"]) and not set(ids["train"]) & set(ids["test"])
        assert not set(ids["valid"]) & set(ids["test"])
        for p, n in (("train", 400), ("valid", 50), ("test", 50)):
            assert Counter(parts[p]["emotion"].to_list()) == {e: n for e in CANONICAL_EMOTIONS}
        # the paper's scheme: fold i holds out speakers 2i+1 and 2i+2, 25 per emotion each in valid and test
        held = {f"{2 * fold + 1:04d}", f"{2 * fold + 2:04d}"}
        assert set(parts["valid"]["speaker"]) == held == set(parts["test"]["speaker"])
        assert not held & set(parts["train"]["speaker"])
        for p in ("valid", "test"):
            assert set(Counter(zip(parts[p]["speaker"], parts[p]["emotion"], strict=True)).values()) == {25}
        assert set(Counter(zip(parts["train"]["speaker"], parts["train"]["emotion"], strict=True)).values()) == {50}
        for spk, utt in zip(pl.concat(parts.values())["speaker"], pl.concat(parts.values())["utt_id"], strict=True):
            speakers_seen.setdefault(spk, set()).add(utt)
    # one fixed pool of 200 utterances (50 per emotion) per speaker, as in the paper's files
    assert {spk: len(utts) for spk, utts in speakers_seen.items()} == {f"{s:04d}": 200 for s in range(1, 11)}
    assert folds.meta["held_out"]["0"] == ["0001", "0002"]


def test_sessions_are_held_out_for_iemocap_like_corpora():
    manifest = iemocap_like()
    folds = make_folds(manifest)
    assert folds.scheme == "held-out-sessions"
    for fold in range(5):
        valid = part_rows(folds, manifest, fold, "valid")
        test = part_rows(folds, manifest, fold, "test")
        train = part_rows(folds, manifest, fold, "train")
        assert (valid.height, test.height, train.height) == (200, 200, 1600)
        held = set(valid["session"]) | set(test["session"])
        assert len(held) == 1 and not held & set(train["session"])
        assert Counter(train["session"].to_list()) == {s: 400 for s in range(1, 6) if s not in held}
        assert "frustrated" not in set(train["emotion"])
        # both speakers of the held-out session appear, balanced per emotion
        counts = Counter(zip(valid["speaker"], valid["emotion"], strict=True))
        assert set(counts.values()) == {25}


def test_single_speaker_corpus_gets_independent_balanced_draws():
    manifest = pavoque_like()
    folds = make_folds(manifest, FoldConfig(seed=3))
    assert folds.scheme == "random-draws"
    tests = []
    for fold in range(5):
        for p, n in (("train", 400), ("valid", 50), ("test", 50)):
            rows = part_rows(folds, manifest, fold, p)
            assert Counter(rows["emotion"].to_list()) == {e: n for e in CANONICAL_EMOTIONS}
        ids = [set(folds.ids(fold, p)) for p in ("train", "valid", "test")]
        assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
        tests.append(ids[2])
    assert len({frozenset(t) for t in tests}) == 5


def test_same_seed_same_folds_other_seed_other_folds():
    manifest = esd_like(per_emotion=55)
    shuffled = manifest.sample(fraction=1.0, shuffle=True, seed=11)
    a = make_folds(manifest, FoldConfig(seed=7))
    b = make_folds(shuffled, FoldConfig(seed=7))
    c = make_folds(manifest, FoldConfig(seed=8))
    assert a.table.equals(b.table)
    assert not a.table.equals(c.table)


def test_small_corpus_is_scaled_down_keeping_proportions():
    manifest = esd_like(speakers=range(1, 6), per_emotion=8, emotions=CANONICAL_EMOTIONS)
    folds = make_folds(manifest)
    assert folds.scheme == "held-out-speakers"
    assert folds.meta["scaled"] is True and "scaled down" in folds.meta["note"]
    n = {p: len(folds.ids(0, p)) for p in ("train", "valid", "test")}
    assert n == {"train": 128, "valid": 16, "test": 16}
    assert n["train"] == 8 * n["valid"] == 8 * n["test"]
    for fold in range(5):
        held = set(part_rows(folds, manifest, fold, "test")["speaker"])
        assert held == {f"{fold + 1:04d}"}
        assert not held & set(part_rows(folds, manifest, fold, "train")["speaker"])


def test_not_enough_utterances_is_a_clear_error():
    manifest = esd_like(speakers=range(1, 6), per_emotion=8, emotions=CANONICAL_EMOTIONS)
    with pytest.raises(FoldError, match=r"needs 100 per emotion.*\"angry\": 8"):
        make_folds(manifest, FoldConfig(scale="off"))
    tiny = pavoque_like(per_emotion=9)
    with pytest.raises(FoldError, match="each emotion needs 10"):
        make_folds(tiny)


def test_too_few_speakers_for_held_out_groups():
    manifest = esd_like(speakers=range(1, 4), per_emotion=20, emotions=CANONICAL_EMOTIONS)
    with pytest.raises(FoldError, match="found 3"):
        make_folds(manifest, FoldConfig(group_by="speaker"))
    folds = make_folds(manifest)
    assert folds.scheme == "random-draws" and "only 3 speakers" in folds.meta["note"]


def test_language_filter_keeps_one_half_of_esd():
    manifest = pl.concat([esd_like(per_emotion=50), esd_like(range(11, 21), per_emotion=50, language="en")])
    folds = make_folds(manifest, FoldConfig(languages=("cn",)), exclude={"0011_000001": "silent"})
    assert folds.meta["excluded"] == [] and "unusable" not in folds.meta["note"]  # an English file
    used = manifest.filter(pl.col("utt_id").is_in(folds.table["utt_id"].unique().to_list()))
    assert set(used["language"]) == {"cn"}
    assert folds.meta["held_out"]["4"] == ["0009", "0010"]


@pytest.mark.parametrize("kwargs", [dict(n_folds=1), dict(n_train=1602), dict(group_by="gender"),
                                    dict(scale="maybe"), dict(n_valid=0)])
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        FoldConfig(**kwargs)


def test_save_and_load_round_trip(tmp_path):
    manifest = esd_like(per_emotion=50)
    folds = make_folds(manifest)
    path = save_folds(folds, tmp_path / "splits" / "esd.parquet")
    table, meta = load_folds(path)
    assert table.equals(folds.table)
    assert meta["scheme"] == "held-out-speakers" and meta["seed"] == 0
    assert meta["manifest_fingerprint"] == manifest_fingerprint(manifest)
    assert meta["counts"]["3"] == {"train": 1600, "valid": 200, "test": 200}
    with pytest.raises(FileNotFoundError, match="featstore splits"):
        load_folds(tmp_path / "nope.parquet")


def test_splits_command(tmp_path, monkeypatch):
    from cli import featstore_app

    monkeypatch.setenv("CROSSLING_CACHE", str(tmp_path))
    save_manifest(esd_like(speakers=range(1, 6), per_emotion=8, emotions=CANONICAL_EMOTIONS),
                  manifest_path("demo-cn"))
    runner = CliRunner()
    result = runner.invoke(featstore_app, ["splits", "demo-cn", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "held-out-speakers" in result.output and "scaled down" in result.output
    table, meta = load_folds(splits_path("demo-cn"))
    assert meta["seed"] == 1 and table.height == 5 * 160
    result = runner.invoke(featstore_app, ["splits", "demo-cn", "--scale", "off"])
    assert result.exit_code == 2 and "not enough utterances" in result.output
    result = runner.invoke(featstore_app, ["splits", "missing-corpus"])
    assert result.exit_code == 2 and "featstore prepare" in result.output
    splits_path("demo-cn").unlink()
    splits_path("demo-cn").parent.rmdir()
    splits_path("demo-cn").parent.write_text("a file where the splits folder goes")
    result = runner.invoke(featstore_app, ["splits", "demo-cn"])
    assert result.exit_code == 2 and "error:" in result.output


def test_unusable_audio_is_left_out():
    manifest = esd_like(per_emotion=60)
    bad = {"0001_000351": "silent", "0004_000001": "truncated", "9999_000001": "not in this manifest"}
    folds = make_folds(manifest, exclude=bad)
    assert not set(folds.table["utt_id"]) & set(bad)
    assert folds.meta["excluded"] == ["0001_000351", "0004_000001"]
    assert "unusable audio" in folds.meta["note"] and folds.meta["scaled"] is False
    assert len(folds.ids(0, "train")) == 1600


def test_splits_command_on_a_corrupt_or_mistyped_manifest(tmp_path, monkeypatch):
    from cli import featstore_app

    monkeypatch.setenv("CROSSLING_CACHE", str(tmp_path))
    manifest_path("broken").parent.mkdir(parents=True)
    manifest_path("broken").write_bytes(b"not parquet")
    result = CliRunner().invoke(featstore_app, ["splits", "broken"], env={"COLUMNS": "400"})
    assert result.exit_code == 2 and "not a readable parquet manifest" in result.output
    assert "Traceback" not in result.output
    esd_like(per_emotion=1).with_columns(pl.lit("x").alias("session")).write_parquet(manifest_path("typed"))
    result = CliRunner().invoke(featstore_app, ["splits", "typed"], env={"COLUMNS": "400"})
    assert result.exit_code == 2 and "column 'session'" in result.output


def test_balanced_draw_is_fast_on_a_large_single_speaker_corpus():
    import time

    import numpy as np

    from featstore.splits._draw import round_robin

    items = {"spk": [f"u{i:06d}" for i in range(50_000)]}
    start = time.perf_counter()
    drawn = round_robin(items, 1000, np.random.default_rng(0))
    assert time.perf_counter() - start < 5.0  # was quadratic: minutes at this size
    assert len(set(drawn)) == 1000 and set(drawn) <= set(items["spk"])
