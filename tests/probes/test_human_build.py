"""`probes human build`: stimulus selection, wav export, webMUSHRA config and key."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from cli import probes_app
from featstore.audio import load_audio
from featstore.manifest import CANONICAL_EMOTIONS, make_manifest, save_manifest
from featstore.paths import manifest_path, splits_path
from featstore.splits import FoldTable, save_folds
from probes.human import BuildConfig, build_listening_test, read_key
from probes.human.webmushra import WebMushraError, load_config, validate_config

LANG = {"esd": "cn", "pavoque": "de", "iemocap": "en", "tjd": "tj"}


def _tone(n, seed):
    rng = np.random.default_rng(seed)
    return (0.2 * np.sin(np.arange(n) / 7.0) + 0.01 * rng.standard_normal(n)).astype(np.float32)


def _corpus_rows(tmp_path, corpus, per_emotion, scripted=0):
    rows = []
    for e_i, emo in enumerate(CANONICAL_EMOTIONS):
        for i in range(per_emotion + scripted):
            utt = f"{corpus}_{emo}_{i}"
            path = tmp_path / "audio" / f"{utt}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, _tone(4000 + 100 * i, e_i * 10 + i), 16000)
            rows.append({"utt_id": utt, "corpus": corpus, "language": LANG[corpus], "speaker": f"s{i % 2}",
                         "emotion": emo, "label": emo, "path": str(path), "duration": 0.25,
                         "sample_rate": 16000,
                         "mode": ("scripted" if i >= per_emotion else "improvised") if scripted else None})
    return rows


def test_build_exports_stretches_and_valid_config(tmp_path):
    # a PAVOQUE-like long file at 44.1 kHz: each utterance is a stretch of it
    long_path = tmp_path / "pavoque-all.wav"
    sf.write(long_path, _tone(44100 * 4, 7), 44100, subtype="PCM_24")
    rows = []
    for k, emo in enumerate(CANONICAL_EMOTIONS):
        rows.append({"utt_id": f"m01{k}-{emo}", "corpus": "pavoque", "language": "de", "speaker": "spk",
                     "emotion": emo, "label": emo, "path": str(long_path), "start": 0.5 + k * 0.8,
                     "end": 0.5 + k * 0.8 + 0.3 + 0.1 * k, "duration": 0.3 + 0.1 * k, "sample_rate": 44100})
    rows += _corpus_rows(tmp_path, "esd", 1)
    sel = make_manifest(rows)
    res = build_listening_test(sel, tmp_path / "out", BuildConfig(corpora=("pavoque", "esd"), per_emotion=1))
    key = read_key(res.key_path)
    assert key.height == 8 == res.n_stimuli
    by_utt = {r["utt_id"]: r for r in key.iter_rows(named=True)}
    for row in sel.iter_rows(named=True):
        k = by_utt[row["utt_id"]]
        assert k["emotion"] == row["emotion"] and k["corpus"] == row["corpus"]
        assert k["language"] == row["language"]
        # keys are opaque: no label, no utterance id inside
        assert all(e not in k["stimulus"] for e in CANONICAL_EMOTIONS) and row["utt_id"] not in k["stimulus"]
        wav = tmp_path / "out" / k["file"]
        info = sf.info(wav)
        assert (info.samplerate, info.subtype, info.channels) == (16000, "PCM_16", 1)
        data, _ = sf.read(wav, dtype="float32")
        ref = load_audio(row["path"], row["start"], row["end"])
        assert data.shape == ref.shape
        assert np.max(np.abs(data - ref)) < 2.0 / 32768  # only 16-bit quantisation differs
    # the pavoque stretches are their own length, not the whole file
    pav = key.filter(pl.col("corpus") == "pavoque").sort("utt_id")
    assert [round(float(d), 2) for d in pav["duration_s"].cast(pl.Float64)] == [0.3, 0.4, 0.5, 0.6]

    cfg = yaml.safe_load(res.config_path.read_text())
    assert res.config_path == tmp_path / "out" / "configs" / "ser-test.yaml"
    for field in ("testname", "testId", "bufferSize", "stopOnErrors", "remoteService", "pages"):
        assert field in cfg
    assert cfg["testId"] == "ser-test" and cfg["remoteService"] == "service/write.php"
    pages = cfg["pages"]
    assert pages[0]["type"] == "generic"
    group = pages[1]
    assert isinstance(group, list) and group[0] == "random" and len(group) == 1 + 8
    heard = {}
    for page in group[1:]:
        assert page["type"] == "likert_single_stimulus"
        assert page["mustRate"] is True and page["mustPlayback"] == "ended"
        assert [r["value"] for r in page["response"]] == list(CANONICAL_EMOTIONS)
        assert all(set(r) == {"value", "label"} for r in page["response"])
        (stim, path), = page["stimuli"].items()
        assert (tmp_path / "out" / path).is_file()
        heard[stim] = path
    assert heard == dict(zip(key["stimulus"].to_list(), key["file"].to_list(), strict=True))
    finish = pages[-1]
    assert finish["type"] == "finish" and finish["writeResults"] is True
    names = {q["name"]: q for q in finish["questionnaire"]}
    assert {"listener_id", "native_language", "dialect", "second_languages", "l2_level", "email"} <= set(names)
    assert names["email"]["optional"] is True
    assert [r["value"] for r in names["native_language"]["response"]][:2] == ["de", "cn"]
    # the key (with labels) is not inside the published configs/ folder
    assert not list((tmp_path / "out" / "configs").rglob("*.csv"))
    validate_config(cfg, root=tmp_path / "out")


def test_validate_config_rejects_broken_structures(tmp_path):
    good = {"testname": "t", "testId": "t", "bufferSize": 2048, "remoteService": "service/write.php",
            "pages": [["random", {"type": "likert_single_stimulus", "id": "p1", "stimuli": {"a": "x.wav"},
                                  "response": [{"value": "angry", "label": "Angry"}]}],
                      {"type": "finish", "name": "end", "writeResults": True}]}
    validate_config(good)
    with pytest.raises(WebMushraError, match="stimulus 'a'"):
        validate_config(good, root=tmp_path)
    bad = {**good, "pages": good["pages"][:1]}
    with pytest.raises(WebMushraError, match="finish"):
        validate_config(bad)
    bad = {**good, "bufferSize": 1000}
    with pytest.raises(WebMushraError, match="bufferSize"):
        validate_config(bad)
    page = {**good["pages"][0][1], "response": [{"label": "Angry"}]}
    with pytest.raises(WebMushraError, match="value and label"):
        validate_config({**good, "pages": [page, good["pages"][1]]})
    (tmp_path / "c.yaml").write_text("pages: [unclosed")
    with pytest.raises(WebMushraError, match="c.yaml"):
        load_config(tmp_path / "c.yaml")


def test_build_command_selects_test_data_improvised_only(tmp_path):
    cache = tmp_path / "cache"
    for corpus, scripted in (("esd", 0), ("iemocap", 2), ("tjd", 0)):
        rows = _corpus_rows(tmp_path, corpus, 3, scripted=scripted)
        man = make_manifest(rows)
        save_manifest(man, manifest_path(corpus, cache))
        # fold 0: the first two per emotion (and every scripted one) are test data
        parts = ["test" if (r["utt_id"].endswith(("_0", "_1")) or r["mode"] == "scripted") else "train"
                 for r in rows]
        table = pl.DataFrame({"fold": [0] * len(rows), "part": parts, "utt_id": [r["utt_id"] for r in rows]})
        save_folds(FoldTable(table, {"scheme": "test", "seed": 0}), splits_path(corpus, cache))
    out = tmp_path / "out"
    result = CliRunner().invoke(probes_app, [
        "human", "build", "--corpora", "esd,iemocap,tjd", "--per-emotion", "2", "--seed", "3",
        "--cache", str(cache), "--out", str(out), "--name", "pilot",
    ])
    assert result.exit_code == 0, result.output
    key = read_key(out / "pilot.key.csv")
    assert key.height == 3 * 4 * 2
    counts = key.group_by("corpus", "emotion").len()
    assert set(counts["len"].to_list()) == {2}
    # test data only, and IEMOCAP improvised only (the scripted ones are test data too)
    assert all(u.endswith(("_0", "_1")) for u in key["utt_id"].to_list())
    assert set(key["language"].to_list()) == {"cn", "en", "tj"}
    cfg = load_config(out / "configs" / "pilot.yaml")
    assert cfg["testId"] == "pilot"
    # same seed -> same test
    again = CliRunner().invoke(probes_app, [
        "human", "build", "--corpora", "esd,iemocap,tjd", "--per-emotion", "2", "--seed", "3",
        "--cache", str(cache), "--out", str(tmp_path / "again"), "--name", "pilot",
    ])
    assert again.exit_code == 0
    assert read_key(tmp_path / "again" / "pilot.key.csv").drop("source_path").equals(key.drop("source_path"))


def test_build_command_reports_missing_corpus(tmp_path):
    result = CliRunner().invoke(probes_app, ["human", "build", "--corpora", "esd", "--cache", str(tmp_path)])
    assert result.exit_code == 2
    assert "featstore prepare" in result.output or "no prepared manifest" in result.output
