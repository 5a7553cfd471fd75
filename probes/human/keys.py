"""Answer keys: the one written by ``probes human build``, or one made by hand.

A key has one row per stimulus: ``stimulus`` (the name the answers use), ``corpus``,
``utt_id``, ``language`` and ``emotion`` (the true label). A hand-made key for
webMUSHRA usually has only the stimulus (often its audio file), its language and its
emotion; what can be derived is derived, and every assumption is returned as a note:

- ``utt_id``: the stimulus's file stem (``audio/zh_angry_01.wav`` -> ``zh_angry_01``);
- ``corpus``: the paper's corpus of the language (:data:`PAPER_CORPORA`), else ``unknown``;
- a few column spellings (``label``/``true`` for ``emotion``, ``lang`` for ``language``,
  ``file``/``stimuli`` for ``stimulus``) and label spellings (``Anger``, ``A``...).

Everything else (a missing stimulus/language/emotion column, empty cells, a label that is
not an emotion, a stimulus listed twice) is a :class:`KeyError_` naming the file, the
column and the rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

import polars as pl

from featstore.errors import CrosslingError
from featstore.io import TableError, check_columns, read_table
from featstore.manifest import CANONICAL_EMOTIONS

KEY_COLUMNS: tuple[str, ...] = ("stimulus", "corpus", "utt_id", "language", "emotion")
"""Columns of a key table (``emotion`` is the true label)."""
PAPER_CORPORA: dict[str, str] = {"cn": "esd", "de": "pavoque", "en": "iemocap", "tj": "tjd"}
"""The paper's corpus of each test language, assumed for a hand-made key without ``corpus``."""
COLUMN_SPELLINGS: dict[str, tuple[str, ...]] = {
    "stimulus": ("stimuli", "stimulus_id", "file", "filename", "audio", "wav"),
    "language": ("lang", "language_code", "stimulus_language"),
    "emotion": ("label", "true", "true_label", "emotion_label"),
}
KEY_LABEL_ALIASES: dict[str, str] = {
    "angry": "angry", "anger": "angry", "ang": "angry", "a": "angry",
    "happy": "happy", "happiness": "happy", "hap": "happy", "joy": "happy", "h": "happy",
    "neutral": "neutral", "neu": "neutral", "n": "neutral",
    "sad": "sad", "sadness": "sad", "s": "sad",
}


class KeyError_(CrosslingError, ValueError):  # noqa: N801 - not the builtin KeyError
    """A key table that cannot tell which stimulus is which; the message names the file."""


def _stem(value: str) -> str:
    path = PureWindowsPath(value) if "\\" in value else PurePosixPath(value)
    return path.stem or value


def _rows(frame: pl.DataFrame, mask: pl.Series, n: int = 5) -> str:
    lines = [str(i + 2) for i in frame.with_row_index("_i").filter(mask)["_i"].to_list()]
    return ", ".join(lines[:n]) + (f" ... (+{len(lines) - n} more)" if len(lines) > n else "")


def check_key(key: pl.DataFrame, source: str | Path = "key", notes: list[str] | None = None,
              labels: Sequence[str] = CANONICAL_EMOTIONS) -> pl.DataFrame:
    """Validate (and complete) a key table; returns it with string key columns.

    Parameters
    ----------
    key : the table as read
    source : its file, for the messages
    notes : when given, a note is appended for every assumption; otherwise each is a
        ``UserWarning``
    labels : the emotions a stimulus may have

    Raises
    ------
    KeyError_
        A required column that cannot be derived, empty cells, unknown labels, duplicates.
    """
    said: list[str] = []
    key = key.with_columns([pl.col(c).cast(pl.Utf8) for c in key.columns])
    for want, spellings in COLUMN_SPELLINGS.items():
        if want not in key.columns:
            found = next((c for c in key.columns if c.strip().lower() in (want, *spellings)), None)
            if found is not None:
                key = key.rename({found: want})
                said.append(f"column {found!r} read as {want!r}")
    try:
        check_columns(key, ("stimulus", "language", "emotion"), source, "key table")
    except TableError as err:
        raise KeyError_(str(err)) from None
    for col in ("stimulus", "language", "emotion"):
        key = key.with_columns(pl.col(col).str.strip_chars())
        empty = key[col].is_null() | (key[col] == "") | key[col].str.to_uppercase().is_in(["NA", "N/A"])
        if empty.any():
            raise KeyError_(f"{source}: column {col!r} is empty on line(s) {_rows(key, empty)}")
    dup = key.filter(pl.col("stimulus").is_duplicated())["stimulus"].unique().to_list()
    if dup:
        raise KeyError_(f"{source}: stimulus key(s) listed twice: {sorted(dup)[:5]}")
    if "utt_id" not in key.columns:
        key = key.with_columns(pl.col("stimulus").map_elements(_stem, return_dtype=pl.Utf8).alias("utt_id"))
        said.append("no 'utt_id' column: each stimulus's file stem taken as its utt_id")
    if "corpus" not in key.columns:
        langs = sorted(set(key["language"].to_list()))
        corpus = {lang: PAPER_CORPORA.get(lang.lower(), "unknown") for lang in langs}
        key = key.with_columns(pl.col("language").replace_strict(corpus, return_dtype=pl.Utf8).alias("corpus"))
        said.append("no 'corpus' column: corpus taken from the language ("
                    + ", ".join(f"{lang} -> {c}" for lang, c in corpus.items()) + ")")
    for col in ("utt_id", "corpus"):
        key = key.with_columns(pl.col(col).str.strip_chars())
        empty = key[col].is_null() | (key[col] == "") | key[col].str.to_uppercase().is_in(["NA", "N/A"])
        if empty.any():
            raise KeyError_(f"{source}: column {col!r} is empty on line(s) {_rows(key, empty)}")
    twice = key.select("corpus", "utt_id").is_duplicated()
    if twice.any():
        raise KeyError_(f"{source}: the same corpus and utt_id on line(s) {_rows(key, twice)}: "
                        "two stimuli cannot be one utterance")
    key = _canonical_labels(key, source, labels, said)
    key = key.with_columns(pl.col("language").str.to_lowercase())
    for note in said:
        if notes is not None:
            notes.append(f"{source}: {note}")
        else:
            warnings.warn(f"{source}: {note}", UserWarning, stacklevel=2)
    return key.select([*KEY_COLUMNS, *[c for c in key.columns if c not in KEY_COLUMNS]])


def _canonical_labels(key: pl.DataFrame, source: str | Path, labels: Sequence[str],
                      said: list[str]) -> pl.DataFrame:
    aliases = {k: v for k, v in KEY_LABEL_ALIASES.items() if v in labels} | {lab.lower(): lab for lab in labels}
    values = sorted(set(key["emotion"].to_list()))
    bad = [v for v in values if v.lower() not in aliases]
    if bad:
        raise KeyError_(f"{source}: column 'emotion' holds {bad[:5]}, not one of {list(labels)}; a "
                        "category kept as its own answer must be among the labels (--labels "
                        f"{','.join([*labels, *bad[:1]])})")
    renamed = {v: aliases[v.lower()] for v in values if aliases[v.lower()] != v}
    if renamed:
        said.append("emotion labels read as " + ", ".join(f"{a!r} -> {b!r}" for a, b in renamed.items()))
        key = key.with_columns(pl.col("emotion").replace(renamed))
    return key


def read_key(path: str | Path, notes: list[str] | None = None,
             labels: Sequence[str] = CANONICAL_EMOTIONS) -> pl.DataFrame:
    """Read a key table (CSV/TSV/JSONL/parquet, any common encoding) and check it with
    :func:`check_key` (``notes`` collects what was assumed; ``labels`` are the emotions a
    stimulus may have, e.g. the four plus TJD's ``question`` kept as its own answer)."""
    try:
        frame = read_table(path, what="key table")
    except TableError as err:
        raise KeyError_(str(err)) from None
    return check_key(frame, path, notes, labels)
