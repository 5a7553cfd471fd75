"""Any other corpus (the paper's Tianjin dialect corpus among them) as a plain table.

A CSV, TSV or JSONL file with at least the columns ``path`` and ``label``; optional
``utt_id``, ``speaker``, ``language``, ``start``, ``end`` (seconds in ``path``),
``duration`` (seconds), ``gender``, ``text``, ``session``, ``mode``; other columns are
kept as text extras. Relative paths are relative to the table's folder. A label map
(``negation=angry,expectation=happy``) turns the corpus's labels into the study's
emotions; an unmapped label keeps its own lower-case name (TJD's ``question``).

The table is read through :func:`featstore.io.read_table`: utf-8, utf-16 (BOM), cp1252
and latin-1 are tried in turn (a non-UTF-8 table is read with a warning naming the
encoding) and a bad JSON line is named by its line number. Empty paths, labels or ids,
duplicate ids and the same file listed twice are refused, naming every line. A path that
leaves the table's folder (``../x.wav``, an absolute path elsewhere, a symbolic link
out) is refused without being opened unless ``allow_outside_root``. Stored paths are
absolute with no ``..``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import polars as pl

from featstore.corpora.base import (
    CorpusFormatError,
    CorpusNotFoundError,
    Prober,
    RootGuard,
    flag_unsafe_ids,
    parse_label_map,
    summarize,
    to_manifest,
    warn,
)
from featstore.io import TableError, detect_encoding
from featstore.io import read_table as read_any_table
from featstore.manifest import MANIFEST_SCHEMA

SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".jsonl": None, ".ndjson": None}
_HANDLED = ("path", "label", "utt_id", "speaker", "language", "start", "end", "duration", "session")
"""Columns the reader interprets; any other column is kept as a text extra."""


def find_table(root: Path) -> Path:
    """``root`` if it is a table file, else the single table file inside the folder."""
    if root.is_file():
        if root.suffix.lower() not in SUFFIXES:
            raise CorpusFormatError(f"{root}: not a table manifest; use one of {', '.join(SUFFIXES)}")
        return root
    if not root.exists():
        raise CorpusNotFoundError(f"{root}: no such file or folder; give --root the CSV/TSV/JSONL table manifest")
    found = sorted(p for p in root.iterdir() if p.suffix.lower() in SUFFIXES) if root.is_dir() else []
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise CorpusNotFoundError(
            f"{what} table manifest(s) in {root}: give --root the CSV/TSV/JSONL file itself, with "
            f"columns path and label (optional utt_id, speaker, language, start, end, duration); "
            f"paths relative to the file's folder"
        )
    return found[0]


def read_table_file(path: Path) -> pl.DataFrame:
    """The table as all-text columns with lower-case names (through
    :func:`featstore.io.read_table`: utf-8, utf-16 with BOM, cp1252 and latin-1 are
    tried in turn; a table read in another encoding than utf-8 is reported in a warning)."""
    try:
        frame = read_any_table(path, what="table manifest")
        encoding = None if path.suffix.lower() == ".parquet" else detect_encoding(path)
    except TableError as err:
        raise CorpusFormatError(str(err)) from err
    except OSError as err:
        raise CorpusFormatError(f"{path}: cannot read the table manifest ({err})") from err
    if encoding and encoding not in ("utf-8", "utf-8-sig"):
        warn(f"{path}: not UTF-8; read as {encoding} (check the accented names and labels)")
    names = [c.strip().lower() for c in frame.columns]
    doubled = sorted({c for c in names if names.count(c) > 1})
    if doubled:
        raise CorpusFormatError(f"{path}: column(s) {doubled} appear more than once (names are "
                                f"matched without case); found {frame.columns}")
    frame = frame.rename(dict(zip(frame.columns, names, strict=True)))
    missing = [c for c in ("path", "label") if c not in frame.columns]
    if missing:
        raise CorpusFormatError(f"{path}: missing column(s) {missing}; found {frame.columns}")
    return frame.with_columns(pl.all().cast(pl.Utf8))


def _float(value: str | None, where: str, column: str) -> float | None:
    if value is None or not str(value).strip():
        return None
    try:
        number = float(value)
    except ValueError as err:
        raise CorpusFormatError(f"{where}: {column} {value!r} is not a number of seconds") from err
    if not math.isfinite(number) or number < 0:
        raise CorpusFormatError(f"{where}: {column} {value!r} is not a finite, non-negative number of seconds")
    return number


def _line_numbers(path: Path, frame: pl.DataFrame) -> list[int]:
    """Line of the file each row comes from (1-based): JSON lines skip blank lines; CSV/TSV
    rows start at line 2 (header on line 1; a quoted field spanning lines shifts this)."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        text = path.read_bytes().decode(detect_encoding(path))
        numbers = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if len(numbers) == frame.height:
            return numbers
    return list(range(2, frame.height + 2))


def _lines(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10]) + (f" ... (+{len(numbers) - 10} more)" if len(numbers) > 10 else "")
    return ("line " if len(numbers) == 1 else "lines ") + shown


def check_rows(source: Path, frame: pl.DataFrame, numbers: list[int]) -> None:
    """Refuse empty paths/labels, empty or duplicate ids and paths listed twice,
    in one :class:`CorpusFormatError` naming the file and every offending line."""
    problems = []
    empty = [n for n, p, lab in zip(numbers, frame["path"], frame["label"], strict=True)
             if not (p or "").strip() or not (lab or "").strip()]
    if empty:
        problems.append(f"{_lines(empty)}: empty path or label")
    if "utt_id" in frame.columns:
        blank = [n for n, u in zip(numbers, frame["utt_id"], strict=True) if not (u or "").strip()]
        if blank:
            problems.append(f"{_lines(blank)}: empty utt_id (fill it in or drop the utt_id column "
                            f"to derive ids from the file names)")
        keys, what = frame["utt_id"].to_list(), "utt_id"
    else:  # the same file written two ways (b.wav, ./b.wav, sub//b.wav) counts as one
        keys, what = [os.path.normpath(p.strip()) if p and p.strip() else p for p in frame["path"]], "path"
    firsts: dict[str, list[int]] = {}
    for n, key in zip(numbers, keys, strict=True):
        if key is not None and str(key).strip():
            firsts.setdefault(str(key).strip(), []).append(n)
    doubled = {k: v for k, v in firsts.items() if len(v) > 1}
    if doubled:
        listed = [f"{k!r} on lines {', '.join(map(str, v[:5]))}" for k, v in list(doubled.items())]
        problems.append(f"duplicate {what}(s), each utterance must appear once: {summarize(listed)}")
    if problems:
        raise CorpusFormatError(f"{source} " + "; ".join(problems))


def _int(value: str | None, where: str, column: str) -> int | None:
    if value is None or not str(value).strip():
        return None
    try:
        return int(value)
    except ValueError as err:
        raise CorpusFormatError(f"{where}: {column} {value!r} is not a whole number") from err


def read_table(root: Path, name: str = "table", language: str | None = None,
               label_map: str | dict[str, str] | None = None,
               allow_outside_root: bool = False) -> pl.DataFrame:
    """Manifest of a corpus given as a CSV/TSV/JSONL table.

    Parameters
    ----------
    root : Path
        The table file (or a folder holding exactly one).
    name : str
        Corpus name written to the ``corpus`` column.
    language : str, optional
        Language code for every row; overrides a ``language`` column and is required
        when there is none.
    label_map : str or dict, optional
        ``"negation=angry,expectation=happy"``: original label -> emotion
        (case-insensitive); unmapped labels keep their own lower-case name.
    allow_outside_root : bool
        Admit paths that leave the table's folder (``../x.wav``, absolute paths
        elsewhere, symbolic links out). By default such a row is refused without the
        file being opened and reported in an
        :class:`~featstore.corpora.base.OutsideRootWarning` (``featstore prepare`` lists
        it in the bad-file table).

    Returns
    -------
    pl.DataFrame
        Manifest; rows whose audio file is missing are reported and left out. Stored
        paths are absolute with no ``..``.

    Raises
    ------
    CorpusFormatError
        Unreadable table (naming the file, and the line for JSON lines), missing
        ``path``/``label`` columns, empty paths, labels or ids, duplicate ids or paths
        (naming every line), bad numbers.
    """
    source = find_table(Path(root))
    folder = source.parent
    mapping = parse_label_map(label_map)
    frame = read_table_file(source)
    if language is None and "language" not in frame.columns:
        raise CorpusFormatError(f"{source}: no language column; pass the language (--language, e.g. tj)")
    numbers = _line_numbers(source, frame)
    check_rows(source, frame, numbers)
    stems = [Path(p.strip()).stem for p in frame["path"].to_list()]
    use_stems = len(set(stems)) == len(stems)
    guard = RootGuard(folder, allow_outside_root)
    probe = Prober()
    rows: list[dict] = []
    missing: list[str] = []
    lines_of: dict[str, list[int]] = {}
    for number, record in zip(numbers, frame.iter_rows(named=True), strict=True):
        where = f"{source.name} line {number}"
        rel = Path(record["path"].strip())
        utt_id = (record.get("utt_id") or "").strip() or (
            rel.stem if use_stems else rel.with_suffix("").as_posix())
        lines_of.setdefault(utt_id, []).append(number)
        if len(lines_of[utt_id]) > 1:
            raise CorpusFormatError(f"{source} lines {', '.join(map(str, lines_of[utt_id]))}: the same "
                                    f"utt_id {utt_id!r} (given or derived from the path); each utterance once")
        path = guard.admit(rel if rel.is_absolute() else folder / rel, utt_id)
        if path is None:  # leaves the root: refused, never opened
            continue
        if not path.is_file():
            missing.append(f"{utt_id} ({record['path']})")
            continue
        start_s, end_s = _float(record.get("start"), where, "start"), _float(record.get("end"), where, "end")
        if start_s is not None and end_s is not None and end_s <= start_s:
            raise CorpusFormatError(f"{where}: end {end_s} s is not after start {start_s} s")
        duration_s, sample_rate_hz = probe(path)
        given = _float(record.get("duration"), where, "duration")
        if given is not None:
            duration_s = given
        elif start_s is not None or end_s is not None:
            duration_s = max((end_s if end_s is not None else duration_s) - (start_s or 0.0), 0.0)
        label = str(record["label"]).strip()
        extras = {k: v for k, v in record.items() if k not in _HANDLED}
        session = record.get("session")
        rows.append({
            **extras,
            "utt_id": str(utt_id), "corpus": name,
            "language": language or (record.get("language") or "").strip(),
            "speaker": (record.get("speaker") or "").strip() or "unknown",
            "emotion": mapping.get(label.lower(), label.lower()), "label": label,
            "path": str(path), "start": start_s, "end": end_s,
            "duration": duration_s, "sample_rate": sample_rate_hz,
            "session": _int(session, where, "session"),
        })
    probe.report(name)
    guard.report(name)
    flag_unsafe_ids([r["utt_id"] for r in rows], name, source.name)
    if missing:
        warn(f"{name}: {len(missing)} row(s) of {source.name} name a missing audio file, left out: "
             f"{summarize(missing)}")
    blank = [r["utt_id"] for r in rows if not r["language"]]
    if blank:
        raise CorpusFormatError(f"{source}: empty language for {summarize(blank)}; pass --language")
    extras = {c: pl.Utf8 for c in frame.columns if c not in _HANDLED and c not in MANIFEST_SCHEMA}
    refused = f" ({len(guard.refused)} refused: their paths leave {folder})" if guard.refused else ""
    return to_manifest(rows, extras, f"{source}: no row with an existing audio file inside {folder}{refused}")
