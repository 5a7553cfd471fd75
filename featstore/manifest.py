"""The manifest: one row per utterance of a prepared corpus.

A manifest is a :class:`polars.DataFrame` with the columns of :data:`MANIFEST_SCHEMA`
(extra columns are allowed and kept). It is saved as parquet with its fingerprint and
corpus root in the file's key-value metadata. Manifests are never mutated in place:
filters and selections return new frames.

Columns
-------
utt_id : str
    Stable id, unique within the corpus (e.g. ``0003_000351`` for ESD).
corpus : str
    Corpus name as prepared (``esd``, ``pavoque``, ``iemocap``, ``zed``, ``demo`` ...).
language : str
    Paper language code, lower case: ``cn`` (Mandarin), ``de``, ``en``, ``tj`` (Tianjin
    dialect); other corpora use their own code (the demo's Cantonese is ``yue``).
speaker : str
    Speaker id, unique within the corpus.
emotion : str
    Canonical label (``angry``, ``happy``, ``neutral``, ``sad``) or, for any other
    label, the label's own lower-case name (``surprise``, ``poker``, ``frustrated``...).
label : str
    The corpus's original label, untouched.
path : str
    Absolute path of the audio file.
start, end : float or null
    Seconds inside ``path`` when the utterance is a stretch of a longer file.
duration : float
    Seconds of audio of the utterance.
sample_rate : int
    Sample rate of the file in Hz (before resampling).
session, mode, gender, text, events : optional extras
    IEMOCAP session number, ``improvised``/``scripted``, ``F``/``M``, transcript, and for
    ZED a JSON list of ``{"emotion", "start", "end"}`` events in seconds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from featstore.errors import CrosslingError
from featstore.io import write_parquet

CANONICAL_EMOTIONS: tuple[str, ...] = ("angry", "happy", "neutral", "sad")
"""The 4-class label set of the study, in the paper's order (A H N S)."""

MANIFEST_SCHEMA: dict[str, pl.DataType] = {
    "utt_id": pl.Utf8,
    "corpus": pl.Utf8,
    "language": pl.Utf8,
    "speaker": pl.Utf8,
    "emotion": pl.Utf8,
    "label": pl.Utf8,
    "path": pl.Utf8,
    "start": pl.Float64,
    "end": pl.Float64,
    "duration": pl.Float64,
    "sample_rate": pl.Int64,
    "session": pl.Int64,
    "mode": pl.Utf8,
    "gender": pl.Utf8,
    "text": pl.Utf8,
    "events": pl.Utf8,
}
REQUIRED_COLUMNS: tuple[str, ...] = (
    "utt_id", "corpus", "language", "speaker", "emotion", "label", "path", "duration", "sample_rate",
)
# What the fingerprint covers: the content of the study, not where the files happen to lie,
# so moving a corpus to another disk keeps every cached result valid.
FINGERPRINT_COLUMNS: tuple[str, ...] = (
    "utt_id", "corpus", "language", "speaker", "emotion", "label", "start", "end", "duration",
    "sample_rate", "session", "mode", "events",
)


class ManifestError(CrosslingError, ValueError):
    """A manifest that does not follow :data:`MANIFEST_SCHEMA`."""


class ManifestNotFoundError(CrosslingError, FileNotFoundError):
    """No prepared manifest where one was expected."""


def make_manifest(rows: list[dict]) -> pl.DataFrame:
    """Build a validated manifest from row dicts; missing optional columns become null."""
    full = [{name: row.get(name) for name in MANIFEST_SCHEMA} | row for row in rows]
    frame = pl.DataFrame(full, schema_overrides=MANIFEST_SCHEMA, infer_schema_length=None)
    if frame.is_empty():
        frame = pl.DataFrame(schema=MANIFEST_SCHEMA)
    return validate_manifest(frame)


def validate_manifest(frame: pl.DataFrame, source: str | Path = "manifest") -> pl.DataFrame:
    """Check columns, types and unique ids; return the frame with schema columns first."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ManifestError(f"{source}: missing column(s) {missing}")
    for name, dtype in MANIFEST_SCHEMA.items():
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=dtype).alias(name))
        elif frame.schema[name] != dtype:
            try:
                frame = frame.with_columns(pl.col(name).cast(dtype))
            except pl.exceptions.PolarsError as err:
                raise ManifestError(f"{source}: column {name!r} is not {dtype}: {err}") from err
    dup = frame.filter(pl.col("utt_id").is_duplicated())["utt_id"].unique().to_list()
    if dup:
        raise ManifestError(f"{source}: duplicate utt_id(s) {sorted(dup)[:5]}")
    nulls = [c for c in REQUIRED_COLUMNS if frame[c].null_count()]
    if nulls:
        raise ManifestError(f"{source}: null values in required column(s) {nulls}")
    if (frame["utt_id"].str.strip_chars() == "").any():
        raise ManifestError(f"{source}: empty utt_id(s); every utterance needs an id")
    extra = [c for c in frame.columns if c not in MANIFEST_SCHEMA]
    return frame.select([*MANIFEST_SCHEMA, *extra])


def manifest_fingerprint(frame: pl.DataFrame) -> str:
    """Content fingerprint (sha256 hex, 16 chars) of a manifest, independent of row order
    and of where the audio lies on disk."""
    cols = [c for c in FINGERPRINT_COLUMNS if c in frame.columns]
    canon = frame.select(cols).sort("utt_id").write_csv()
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


def save_manifest(frame: pl.DataFrame, path: str | Path, root: str | Path | None = None) -> Path:
    """Write ``frame`` to ``path`` (parquet) atomically, recording fingerprint and corpus root."""
    path = Path(path)
    frame = validate_manifest(frame, path)
    meta = {"fingerprint": manifest_fingerprint(frame), "root": str(root) if root else ""}
    return write_parquet(frame, path, metadata=meta)


def load_manifest(path: str | Path) -> pl.DataFrame:
    """Read a manifest written by :func:`save_manifest` (or any parquet with its columns)."""
    path = Path(path)
    if not path.exists():
        raise ManifestNotFoundError(
            f"{path}: no prepared manifest here; run `featstore prepare CORPUS --root DIR` first"
        )
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise ManifestError(f"{path}: not a readable parquet manifest ({err}); run `featstore prepare` "
                            f"again") from err
    return validate_manifest(frame, path)


def four_class(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows whose emotion is one of :data:`CANONICAL_EMOTIONS` (a new frame)."""
    return frame.filter(pl.col("emotion").is_in(list(CANONICAL_EMOTIONS)))
