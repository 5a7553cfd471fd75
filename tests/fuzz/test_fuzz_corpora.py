"""Fuzzed front doors of the corpus side: audio headers, table manifests, corpus trees,
split import (Hypothesis).

The contract checked for every generated input:

- the library raises a typed :class:`~featstore.errors.CrosslingError` (never another
  exception), or the CLI (``featstore prepare`` / ``featstore splits``) exits 0 or 2 with
  one ``error:`` message naming the file and no traceback;
- nothing outside the corpus root is opened: a sentinel folder beside the corpus is
  watched through a Python audit hook (every ``open``) and through soundfile's ``info`` /
  ``SoundFile`` (libsndfile opens in C);
- nothing is written outside the output (cache) folder, and no temporary or half-written
  manifest is left; a refused run leaves no manifest at all.

The budget is small by default (the whole file runs in well under 20 s on two cores);
``CROSSLING_FUZZ_EXAMPLES=500 pytest tests/fuzz`` runs more examples per test.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import polars as pl
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import cli
from featstore.audio import (
    AudioError,
    bad_files_path,
    check_audio,
    load_audio,
    load_bad_files,
    probe_duration,
)
from featstore.corpora import READERS
from featstore.corpora.base import CorpusWarning
from featstore.corpora.esd import file_name_ok
from featstore.corpora.iemocap import UTT_RE
from featstore.corpora.pavoque import _EXTRACTED_RE
from featstore.corpora.prepare import PrepareConfig, prepare_corpus
from featstore.corpora.table import read_table
from featstore.corpora.testing import write_tone
from featstore.errors import CrosslingError
from featstore.manifest import load_manifest
from featstore.paths import manifest_path

EXAMPLES = int(os.environ.get("CROSSLING_FUZZ_EXAMPLES", "0"))


def budget(default: int) -> settings:
    """Hypothesis settings: ``default`` examples (``$CROSSLING_FUZZ_EXAMPLES`` if set)."""
    return settings(max_examples=EXAMPLES or default, deadline=None, derandomize=not EXAMPLES,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


# --------------------------------------------------------------------------- watching

_OPENED: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


@contextlib.contextmanager
def watch_opens():
    """Record every file opened by Python or by soundfile while the block runs."""
    global _OPENED
    opened: list[str] = []
    real_info, real_soundfile = sf.info, sf.SoundFile

    def info(file, *a, **k):
        opened.append(os.fsdecode(file) if isinstance(file, (str, bytes, os.PathLike)) else "<buffer>")
        return real_info(file, *a, **k)

    def soundfile(file, *a, **k):
        opened.append(os.fsdecode(file) if isinstance(file, (str, bytes, os.PathLike)) else "<buffer>")
        return real_soundfile(file, *a, **k)

    _OPENED = opened
    try:
        with mock.patch.object(sf, "info", info), mock.patch.object(sf, "SoundFile", soundfile):
            yield opened
    finally:
        _OPENED = None


def opened_under(opened: list[str], folder: Path) -> list[str]:
    folder = folder.resolve()
    hits = []
    for name in opened:
        try:
            resolved = Path(name).resolve()
        except (OSError, RuntimeError, ValueError):
            continue
        if resolved == folder or folder in resolved.parents:
            hits.append(name)
    return hits


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def squeeze(text: str) -> str:
    """Output without any white space: the terminal width may wrap a long path anywhere."""
    return "".join(text.split())


class Sandbox:
    """A temporary folder with ``corpus/`` (the root), ``outside/`` (a sentinel that must
    never be opened: a valid wav and a folder of them) and ``cache/`` (the only output)."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.base = Path(self._tmp.name).resolve()
        self.root = self.base / "corpus"
        self.outside = self.base / "outside"
        self.cache = self.base / "cache"
        self.root.mkdir()
        self.secret = write_tone(self.outside / "secret.wav", 0.1)
        write_tone(self.outside / "dir" / "0001_001051.wav", 0.1)
        write_tone(self.outside / "dir" / "spike0099-sad.wav", 0.1)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()

    def outputs_ok(self, before_outside: set[str]) -> None:
        """Nothing new outside ``cache/`` and ``corpus/``; no temporary file in the cache."""
        assert tree(self.outside) == before_outside
        assert {p.name for p in self.base.iterdir()} <= {"corpus", "outside", "cache"}
        leftovers = [p for p in self.cache.rglob("*") if ".tmp" in p.name or p.name.endswith(".lock")]
        assert not leftovers, leftovers


def run_cli(*args: object):
    result = CliRunner().invoke(cli.featstore_app, [str(a) for a in args])
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert isinstance(result.exception, SystemExit), result.exception
        assert result.output.count("error:") == 1, result.output
    return result


# --------------------------------------------------------------------------- audio

def _wav_bytes(n_samples: int = 1600, sample_rate_hz: int = 16000, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    t = np.arange(n_samples) / sample_rate_hz
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sample_rate_hz,
             subtype=subtype, format="WAV")
    return buffer.getvalue()


def _flac_bytes() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(np.arange(4000) / 7.0)).astype(np.float32), 16000, format="FLAC")
    return buffer.getvalue()


GOOD_AUDIO = {".wav": _wav_bytes(), ".flac": _flac_bytes()}


@st.composite
def hostile_audio(draw) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".wav", ".flac"]))
    good = GOOD_AUDIO[suffix]
    kind = draw(st.sampled_from(["truncated", "mutated_header", "garbage", "header_only", "empty"]))
    if kind == "truncated":
        data = good[: draw(st.integers(0, len(good) - 1))]
    elif kind == "mutated_header":
        data = bytearray(good)
        for _ in range(draw(st.integers(1, 6))):
            data[draw(st.integers(0, 63))] = draw(st.integers(0, 255))
        data = bytes(data)
    elif kind == "garbage":
        data = draw(st.binary(min_size=1, max_size=512))
    elif kind == "header_only":
        data = good[:44] + draw(st.binary(max_size=64))
    else:
        data = b""
    return suffix, data


@budget(60)
@given(hostile_audio(), st.one_of(st.none(), st.floats(0, 0.5)), st.one_of(st.none(), st.floats(0, 0.5)))
def test_audio_headers_give_audio_error_or_audio(case, start_s, end_s):
    suffix, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"clip{suffix}"
        path.write_bytes(data)
        row = {"utt_id": "u", "path": str(path), "start": start_s, "end": end_s}
        bad = check_audio(pl.DataFrame([row], schema={"utt_id": pl.Utf8, "path": pl.Utf8, "start": pl.Float64,
                                                      "end": pl.Float64}), root=tmp, progress=False)
        assert bad.height <= 1 and not any(r.startswith("unexpected error") for r in bad["reason"])
        for call in (lambda: probe_duration(path), lambda: load_audio(path, start_s, end_s, root=tmp)):
            try:
                out = call()
            except AudioError as err:
                assert isinstance(err, CrosslingError)
                assert str(path) in str(err) and err.reason
                continue
            if isinstance(out, np.ndarray):
                assert out.dtype == np.float32 and out.ndim == 1 and out.shape[0] >= 400
                assert np.all(np.isfinite(out))
            else:
                duration_s, sample_rate_hz = out
                assert duration_s >= 0 and sample_rate_hz > 0


# --------------------------------------------------------------------------- table manifests

GOOD_PATHS = ["a.wav", "b.wav", "sub/c.wav", "bad.wav"]  # bad.wav: a truncated wav
ESCAPING = ["../outside/secret.wav", "../../x.wav", "sub/../../outside/secret.wav", "OUTSIDE_ABS",
            "link.wav", "linkdir/0001_001051.wav"]
ODD = ["", "   ", "a.wav\x00.txt", "missing.wav", "sub/../a.wav", "./b.wav", "é.wav", "sub//c.wav"]
ID_VALUES = ["", " ", "u1", "u1", "../x", "a/b", "\x01", ".hidden", "ok_2", "é", "x" * 300]


@st.composite
def hostile_table(draw) -> dict:
    """Good rows (the files that exist) plus one to three hostile rows, each of one class:
    escaping path, odd path, random text as path, bad label, empty/duplicate/unsafe id."""
    good = draw(st.lists(st.sampled_from(GOOD_PATHS), min_size=0, max_size=3, unique=True))
    paths, labels, ids = list(good), ["angry"] * len(good), [f"g{i}" for i in range(len(good))]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["escaping", "escaping", "odd", "text", "label", "id"]))
        path = {"escaping": st.sampled_from(ESCAPING), "odd": st.sampled_from(ODD),
                "text": st.text(max_size=12)}.get(kind, st.sampled_from(GOOD_PATHS))
        paths.append(draw(path))
        labels.append(draw(st.sampled_from(["", " ", "négation", "x"])) if kind == "label" else "sad")
        ids.append(draw(st.sampled_from(ID_VALUES) | st.text(max_size=6)) if kind == "id" else f"h{len(ids)}")
    order = draw(st.permutations(range(len(paths))))
    with_ids = draw(st.booleans())
    return {"paths": [paths[i] for i in order], "labels": [labels[i] for i in order],
            "ids": [ids[i] for i in order] if with_ids else None,
            "fmt": draw(st.sampled_from(["csv", "tsv", "jsonl"])), "check": draw(st.booleans()),
            "relative": draw(st.booleans()),
            "encoding": draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16"]))}


def _write_table(box: Sandbox, case: dict) -> Path:
    write_tone(box.root / "a.wav", 0.1)
    write_tone(box.root / "b.wav", 0.1)
    write_tone(box.root / "sub" / "c.wav", 0.1)
    write_tone(box.root / "é.wav", 0.1)
    (box.root / "bad.wav").write_bytes(GOOD_AUDIO[".wav"][:100])
    os.symlink(box.secret, box.root / "link.wav")
    os.symlink(box.outside / "dir", box.root / "linkdir")
    columns = ["path", "label"] + (["utt_id"] if case["ids"] is not None else [])
    rows = []
    for i, (p, label) in enumerate(zip(case["paths"], case["labels"], strict=True)):
        p = str(box.secret) if p == "OUTSIDE_ABS" else p
        row = {"path": p, "label": label}
        if case["ids"] is not None:
            row["utt_id"] = case["ids"][i]
        rows.append(row)
    table = box.root / f"list.{case['fmt']}"
    if case["fmt"] == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, delimiter="," if case["fmt"] == "csv" else "\t")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    table.write_bytes(text.encode(case["encoding"], errors="replace"))
    return table


@budget(40)
@given(hostile_table())
def test_table_manifest_prepare_cli(case):
    with Sandbox() as box:
        table = _write_table(box, case)
        before = tree(box.outside)
        given = table.relative_to(box.base) if case["relative"] else table  # --root relative to the cwd
        with watch_opens() as opened, contextlib.chdir(box.base):
            result = run_cli("prepare", "table", "--root", given, "--name", "fz", "--language", "tj",
                             "--cache-root", box.cache, *(["--check-audio"] if case["check"] else []))
        assert not opened_under(opened, box.outside), opened_under(opened, box.outside)
        box.outputs_ok(before)
        manifest = manifest_path("fz", box.cache)
        if result.exit_code == 2:
            assert table.name in squeeze(result.output), result.output
            assert not manifest.exists()  # a refused table leaves no manifest
            return
        frame = load_manifest(manifest)
        for path in frame["path"]:
            assert ".." not in Path(path).parts and Path(path).is_absolute()
            assert Path(path).resolve().is_relative_to(box.root)
        assert frame["utt_id"].n_unique() == frame.height and (frame["utt_id"].str.strip_chars() != "").all()
        bad = load_bad_files(manifest)
        escaping = [p for p in case["paths"] if p in ESCAPING]
        if escaping:  # refused rows are named in the bad-file table
            assert sum("outside the corpus root" in r for r in bad.values()) >= 1
        if case["check"]:  # the truncated wav is found by the audio check
            stored = dict(zip(frame["path"], frame["utt_id"], strict=True))
            truncated = stored.get(str(box.root / "bad.wav"))
            assert truncated is None or "truncated" in bad[truncated]


@budget(40)
@given(hostile_table())
def test_table_manifest_library(case):
    with Sandbox() as box:
        table = _write_table(box, case)
        given = table.relative_to(box.base) if case["relative"] else table
        with watch_opens() as opened, warnings.catch_warnings(), contextlib.chdir(box.base):
            warnings.simplefilter("ignore", CorpusWarning)
            try:
                frame = read_table(given, name="fz", language="tj")
            except CrosslingError as err:
                assert str(table) in str(err) or table.name in str(err)
                frame = None
        assert not opened_under(opened, box.outside)
        if frame is not None:
            assert all(Path(p).resolve().is_relative_to(box.root) for p in frame["path"])


@st.composite
def garbage_table(draw) -> tuple[str, bytes, int | None]:
    fmt = draw(st.sampled_from(["csv", "tsv", "jsonl"]))
    if fmt == "jsonl" and draw(st.booleans()):
        good = [json.dumps({"path": "a.wav", "label": "angry", "utt_id": f"u{i}"}) for i in range(draw(st.integers(0, 4)))]
        bad = draw(st.sampled_from(["{", "[1, 2]", "not json", '{"path": "a.wav", ', "42"]))
        at = draw(st.integers(0, len(good)))
        lines = good[:at] + [bad] + good[at:]
        return fmt, ("\n".join(lines) + "\n").encode(), at + 1
    return fmt, draw(st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8"))), None


@budget(40)
@given(garbage_table())
def test_garbage_tables(case):
    fmt, data, bad_line = case
    with Sandbox() as box:
        write_tone(box.root / "a.wav", 0.1)
        table = box.root / f"t.{fmt}"
        table.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CorpusWarning)
            try:
                read_table(table, name="g", language="tj")
            except CrosslingError as err:
                assert table.name in str(err)
                if bad_line is not None:
                    assert f"line {bad_line}" in str(err), str(err)
            else:
                assert bad_line is None


def test_latin1_table_is_read_and_its_encoding_named(tmp_path):
    write_tone(tmp_path / "é.wav", 0.1)
    (tmp_path / "t.csv").write_bytes("path,label\né.wav,négation\n".encode("latin-1"))
    with pytest.warns(CorpusWarning, match="read as cp1252"):
        frame = read_table(tmp_path / "t.csv", name="l", language="tj")
    assert frame["label"].to_list() == ["négation"] and frame["utt_id"].to_list() == ["é"]


def test_duplicate_and_empty_ids_are_refused_naming_lines(tmp_path):
    for name in ("a", "b", "c"):
        write_tone(tmp_path / f"{name}.wav", 0.1)
    (tmp_path / "t.csv").write_text("utt_id,path,label\nu1,a.wav,x\n,b.wav,x\nu1,c.wav,x\n")
    with pytest.raises(CrosslingError, match=r"t.csv line 3: empty utt_id.*'u1' on lines 2, 4"):
        read_table(tmp_path / "t.csv", name="d", language="tj")
    (tmp_path / "t.csv").write_text("path,label\na.wav,x\nb.wav,x\na.wav,y\n")
    with pytest.raises(CrosslingError, match=r"duplicate path.*'a.wav' on lines 2, 4"):
        read_table(tmp_path / "t.csv", name="d", language="tj")


def test_escaping_row_refused_by_default_and_admitted_on_request(tmp_path):
    write_tone(tmp_path / "outside" / "x.wav", 0.1)
    write_tone(tmp_path / "c" / "t" / "a.wav", 0.1)
    (tmp_path / "c" / "t" / "l.csv").write_text("path,label\na.wav,x\n../../outside/x.wav,y\n")
    with watch_opens() as opened:
        result = prepare_corpus(PrepareConfig("table", tmp_path / "c" / "t" / "l.csv", name="t",
                                              options={"language": "tj"}, cache_root=tmp_path / "k"),
                                progress=False)
    assert not opened_under(opened, tmp_path / "outside")
    assert result.manifest["utt_id"].to_list() == ["a"]
    assert result.refused["path"].to_list() == [str(tmp_path / "c" / "t" / "../../outside/x.wav")]
    bad = load_bad_files(result.manifest_path)
    assert list(bad) == ["x"] and "outside the corpus root" in bad["x"]
    assert bad_files_path(result.manifest_path).exists()
    admitted = prepare_corpus(PrepareConfig("table", tmp_path / "c" / "t" / "l.csv", name="t",
                                            options={"language": "tj"}, cache_root=tmp_path / "k",
                                            allow_outside_root=True), progress=False)
    assert sorted(admitted.manifest["path"]) == sorted([str(tmp_path / "c" / "t" / "a.wav"),
                                                        str(tmp_path / "outside" / "x.wav")])
    assert not bad_files_path(admitted.manifest_path).exists()  # stale table removed


# --------------------------------------------------------------------------- corpus trees

NAMES = st.text(alphabet="abcdefgABZ0123456789 _-().", min_size=1, max_size=16).filter(
    lambda s: not s.startswith(".") and s.strip() == s)
SCHEMES = {
    "esd": lambda utt: file_name_ok(utt, utt.split("_")[0]),
    "pavoque": lambda utt: _EXTRACTED_RE.match(utt) is not None,
    "iemocap": lambda utt: UTT_RE.match(utt) is not None,
    "zed": lambda utt: True,
}


def _build(reader: str, box: Sandbox, strays: list[str], link_file: bool, link_dir: bool) -> None:
    root, secret = box.root, box.secret
    if reader == "esd":
        write_tone(root / "0001" / "Angry" / "0001_000351.wav", 0.1)
        write_tone(root / "0001" / "Happy" / "train" / "0001_000701.wav", 0.1)
        for name in strays:
            write_tone(root / "0001" / "Angry" / f"{name}.wav", 0.1)
            write_tone(root / "0001" / "Happy" / "extras" / f"{name}.wav", 0.1)
        if link_file:
            os.symlink(secret, root / "0001" / "Angry" / "0001_000352.wav")
        if link_dir:
            os.symlink(box.outside / "dir", root / "0001" / "Sad")
    elif reader == "pavoque":
        write_tone(root / "spike0013-angry.wav", 0.1)
        for name in strays:
            write_tone(root / "x" / f"{name}.wav", 0.1)
            write_tone(root / f"{name}-happy.wav", 0.1)
        if link_file:
            os.symlink(secret, root / "spike0014-angry.wav")
        if link_dir:
            os.symlink(box.outside / "dir", root / "more")
    elif reader == "iemocap":
        session = root / "Session1"
        lines = ["[1.0 - 2.0]\tSes01F_impro01_F000\tang\t[2.0, 3.0, 3.0]"]
        write_tone(session / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F000.wav", 0.1)
        for name in strays:
            lines.append(f"[1.0 - 2.0]\t{name.replace(' ', '_')}_F001\tsad\t[2.0, 3.0, 3.0]")
        lines.append("[1.0 - 2.0]\tSes01F_impro01/../../../../outside/secret_F000\tsad\t[2.0, 3.0, 3.0]")
        if link_file:
            lines.append("[1.0 - 2.0]\tSes01F_impro01_M001\thap\t[2.0, 3.0, 3.0]")
            target = session / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_M001.wav"
            os.symlink(secret, target)
        if link_dir:
            lines.append("[1.0 - 2.0]\tSes01F_impro02_M001\thap\t[2.0, 3.0, 3.0]")
            os.symlink(box.outside / "dir", session / "sentences" / "wav" / "Ses01F_impro02")
            os.link(box.secret, box.outside / "dir" / "Ses01F_impro02_M001.wav")
        (session / "dialog" / "EmoEvaluation").mkdir(parents=True)
        (session / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt").write_text("\n".join(lines) + "\n")
    else:
        write_tone(root / "wav" / "u1.wav", 0.1)
        event = [{"emo": "angry", "start": 0.0, "end": 0.05}]
        data = {"u1": {"wav": "datafolder/wav/u1.wav", "duration": 0.1, "emotion": event}}
        data["up"] = {"wav": "datafolder/../outside/secret.wav", "duration": 0.1, "emotion": event}
        data["abs"] = {"wav": str(secret), "duration": 0.1, "emotion": event}
        for i, name in enumerate(strays):
            data[f"s{i}"] = {"wav": f"datafolder/{name}/../../outside/secret.wav", "emotion": event}
        if link_file:
            os.symlink(secret, root / "wav" / "u2.wav")
            data["u2"] = {"wav": "datafolder/wav/u2.wav", "duration": 0.1, "emotion": event}
        (root / "ZED.json").write_text(json.dumps(data))


@budget(12)
@given(st.sampled_from(["esd", "pavoque", "iemocap", "zed"]), st.lists(NAMES, max_size=3, unique=True),
       st.booleans(), st.booleans())
def test_corpus_trees_with_strays_and_outside_links(reader, strays, link_file, link_dir):
    with Sandbox() as box:
        _build(reader, box, strays, link_file, link_dir)
        before = tree(box.outside)
        with watch_opens() as opened:
            result = prepare_corpus(PrepareConfig(reader, box.root, cache_root=box.cache), progress=False)
        assert not opened_under(opened, box.outside), opened_under(opened, box.outside)
        box.outputs_ok(before)
        frame = result.manifest
        assert all(SCHEMES[reader](u) for u in frame["utt_id"]), frame["utt_id"].to_list()
        for path in frame["path"]:
            assert Path(path).resolve().is_relative_to(box.root) and ".." not in Path(path).parts
        refused = set(result.refused["utt_id"]) if result.refused is not None else set()
        if link_file:
            expected = {"esd": "0001_000352", "pavoque": "spike0014-angry", "iemocap": "Ses01F_impro01_M001",
                        "zed": "u2"}[reader]
            assert expected in refused and expected in load_bad_files(result.manifest_path)
        if reader == "zed":
            assert {"up", "abs"} <= refused


def test_outside_links_admitted_when_allowed(tmp_path):
    box = Sandbox()
    with box:
        _build("esd", box, [], link_file=True, link_dir=True)
        result = prepare_corpus(PrepareConfig("esd", box.root, cache_root=box.cache, allow_outside_root=True),
                                progress=False)
        assert {"0001_000352", "0001_001051"} <= set(result.manifest["utt_id"])
        assert result.refused.is_empty()


def test_readers_all_take_the_outside_option():
    for spec in READERS.values():
        assert "allow_outside_root" in spec.read.__code__.co_varnames


# --------------------------------------------------------------------------- split import

@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("splits")
    for number in range(1, 9):
        write_tone(base / "esd" / "0001" / "Angry" / f"0001_{350 + number:06d}.wav", 0.05)
    config = PrepareConfig("esd", base / "esd", cache_root=base / "cache")
    prepare_corpus(config, progress=False)
    return base


@budget(15)
@given(st.lists(st.from_regex(r"[a-z]{1,6}[0-9]{1,4}-[a-z]{3,6}", fullmatch=True), min_size=1, max_size=400,
                unique=True),
       st.booleans(), st.integers(1, 2))
def test_split_import_without_overlap_is_summarised(prepared, names, allow_missing, n_folds):
    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "SPLIT"
        for part in ("train", "eval", "test"):
            (split / part).mkdir(parents=True)
            for fold in range(n_folds):
                rows = "".join(f"{name}.wav,Angry\n" for name in names)
                (split / part / f"metadata_fold{fold}.csv").write_text("file,answer\n" + rows)
        args = ["splits", "esd", "--import", split, "--cache-root", prepared / "cache"]
        result = run_cli(*args, *(["--allow-missing"] if allow_missing else []))
        assert result.exit_code == 2
        out = squeeze(result.output)
        assert "noneofthe" in out and str(len(names)) in out and "SPLIT" in out
        assert len(result.output) < 2000  # counts and a few names, never the whole list
        assert not (prepared / "cache" / "splits").exists() or not any((prepared / "cache" / "splits").iterdir())


def test_split_import_many_missing_is_bounded(prepared, tmp_path):
    split = tmp_path / "S"
    names = ["0001_000351"] + [f"0009_{n:06d}" for n in range(1, 3000)]
    for part in ("train", "eval", "test"):
        (split / part).mkdir(parents=True)
        (split / part / "metadata_fold0.csv").write_text("file,answer\n" + "".join(f"{n}.wav,Angry\n" for n in names))
    result = run_cli("splits", "esd", "--import", split, "--cache-root", prepared / "cache")
    out = squeeze(result.output)
    assert result.exit_code == 2 and "2999ofthe3000" in out
    assert "and2979more" in out and len(result.output) < 4000
    assert "idslike0001_000351" in out  # where to look: what the corpus does hold
