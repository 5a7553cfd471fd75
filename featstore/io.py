"""Small file I/O shared by every package: atomic writes, checked table reads, and the
``crossling`` metadata of parquet files.

- :func:`atomic_write` (and the ``_text``/``_json``/``parquet`` forms): the file appears
  whole or not at all: written under a temporary name in the same folder (same suffix,
  so format inference by suffix still works) and renamed into place. A killed writer
  leaves at most a hidden ``.<name>.tmp-<pid><suffix>`` file, never a half-written result.
- :func:`read_table`: CSV, TSV, JSON lines or parquet into a polars DataFrame of strings
  (CSV/TSV/JSONL) with the required columns checked; every problem is a
  :class:`TableError` naming the file (and the line, for JSON lines).
- :func:`parquet_metadata` / :func:`write_parquet`: our provenance lives as JSON under
  the ``crossling`` key of a parquet file's key-value metadata.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from featstore.errors import CrosslingError, did_you_mean

META_KEY = "crossling"
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1")


class TableError(CrosslingError, ValueError):
    """A table that cannot be read or lacks what is needed; the message names the file."""


def temp_path(path: Path) -> Path:
    """The temporary name :func:`atomic_write` writes ``path`` under."""
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` and rename ``tmp`` to ``path``; on any error ``tmp`` is removed
    and ``path`` keeps its old content (if any). Parent folders are made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding=encoding))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (non-JSON values via ``str``) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=str, sort_keys=False) + "\n")


def write_parquet(frame: pl.DataFrame, path: str | Path, metadata: Mapping[str, Any] | None = None,
                  extra: Mapping[str, str] | None = None) -> Path:
    """Write ``frame`` to ``path`` atomically; ``metadata`` is stored as JSON under the
    ``crossling`` key (read back by :func:`parquet_metadata`), ``extra`` as plain
    key-value strings."""
    kv = {str(k): str(v) for k, v in (extra or {}).items()}
    if metadata is not None:
        kv[META_KEY] = json.dumps(dict(metadata), default=str, sort_keys=True)
    return atomic_write(path, lambda tmp: frame.write_parquet(tmp, metadata=kv or None))


def parquet_key_values(path: str | Path) -> dict[str, str]:
    """Every key-value metadata entry of a parquet file (decoded), or a :class:`TableError`."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    try:
        # file-level key-value metadata: where polars writes it (read_schema sees only the
        # arrow schema's, which newer polars leaves empty)
        raw = pq.read_metadata(path).metadata or {}
    except Exception as err:  # pyarrow raises several types for a non-parquet file
        raise TableError(f"{path}: not a readable parquet file ({err})") from err
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in raw.items()
            if k != b"ARROW:schema"}


def parquet_metadata(path: str | Path) -> dict[str, Any]:
    """The ``crossling`` JSON metadata of a parquet file (``{}`` when it has none)."""
    text = parquet_key_values(path).get(META_KEY)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise TableError(f"{path}: its {META_KEY!r} metadata is not JSON ({err})") from err
    if not isinstance(value, dict):
        raise TableError(f"{path}: its {META_KEY!r} metadata is not a JSON object")
    return value


def _decode(path: Path, data: bytes, encoding: str | None) -> tuple[str, str]:
    if encoding:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as err:
            raise TableError(f"{path}: not valid {encoding} text ({err})") from err
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    for enc in ENCODINGS:
        if enc == "utf-16":
            continue
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise TableError(f"{path}: not text in any of {', '.join(ENCODINGS)}")  # pragma: no cover (latin-1 decodes all)


def _separator(path: Path, first_line: str) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"
    if path.suffix.lower() == ".csv":
        return ","
    return "\t" if first_line.count("\t") > first_line.count(",") else ","


def read_table(path: str | Path, required: Iterable[str] = (), what: str = "table",
               encoding: str | None = None) -> pl.DataFrame:
    """Read a CSV/TSV (every column as strings), JSON lines or parquet file and check that
    it has the ``required`` columns.

    Text encodings are tried in the order of ``ENCODINGS`` unless ``encoding`` is given;
    :func:`detect_encoding` says which one a file is read with.
    Raises :class:`TableError` naming ``path`` (and the JSON line) for every problem.
    """
    path = Path(path)
    if not path.exists():
        raise TableError(f"{path}: no such {what}")
    if not path.is_file():
        raise TableError(f"{path}: the {what} is not a file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            frame = pl.read_parquet(path)
        except Exception as err:
            raise TableError(f"{path}: not a readable parquet {what} ({err})") from err
    else:
        text, _ = _decode(path, path.read_bytes(), encoding)
        if suffix in {".jsonl", ".ndjson"}:
            frame = _read_jsonl(path, text, what)
        else:
            frame = _read_delimited(path, text, what)
    check_columns(frame, required, path, what)
    return frame


def _read_delimited(path: Path, text: str, what: str) -> pl.DataFrame:
    import io

    if not text.strip():
        raise TableError(f"{path}: the {what} is empty")
    sep = _separator(path, text.splitlines()[0])
    try:
        frame = pl.read_csv(io.StringIO(text), separator=sep, infer_schema=False)
    except Exception as err:  # polars' ComputeError/NoDataError/... for malformed text
        raise TableError(f"{path}: not a readable {'TSV' if sep == chr(9) else 'CSV'} {what} ({err})") from err
    return frame.rename({c: c.strip() for c in frame.columns})


def _read_jsonl(path: Path, text: str, what: str) -> pl.DataFrame:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise TableError(f"{path}: line {number} is not JSON ({err.msg})") from err
        if not isinstance(row, dict):
            raise TableError(f"{path}: line {number} is not a JSON object")
        rows.append({str(k): (None if v is None else str(v)) for k, v in row.items()})
    if not rows:
        raise TableError(f"{path}: the {what} is empty")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return pl.DataFrame({c: [row.get(c) for row in rows] for c in columns}, schema={c: pl.String for c in columns})


def check_columns(frame: pl.DataFrame, required: Iterable[str], path: str | Path, what: str = "table") -> None:
    """Raise :class:`TableError` naming ``path`` and each missing column (with the
    closest existing one) when ``frame`` lacks any of ``required``."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        hints = "; ".join(f"{c!r}{did_you_mean(c, frame.columns)}" for c in missing)
        raise TableError(f"{path}: the {what} lacks column(s) {hints}; it has: {', '.join(frame.columns) or 'none'}")


def detect_encoding(path: str | Path) -> str:
    """The encoding :func:`read_table` would read ``path`` with."""
    path = Path(path)
    return _decode(path, path.read_bytes(), None)[1]
