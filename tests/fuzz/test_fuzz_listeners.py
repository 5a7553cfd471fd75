"""Fuzzed front doors of the listening tests: answer, key, groups and SED listener tables
with missing, extra, misspelt and mistyped columns, NA everywhere, other encodings.

Contract: a typed ``CrosslingError`` naming the file (library), or exit code 2 with one
message naming the file and no traceback (``probes human ingest``); nothing written
outside the output folder, no half-written result. The budget is small by default
(``CROSSLING_FUZZ_EXAMPLES`` examples per test, default 15).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from featstore.errors import CrosslingError
from probes.human.ingest import IngestConfig, ingest, read_groups
from probes.human.keys import read_key
from probes.sed._listeners import read_answers as read_sed_answers
from probes.sed._listeners import read_key as read_sed_key
from probes.sed._listeners import score_answers

EXAMPLES = int(os.environ.get("CROSSLING_FUZZ_EXAMPLES", "15"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

STIMULI = ["s01", "s02", "s03", "s04"]
KEY = {"stimulus": STIMULI, "corpus": ["esd", "esd", "pavoque", "pavoque"],
       "utt_id": ["0001_000001", "0001_000002", "p01", "p02"], "language": ["cn", "cn", "de", "de"],
       "emotion": ["angry", "sad", "happy", "neutral"]}
ANSWERS = {"listener": ["a"] * 4 + ["b"] * 4, "group": ["zh"] * 4 + ["de"] * 4, "stimulus": STIMULI * 2,
           "answer": ["angry", "sad", "happy", "neutral", "sad", "sad", "happy", "angry"]}
GROUPS = {"listener": ["a", "b"], "group": ["mandarin", "de"]}
WEBMUSHRA = {"session_test_id": ["ser"] * 4, "listener_id": ["a"] * 4, "native_language": ["cn"] * 4,
             "native_language_other": [""] * 4, "trial_id": STIMULI, "stimuli_rating": ["angry", "sad", "happy", "neutral"],
             "stimuli": STIMULI, "rating_time": ["1200", "900", "1000", "800"]}
SED_KEY = {"stimulus": ["sed01", "sed02"], "utt_id": ["z1", "z2"], "emotion": ["angry", "sad"],
           "event_start": ["0.5", "0.2"], "event_end": ["1.5", "1.0"], "duration": ["2.0", "1.8"],
           "events": [json.dumps([{"emotion": "angry", "start": 0.5, "end": 1.5}]),
                      json.dumps([{"emotion": "sad", "start": 0.2, "end": 1.0}])]}
SED_ANSWERS = {"listener": ["a", "a"], "group": ["cn", "cn"], "stimulus": ["sed01", "sed02"],
               "label": ["angry", "sad"], "start": ["0.4", "0.3"], "end": ["1.4", "1.1"]}
NA = ["NA", "", "null", "nan", "N/A", " "]


def _misspell(name: str, data) -> str:
    kind = data.draw(st.sampled_from(["drop_char", "swap", "case", "space", "suffix"]), label="misspell")
    i = data.draw(st.integers(0, max(len(name) - 2, 0)), label="i")
    return {"drop_char": name[:i] + name[i + 1:], "swap": name[:i] + name[i + 1:i + 2] + name[i] + name[i + 2:],
            "case": name.upper(), "space": name.replace("_", " ") if "_" in name else name + " x",
            "suffix": name + "s"}[kind] or "x"


def _mutate(table: dict[str, list[str]], data, what: str) -> dict[str, list[str]]:
    """``table`` with 1-3 hostile edits: drop, misspell, extra, NA everywhere, mistyped."""
    table = {k: list(v) for k, v in table.items()}
    n = len(next(iter(table.values())))
    for _ in range(data.draw(st.integers(1, 3), label=f"{what} edits")):
        if not table:
            break
        col = data.draw(st.sampled_from(sorted(table)), label=f"{what} column")
        op = data.draw(st.sampled_from(["drop", "misspell", "extra", "na", "mistype"]), label=f"{what} op")
        if op == "drop" and len(table) > 1:
            del table[col]
        elif op == "misspell":
            new = _misspell(col, data)
            if new not in table:
                table[new] = table.pop(col)
        elif op == "extra":
            name = data.draw(st.text("abcdefgh_", min_size=1, max_size=8), label="extra name")
            if name not in table:
                table[name] = [data.draw(st.text(max_size=6), label="extra value") for _ in range(n)]
        elif op == "na":
            table[col] = [data.draw(st.sampled_from(NA), label="na")] * n
        else:
            table[col] = [str(data.draw(st.one_of(st.integers(), st.floats(), st.text(max_size=8),
                                                   st.booleans()), label="value")) for _ in range(n)]
    return table


def _write(table: dict[str, list[str]], path: Path, data, what: str) -> Path:
    frame = pl.DataFrame(table, schema=dict.fromkeys(table, pl.Utf8))
    text = frame.write_csv(separator="\t" if path.suffix == ".tsv" else ",")
    encoding = data.draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]), label=f"{what} encoding")
    path.write_bytes(text.encode(encoding, errors="replace"))
    return path


def _flat(text: str) -> str:
    return "".join(text.split())


def _snapshot(root: Path, skip: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in root.rglob("*")
            if p.is_file() and skip not in p.parents and p != skip}


@FUZZ
@given(data=st.data())
def test_library_readers_give_typed_errors_naming_the_file(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("lib")
    which = data.draw(st.sampled_from(["answers", "key", "groups", "webmushra"]), label="which file")
    tables = {"answers": ANSWERS, "key": KEY, "groups": GROUPS, "webmushra": WEBMUSHRA}
    paths = {name: _write(table if name != which else _mutate(table, data, name), folder / f"{name}.csv",
                          data, name) for name, table in tables.items()}
    try:
        key = read_key(paths["key"], notes=[])
        groups = read_groups(paths["groups"]) if which == "groups" else None
        result = ingest([paths["webmushra" if which == "webmushra" else "answers"]], key, IngestConfig(), groups)
    except CrosslingError as err:
        event(f"error: {type(err).__name__}")
        assert _flat(str(paths[which])) in _flat(str(err)) or which == "groups", str(err)
        if which == "groups":  # a group the table maps to nothing: named by the groups table
            assert str(paths["groups"]) in str(err), str(err)
    else:
        event("read")
        assert set(result.answers["stimulus"].to_list()) <= set(STIMULI)


@FUZZ
@given(data=st.data())
def test_ingest_command_exits_2_naming_the_file_and_writes_nothing_half(tmp_path_factory, data):
    import cli

    folder = tmp_path_factory.mktemp("cli")
    which = data.draw(st.sampled_from(["answers", "key", "groups"]), label="which file")
    use_groups = which == "groups" or data.draw(st.booleans(), label="groups table")
    paths = {name: _write(table if name != which else _mutate(table, data, name),
                          folder / f"{name}.{data.draw(st.sampled_from(['csv', 'tsv']), label='suffix')}",
                          data, name)
             for name, table in (("answers", ANSWERS), ("key", KEY), ("groups", GROUPS))}
    out = folder / "out"
    args = ["human", "ingest", str(paths["answers"]), "--key", str(paths["key"]), "--out", str(out)]
    if use_groups:
        args += ["--groups", str(paths["groups"])]
    before = _snapshot(folder, out)
    result = CliRunner().invoke(cli.probes_app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 2), result.output
    event(f"exit {result.exit_code}")
    assert "Traceback" not in result.output
    assert _snapshot(folder, out) == before, "a file outside the output folder was written"
    written = sorted(p.name for p in out.rglob("*")) if out.exists() else []
    assert not [n for n in written if ".tmp" in n], written
    if result.exit_code == 2:
        assert _flat(str(paths[which])) in _flat(result.output) or (
            which != "groups" and use_groups and _flat(str(paths["groups"])) in _flat(result.output)), result.output
        assert "answers.parquet" not in written
    else:
        assert {"answers.parquet", "listeners.csv", "anomalies.json", "ingest.json"} <= set(written)
        pl.read_parquet(out / "answers.parquet")


@FUZZ
@given(data=st.data())
def test_sed_listener_tables(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("sed")
    which = data.draw(st.sampled_from(["key", "answers"]), label="which file")
    key_path = _write(_mutate(SED_KEY, data, "key") if which == "key" else SED_KEY, folder / "key.csv", data, "key")
    ans_path = _write(_mutate(SED_ANSWERS, data, "answers") if which == "answers" else SED_ANSWERS,
                      folder / "answers.csv", data, "answers")
    target = key_path if which == "key" else ans_path
    try:
        scored = score_answers(read_sed_answers(ans_path), read_sed_key(key_path), ans_path)
    except CrosslingError as err:
        event(f"error: {type(err).__name__}")
        assert str(target) in str(err), str(err)
    else:
        assert scored.height >= 1 and scored["eder"].is_between(0, 1).all()


@pytest.mark.parametrize("column", ["stimulus", "language", "emotion", "utt_id", "corpus"])
def test_key_column_na_everywhere(tmp_path, column):
    path = tmp_path / "key.csv"
    pl.DataFrame({**KEY, column: ["NA"] * 4}).write_csv(path)
    with pytest.raises(CrosslingError, match=column) as err:
        read_key(path)
    assert str(path) in str(err.value)
