"""featstore.io and featstore.errors: the shared atomic writes, checked table reads,
parquet metadata, and the small checks every package raises through."""

from __future__ import annotations

import os

import polars as pl
import pytest

from featstore.errors import (
    CrosslingError,
    UnknownNameError,
    UnsafeIdError,
    check_choice,
    path_inside,
    safe_file_stem,
    unknown_name,
)
from featstore.io import (
    TableError,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    detect_encoding,
    parquet_key_values,
    parquet_metadata,
    read_table,
    write_parquet,
)


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    atomic_write_text(path, "old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_text() == "old"
    assert sorted(os.listdir(path.parent)) == ["a.txt"]  # no temporary file left


def test_atomic_write_keeps_the_suffix_for_writers_that_infer_the_format(tmp_path):
    seen = []
    atomic_write(tmp_path / "fig.svg", lambda tmp: (seen.append(tmp.suffix), tmp.write_text("x")))
    assert seen == [".svg"] and (tmp_path / "fig.svg").read_text() == "x"


def test_parquet_metadata_round_trip_and_plain_key_values(tmp_path):
    path = write_parquet(pl.DataFrame({"a": [1, 2]}), tmp_path / "t.parquet", {"seed": 3, "scheme": "x"},
                         extra={"fold_scheme": "speaker"})
    assert parquet_metadata(path) == {"seed": 3, "scheme": "x"}
    assert parquet_key_values(path)["fold_scheme"] == "speaker"
    plain = tmp_path / "plain.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(plain)
    assert parquet_metadata(plain) == {}


def test_parquet_metadata_of_a_file_that_is_not_parquet_names_it(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(TableError, match="bad.parquet"):
        parquet_metadata(bad)
    with pytest.raises(TableError, match="no such file"):
        parquet_metadata(tmp_path / "missing.parquet")


def test_read_table_reads_latin1_and_names_the_encoding(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("utt_id,label\nx,\xe9t\xe9\n".encode("latin-1"))
    frame = read_table(path, required=["utt_id"])
    assert frame["label"].to_list() == ["\xe9t\xe9"]
    assert detect_encoding(path) in {"cp1252", "latin-1"}
    utf8 = tmp_path / "u.tsv"
    utf8.write_text("utt_id\tlabel\ny\t\u6124\u6012\n", encoding="utf-8")
    assert read_table(utf8)["label"].to_list() == ["\u6124\u6012"] and detect_encoding(utf8) == "utf-8"


def test_read_table_names_missing_columns_with_the_closest_one(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("utt,emotion\na,sad\n")
    with pytest.raises(TableError) as err:
        read_table(path, required=["utt_id", "emotion"], what="key")
    message = str(err.value)
    assert str(path) in message and "'utt_id'" in message and "did you mean 'utt'" in message
    assert isinstance(err.value, CrosslingError)


def test_read_table_gives_the_line_number_of_a_bad_json_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"utt_id": "a"}\n\n{"utt_id": "b"}\n{"utt_id": \n')
    with pytest.raises(TableError, match=r"line 4 is not JSON"):
        read_table(path)
    path.write_text('{"utt_id": "a", "n": 1}\n["not", "an", "object"]\n')
    with pytest.raises(TableError, match=r"line 2 is not a JSON object"):
        read_table(path)
    path.write_text('{"utt_id": "a", "n": 1}\n{"utt_id": "b", "x": null}\n')
    frame = read_table(path, required=["utt_id"])
    assert frame.to_dicts() == [{"utt_id": "a", "n": "1", "x": None}, {"utt_id": "b", "n": None, "x": None}]


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_read_table_refuses_an_empty_table(tmp_path, content):
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(TableError, match="empty"):
        read_table(path)


def test_read_table_refuses_a_folder_and_a_missing_file(tmp_path):
    with pytest.raises(TableError, match="not a file"):
        read_table(tmp_path)
    with pytest.raises(TableError, match="no such"):
        read_table(tmp_path / "none.csv")


def test_atomic_write_json_is_json(tmp_path):
    import json

    path = atomic_write_json(tmp_path / "a.json", {"p": tmp_path})
    assert json.loads(path.read_text()) == {"p": str(tmp_path)}


@pytest.mark.parametrize("bad", ["", "..", ".", "../x", "a/b", "a\\b", "x\x00y", " lead", ".hidden", "a" * 201])
def test_safe_file_stem_refuses_what_would_leave_the_folder(bad):
    with pytest.raises(UnsafeIdError):
        safe_file_stem(bad)


@pytest.mark.parametrize("good", ["0011_000351", "Ses01F_impro01_F000", "spk-1.utt_2", "\u6124\u6012"])
def test_safe_file_stem_keeps_ordinary_ids(good):
    assert safe_file_stem(good) == good


def test_path_inside_refuses_climbing_and_symlinks_out(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.wav").write_bytes(b"")
    (tmp_path / "outside.wav").write_bytes(b"")
    assert path_inside("a/x.wav", root) == (root / "a" / "x.wav").resolve()
    assert path_inside("a/../a/x.wav", root) == (root / "a" / "x.wav").resolve()
    with pytest.raises(UnsafeIdError, match="leaves"):
        path_inside("../outside.wav", root)
    with pytest.raises(UnsafeIdError):
        path_inside(tmp_path / "outside.wav", root)
    (root / "link.wav").symlink_to(tmp_path / "outside.wav")
    with pytest.raises(UnsafeIdError):
        path_inside("link.wav", root)


def test_unknown_name_lists_what_exists_and_the_closest():
    err = unknown_name("model", "w2v2-dee", ["w2v2-de", "w2v2-cn", "w2v2-en"], hint="or give a folder")
    assert isinstance(err, UnknownNameError) and isinstance(err, CrosslingError)
    text = str(err)
    assert "did you mean 'w2v2-de'" in text and "w2v2-cn, w2v2-de, w2v2-en" in text and "or give a folder" in text
    assert check_choice("head", "mlp", ["mlp", "linear"]) == "mlp"
    with pytest.raises(UnknownNameError, match="known: linear, mlp"):
        check_choice("head", "svm", ["mlp", "linear"])


def test_unknown_name_points_another_name_to_the_known_one():
    repos = {"org/model-960h": "m-en", "org/model-large": "m-large"}
    kwargs = {"known_as": repos, "known_as_label": "Hugging Face repository"}
    text = str(unknown_name("model", "Org/Model-960h", ["m-en", "m-large"], **kwargs))
    assert "'Org/Model-960h' is the Hugging Face repository of model 'm-en': give 'm-en'" in text
    assert "did you mean 'm-en' (org/model-960h)" in str(unknown_name("model", "org/model-960", ["m-en"], **kwargs))
    # a typo of a known name is still pointed to that name first
    assert "did you mean 'm-large'?" in str(unknown_name("model", "m-larg", ["m-en", "m-large"], **kwargs))
