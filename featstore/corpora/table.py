"""Any other corpus (the paper's Tianjin dialect corpus among them) as a plain table.

A CSV, TSV or JSONL file with at least the columns ``path`` and ``label``; optional
``utt_id``, ``speaker``, ``language``, ``start``, ``end`` (seconds in ``path``),
``duration`` (seconds), ``gender``, ``text``, ``session``, ``mode``; other columns are
kept as text extras. Relative paths are relative to the table's folder. A label map
(``negation=angry,expectation=happy``) turns the corpus's labels into the study's
emotions; an unmapped label keeps its own lower-case name (TJD's ``question``).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from featstore.corpora.base import (
    CorpusFormatError,
    CorpusNotFoundError,
    Prober,
    parse_label_map,
    summarize,
    to_manifest,
    warn,
)

SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".jsonl": None, ".ndjson": None}
_HANDLED = ("path", "label", "utt_id", "speaker", "language", "start", "end", "duration", "session")
"""Columns the reader interprets; any other column is kept as a text extra."""


def find_table(root: Path) -> Path:
    """``root`` if it is a table file, else the single table file inside the folder."""
    if root.is_file():
        if root.suffix.lower() not in SUFFIXES:
            raise CorpusFormatError(f"{root}: not a table manifest; use one of {', '.join(SUFFIXES)}")
        return root
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
    """The table as all-text columns with lower-case names."""
    separator = SUFFIXES[path.suffix.lower()]
    try:
        if separator is None:
            frame = pl.read_ndjson(path)
            frame = frame.with_columns(pl.all().cast(pl.Utf8))
        else:
            frame = pl.read_csv(path, separator=separator, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise CorpusFormatError(f"{path}: cannot read as {path.suffix} table: {err}") from err
    frame = frame.rename({c: c.strip().lower() for c in frame.columns})
    missing = [c for c in ("path", "label") if c not in frame.columns]
    if missing:
        raise CorpusFormatError(f"{path}: missing column(s) {missing}; found {frame.columns}")
    return frame


def _float(value: str | None, where: str, column: str) -> float | None:
    if value is None or not str(value).strip():
        return None
    try:
        return float(value)
    except ValueError as err:
        raise CorpusFormatError(f"{where}: {column} {value!r} is not a number of seconds") from err


def _int(value: str | None, where: str, column: str) -> int | None:
    if value is None or not str(value).strip():
        return None
    try:
        return int(value)
    except ValueError as err:
        raise CorpusFormatError(f"{where}: {column} {value!r} is not a whole number") from err


def read_table(root: Path, name: str = "table", language: str | None = None,
               label_map: str | dict[str, str] | None = None) -> pl.DataFrame:
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

    Returns
    -------
    pl.DataFrame
        Manifest; rows whose audio file is missing are reported and left out.
    """
    source = find_table(Path(root))
    folder = source.parent
    mapping = parse_label_map(label_map)
    frame = read_table_file(source)
    if language is None and "language" not in frame.columns:
        raise CorpusFormatError(f"{source}: no language column; pass the language (--language, e.g. tj)")
    stems = [Path(p).stem for p in frame["path"].to_list() if p]  # empty paths: an error below
    use_stems = len(set(stems)) == len(stems)
    probe = Prober()
    rows: list[dict] = []
    missing: list[str] = []
    for number, record in enumerate(frame.iter_rows(named=True), start=2):
        where = f"{source.name} line {number}"
        if not record["path"] or not record["label"]:
            raise CorpusFormatError(f"{where}: empty path or label")
        rel = Path(record["path"])
        path = rel if rel.is_absolute() else folder / rel
        utt_id = record.get("utt_id") or (path.stem if use_stems else rel.with_suffix("").as_posix())
        if not path.is_file():
            missing.append(f"{utt_id} ({record['path']})")
            continue
        start_s, end_s = _float(record.get("start"), where, "start"), _float(record.get("end"), where, "end")
        duration_s, sample_rate_hz = probe(path)
        given = _float(record.get("duration"), where, "duration")
        if given is not None:
            duration_s = given
        elif start_s is not None or end_s is not None:
            duration_s = (end_s if end_s is not None else duration_s) - (start_s or 0.0)
        label = str(record["label"])
        extras = {k: v for k, v in record.items() if k not in _HANDLED}
        session = record.get("session")
        rows.append({
            **extras,
            "utt_id": str(utt_id), "corpus": name,
            "language": language or record.get("language") or "",
            "speaker": record.get("speaker") or "unknown",
            "emotion": mapping.get(label.strip().lower(), label.strip().lower()), "label": label,
            "path": str(path.absolute()), "start": start_s, "end": end_s,
            "duration": duration_s, "sample_rate": sample_rate_hz,
            "session": _int(session, where, "session"),
        })
    probe.report(name)
    if missing:
        warn(f"{name}: {len(missing)} row(s) of {source.name} name a missing audio file, left out: "
             f"{summarize(missing)}")
    blank = [r["utt_id"] for r in rows if not r["language"]]
    if blank:
        raise CorpusFormatError(f"{source}: empty language for {summarize(blank)}; pass --language")
    extras = {c: pl.Utf8 for c in frame.columns if c not in _HANDLED}
    return to_manifest(rows, extras, f"{source}: no row with an existing audio file")
