"""``featstore corpora`` and ``featstore prepare`` through the CLI (typer CliRunner)."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import polars as pl
import soundfile as sf
from typer.testing import CliRunner

import cli
from featstore.audio import bad_files_path, load_bad_files
from featstore.corpora.prepare import count_table
from featstore.corpora.testing import esd_utt_id, write_esd_tree, write_tone
from featstore.manifest import load_manifest, manifest_fingerprint
from featstore.paths import manifest_path

ENV = {"COLUMNS": "240"}


def _run(*args):
    result = CliRunner().invoke(cli.featstore_app, [str(a) for a in args], env=ENV)
    return result, " ".join(result.output.split())


def _esd(tmp_path, per_emotion=(("0001", 2), ("0002", 1), ("0011", 3))):
    files = [(esd_utt_id(spk, e, k), e) for spk, n in per_emotion
             for e in ("Angry", "Happy", "Neutral", "Sad", "Surprise") for k in range(n)]
    write_esd_tree(tmp_path / "esd", files, official_folder=True)
    return tmp_path / "esd", files


def test_corpora_lists_readers():
    result, out = _run("corpora")
    assert result.exit_code == 0
    for name, language in (("esd", "cn, en"), ("pavoque", "de"), ("iemocap", "en"), ("zed", "en"),
                           ("table", "any")):
        assert re.search(rf"{name}\s*│\s*{re.escape(language)}\s*│", result.output), name


def test_prepare_esd_saves_manifest_prints_counts_and_fingerprint(tmp_path):
    root, files = _esd(tmp_path)
    cache = tmp_path / "cache"
    result, out = _run("prepare", "esd", "--root", root, "--cache-root", cache)
    assert result.exit_code == 0, result.output
    frame = load_manifest(manifest_path("esd", cache))
    assert sorted(frame["utt_id"]) == sorted(u for u, _ in files)
    assert f"fingerprint: {manifest_fingerprint(frame)}" in out
    # the count table, checked against counts made from the files written
    expected = Counter((e.lower(), u.split("_")[0]) for u, e in files)
    table = count_table(frame)
    for emotion, speaker in expected:
        got = table.filter(pl.col("emotion") == emotion)[speaker].item()
        assert got == expected[(emotion, speaker)]
    assert table.filter(pl.col("emotion") == "total")["total"].item() == len(files)
    assert table["emotion"].to_list() == ["angry", "happy", "neutral", "sad", "surprise", "total"]
    assert re.search(r"angry\s*│\s*2\s*│\s*1\s*│\s*3\s*│\s*6", result.output)
    assert re.search(r"total\s*│\s*10\s*│\s*5\s*│\s*15\s*│\s*30", result.output)
    assert not bad_files_path(manifest_path("esd", cache)).exists()


def test_prepare_check_audio_reports_saves_and_skips(tmp_path):
    root, files = _esd(tmp_path, (("0003", 1),))
    spk = root / "Emotion Speech Dataset" / "0003"
    trunc = spk / "Angry" / "train" / f"{esd_utt_id('0003', 'Angry', 0)}.wav"
    trunc.write_bytes(trunc.read_bytes()[:300])
    silent = spk / "Sad" / "train" / f"{esd_utt_id('0003', 'Sad', 0)}.wav"
    sf.write(silent, np.zeros(1600, dtype=np.float32), 16000)
    cache = tmp_path / "cache"
    result, out = _run("prepare", "esd", "--root", root, "--name", "esd_cn", "--cache-root", cache,
                       "--check-audio")
    assert result.exit_code == 0, result.output
    bad = load_bad_files(manifest_path("esd_cn", cache))
    assert set(bad) == {trunc.stem, silent.stem}
    assert bad[trunc.stem].startswith("truncated") and bad[silent.stem].startswith("silent")
    assert "2 unusable file(s)" in out and trunc.stem in out and "truncated" in out
    assert bad_files_path(manifest_path("esd_cn", cache)).name == "esd_cn.bad.parquet"
    # same corpus again without the check: the table still belongs to this manifest, kept
    result, _ = _run("prepare", "esd", "--root", root, "--name", "esd_cn", "--cache-root", cache)
    assert load_bad_files(manifest_path("esd_cn", cache)) == bad
    # the corpus changed: the old table would skip on stale information, so it goes
    write_tone(spk / "Happy" / "train" / f"{esd_utt_id('0003', 'Happy', 5)}.wav", 0.1)
    result, out = _run("prepare", "esd", "--root", root, "--name", "esd_cn", "--cache-root", cache)
    assert result.exit_code == 0 and "removed a bad-file table" in out
    assert load_bad_files(manifest_path("esd_cn", cache)) == {}


def test_prepare_clean_check_and_warnings_printed(tmp_path):
    root, _ = _esd(tmp_path, (("0004", 1),))
    (root / "Emotion Speech Dataset" / "0004" / "0004.txt").write_bytes(b"broken\n")
    result, out = _run("prepare", "esd", "--root", root, "--cache-root", tmp_path / "c", "--check-audio")
    assert result.exit_code == 0
    assert "all 5 files decode" in out
    assert "warning:" in out and "0004.txt:1" in out


def test_prepare_table_with_label_map_and_language(tmp_path):
    write_tone(tmp_path / "tjd" / "a.wav", 0.1)
    write_tone(tmp_path / "tjd" / "b.wav", 0.1)
    (tmp_path / "tjd" / "list.csv").write_text("path,label,speaker\na.wav,negation,s1\nb.wav,question,s2\n")
    cache = tmp_path / "cache"
    result, out = _run("prepare", "table", "--root", tmp_path / "tjd" / "list.csv", "--cache-root", cache)
    assert result.exit_code == 2 and "needs a corpus name" in out and "Traceback" not in out
    result, out = _run("prepare", "table", "--root", tmp_path / "tjd" / "list.csv", "--name", "tjd",
                       "--language", "tj", "--label-map", "negation=angry,expectation=happy",
                       "--cache-root", cache)
    assert result.exit_code == 0, result.output
    frame = load_manifest(manifest_path("tjd", cache))
    assert dict(zip(frame["utt_id"], frame["emotion"], strict=True)) == {"a": "angry", "b": "question"}
    assert set(frame["language"]) == {"tj"} and set(frame["corpus"]) == {"tjd"}
    # a row pointing out of the table's folder is caught by the audio check
    write_tone(tmp_path / "outside.wav", 0.1)
    with (tmp_path / "tjd" / "list.csv").open("a") as handle:
        handle.write("../outside.wav,negation,s1\n")
    result, out = _run("prepare", "table", "--root", tmp_path / "tjd" / "list.csv", "--name", "tjd",
                       "--language", "tj", "--cache-root", cache, "--check-audio")
    assert result.exit_code == 0, result.output
    bad = load_bad_files(manifest_path("tjd", cache))
    assert list(bad) == ["outside"] and "outside the corpus root" in bad["outside"]


def test_prepare_pavoque_layout_option(tmp_path):
    write_tone(tmp_path / "pav" / "spike0013-angry.wav", 0.1, 44100)
    result, _ = _run("prepare", "pavoque", "--root", tmp_path / "pav", "--layout", "extracted",
                     "--cache-root", tmp_path / "c")
    assert result.exit_code == 0, result.output
    assert load_manifest(manifest_path("pavoque", tmp_path / "c"))["utt_id"].to_list() == ["spike0013-angry"]


def test_prepare_user_errors_are_clear(tmp_path):
    cache = tmp_path / "cache"
    result, out = _run("prepare", "esd", "--root", tmp_path / "nowhere", "--cache-root", cache)
    assert result.exit_code == 2 and "ESD not found under" in out and "0001 ... 0020" in out
    assert "Traceback" not in result.output
    # brackets in a path are printed as they are, not read as rich markup
    result, out = _run("prepare", "esd", "--root", tmp_path / "a[/b]" / "x[bold]y", "--cache-root", cache)
    assert result.exit_code == 2 and "a[/b]/x[bold]y" in out
    # a cache root that cannot hold folders: the OS error, not a traceback
    (tmp_path / "a_file").write_text("x")
    result, out = _run("prepare", "esd", "--root", _esd(tmp_path / "e", (("0001", 1),))[0],
                       "--cache-root", tmp_path / "a_file")
    assert result.exit_code == 2 and "a_file" in out and "Traceback" not in result.output
    result, out = _run("prepare", "iemocap", "--root", tmp_path, "--cache-root", cache)
    assert result.exit_code == 2 and "Session1 ... Session5" in out
    result, out = _run("prepare", "nosuch", "--root", tmp_path, "--cache-root", cache)
    assert result.exit_code == 2 and "unknown corpus reader 'nosuch'" in out
    root, _ = _esd(tmp_path, (("0001", 1),))
    result, out = _run("prepare", "esd", "--root", root, "--label-map", "a=b", "--cache-root", cache)
    assert result.exit_code == 2 and "does not take ['label_map']" in out
    result, out = _run("prepare", "esd", "--root", root, "--name", "../evil", "--cache-root", cache)
    assert result.exit_code == 2 and "corpus name" in out
    zed = tmp_path / "zed"
    write_tone(zed / "x.wav", 0.1)
    (zed / "ZED.json").write_text(json.dumps({"x": {"wav": "datafolder/x.wav", "duration": 0.1,
                                                    "emotion": [{"emo": "Bored", "start": 0, "end": 0.1}]}}))
    result, out = _run("prepare", "zed", "--root", zed, "--cache-root", cache)
    assert result.exit_code == 2 and "'x'" in out and "'Bored'" in out
    assert not manifest_path("zed", cache).exists()
