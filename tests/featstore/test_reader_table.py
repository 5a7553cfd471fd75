"""Table reader (CSV / TSV / JSONL manifest + label map), e.g. the Tianjin dialect corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from featstore.corpora import READERS, CorpusFormatError, CorpusNotFoundError, CorpusWarning, read_table
from featstore.corpora.base import parse_label_map
from featstore.corpora.testing import write_tone

TJD_MAP = "negation=angry,expectation=happy"


def _audio(root):
    write_tone(root / "audio" / "spk1" / "u1.wav", 0.20)
    write_tone(root / "audio" / "spk1" / "u2.wav", 0.30)
    write_tone(root / "audio" / "spk2" / "u3.wav", 0.40)
    write_tone(root / "long.flac", 2.0, 44100)


def test_csv_with_label_map_every_field(tmp_path):
    _audio(tmp_path)
    (tmp_path / "tjd.csv").write_text(
        "path,label,speaker,gender\n"
        "audio/spk1/u1.wav,negation,spk1,F\n"
        "audio/spk1/u2.wav,Question,spk1,F\n"
        "audio/spk2/u3.wav,expectation,spk2,M\n"
        "long.flac,Neutral,spk2,M\n", encoding="utf-8")
    frame = read_table(tmp_path / "tjd.csv", name="tjd", language="tj", label_map=TJD_MAP)
    rows = {r["utt_id"]: r for r in frame.iter_rows(named=True)}
    assert sorted(rows) == ["long", "u1", "u2", "u3"]
    assert {u: (r["label"], r["emotion"]) for u, r in rows.items()} == {
        "u1": ("negation", "angry"), "u2": ("Question", "question"),
        "u3": ("expectation", "happy"), "long": ("Neutral", "neutral")}
    assert rows["u1"]["path"] == str(tmp_path / "audio" / "spk1" / "u1.wav")
    assert rows["u3"]["speaker"] == "spk2" and rows["u3"]["gender"] == "M"
    assert set(frame["corpus"]) == {"tjd"} and set(frame["language"]) == {"tj"}
    assert rows["u2"]["duration"] == pytest.approx(0.3) and rows["u2"]["sample_rate"] == 16000
    assert rows["long"]["sample_rate"] == 44100 and rows["long"]["duration"] == pytest.approx(2.0)


def test_tsv_with_stretches_ids_and_language_column(tmp_path):
    _audio(tmp_path)
    (tmp_path / "m.tsv").write_text(
        "utt_id\tpath\tlabel\tlanguage\tstart\tend\tspeaker\n"
        "a\tlong.flac\tangry\tde\t0.5\t1.25\ts\n"
        "b\tlong.flac\tsad\tde\t1.25\t2.0\ts\n", encoding="utf-8")
    frame = read_table(tmp_path)  # the folder holding one table works too
    a = frame.filter(frame["utt_id"] == "a").row(0, named=True)
    assert (a["start"], a["end"], a["duration"]) == (0.5, 1.25, 0.75)
    assert a["language"] == "de" and a["corpus"] == "table"
    assert read_table(tmp_path, language="en")["language"].to_list() == ["en", "en"]  # override wins


def test_jsonl_and_duplicate_stems(tmp_path):
    write_tone(tmp_path / "a" / "x.wav", 0.1)
    write_tone(tmp_path / "b" / "x.wav", 0.1)
    lines = [{"path": "a/x.wav", "label": "Happy", "speaker": "p1", "duration": 0.09},
             {"path": "b/x.wav", "label": "expectation", "speaker": "p2"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    frame = read_table(tmp_path / "m.jsonl", name="j", language="en", label_map={"Expectation": "Happy"})
    assert sorted(frame["utt_id"]) == ["a/x", "b/x"]
    assert frame["emotion"].to_list() == ["happy", "happy"]
    assert frame.filter(frame["utt_id"] == "a/x")["duration"].item() == pytest.approx(0.09)


def test_bad_tables(tmp_path):
    _audio(tmp_path)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "nolabel.csv").write_text("path\naudio/u1.wav\n")
    with pytest.raises(CorpusFormatError, match=r"missing column\(s\) \['label'\]"):
        read_table(tmp_path / "t" / "nolabel.csv", language="tj")
    (tmp_path / "nolang.csv").write_text("path,label\naudio/spk1/u1.wav,x\n")
    with pytest.raises(CorpusFormatError, match="--language"):
        read_table(tmp_path / "nolang.csv")
    (tmp_path / "missing.csv").write_text("path,label\naudio/spk1/u1.wav,x\naudio/none.wav,y\n")
    with pytest.warns(CorpusWarning, match="1 row.*none.wav"):
        assert read_table(tmp_path / "missing.csv", language="tj").height == 1
    (tmp_path / "badnum.csv").write_text("path,label,start\naudio/spk1/u1.wav,x,soon\n")
    with pytest.raises(CorpusFormatError, match="badnum.csv line 2: start 'soon'"):
        read_table(tmp_path / "badnum.csv", language="tj")
    (tmp_path / "nopath.csv").write_text("path,label\naudio/spk1/u1.wav,x\n,y\n")
    with pytest.raises(CorpusFormatError, match="nopath.csv line 3: empty path or label"):
        read_table(tmp_path / "nopath.csv", language="tj")
    (tmp_path / "badsession.csv").write_text("path,label,session\naudio/spk1/u1.wav,x,S1\n")
    with pytest.raises(CorpusFormatError, match="badsession.csv line 2: session 'S1'"):
        read_table(tmp_path / "badsession.csv", language="tj")
    with pytest.raises(CorpusNotFoundError):
        read_table(tmp_path)  # several tables in the folder: ambiguous
    with pytest.raises(CorpusNotFoundError):
        read_table(tmp_path / "nothing_here")


def test_parse_label_map():
    assert parse_label_map(TJD_MAP) == {"negation": "angry", "expectation": "happy"}
    assert parse_label_map(" Negation = ANGRY , ") == {"negation": "angry"}
    assert parse_label_map(None) == {}
    with pytest.raises(ValueError, match="original=emotion"):
        parse_label_map("negation:angry")
    assert READERS["table"].needs_name


def test_escaping_rows_refused_with_a_relative_root(tmp_path, monkeypatch):
    """``--root c/l.csv`` given relative to the working directory: ``../x.wav`` still leaves
    the table's folder (it was once joined to the root a second time and let through)."""
    write_tone(tmp_path / "c" / "a.wav", 0.1)
    write_tone(tmp_path / "x.wav", 0.1)
    (tmp_path / "c" / "l.csv").write_text("path,label\na.wav,angry\n../x.wav,sad\n")
    monkeypatch.chdir(tmp_path)
    with pytest.warns(CorpusWarning, match=r"1 audio path\(s\) leave the corpus root"):
        frame = read_table(Path("c") / "l.csv", name="t", language="tj")
    assert frame["path"].to_list() == [str(tmp_path / "c" / "a.wav")]


def test_a_root_that_does_not_exist_says_so(tmp_path):
    from featstore.corpora import CorpusNotFoundError
    from featstore.corpora.table import find_table

    with pytest.raises(CorpusNotFoundError, match=r"no such file or folder"):
        find_table(tmp_path / "p[cn]" / "nofile.csv")
