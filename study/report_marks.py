"""What the report says beside each number: its unit, and whether listeners were simulated.

Units: the result files keep their own conventions (``ua_mean`` is a fraction in the
probes' ``summary.csv`` and ``best_layers.csv``, a percentage in fine-tuning's
``table_one.csv``; EDER is a fraction in ``table_iv.csv``). The report converts once, here,
so every column it shows holds percentages and says so in its header (``UA %``,
``EDER %``); a column whose name ends in ``_pct`` is already in percent.

Simulated listeners: a listening test's answers are simulated when the run's ``study.json``
says so in ``listeners`` (a text starting ``simulated``, or ``{"human": ..., "sed": ...}``)
or ``sed_listeners``, or when a result file under ``human/`` or ``sed/`` carries a
``simulated`` field in its provenance: a JSON file's top level or its ``provenance``
object, or a parquet file's ``crossling`` metadata (:data:`SIMULATED_FIELD`).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

SIMULATED_FIELD = "simulated"
"""Provenance field (JSON, parquet ``crossling`` metadata): ``true`` or a text saying how
the answers were simulated."""

LISTENER_FOLDERS = ("human", "sed")
"""Sections whose tables and figures hold listener answers."""

QUANTITIES: dict[str, str] = {
    "ua": "UA", "wa": "WA", "macro_f1": "macro-F1", "eder": "EDER", "eder_duration_weighted": "EDER (duration-weighted)",
    "best_ua": "UA", "human_ua": "UA", "model_ua": "UA", "accuracy": "accuracy", "acc": "accuracy",
}
"""Column stems whose values are rates (fraction or percent) and the name the report shows."""

STATS = {"mean": "mean", "std": "std", "sd": "std", "": ""}


def _split(column: str) -> tuple[str, str, bool]:
    """``ua_mean`` -> (``ua``, ``mean``, False); ``ua_pct`` -> (``ua``, ``""``, True)."""
    name = column.lower()
    pct = name.endswith("_pct")
    if pct:
        name = name[:-4]
    for stat in ("mean", "std", "sd"):
        if name.endswith(f"_{stat}"):
            return name[: -len(stat) - 1], stat, pct
    return name, "", pct


def is_fraction(values: pl.Series) -> bool:
    """True when every value is within [-1, 1]: a rate written as a fraction."""
    finite = values.drop_nulls().drop_nans() if values.dtype.is_float() else values.drop_nulls()
    return finite.len() > 0 and float(finite.abs().max()) <= 1.0


def percent_columns(frame: pl.DataFrame, eder_columns: tuple[str, ...] = (),
                    rate_columns: dict[str, str] | None = None) -> pl.DataFrame:
    """Every rate column of ``frame`` in percent, its header naming the unit.

    A stem's ``_mean`` column decides for its ``_std`` (a std of 0.5 % is not a fraction);
    a stem with values all within [0, 1] is a fraction and is multiplied by 100 once.
    ``eder_columns`` are EDER columns named otherwise (Table IV: the model's and each
    group's); ``rate_columns`` maps other rate columns to their quantity (Table II's
    languages: ``{"CN": "UA"}``).
    """
    rates = dict(rate_columns or {}) | dict.fromkeys(eder_columns, "EDER")
    fraction: dict[str, bool] = {}
    for col in sorted(frame.columns, key=lambda c: _split(c)[1] in ("std", "sd")):  # a mean decides first
        stem, stat, pct = _split(col)
        if col in rates or (stem in QUANTITIES and frame.schema[col].is_numeric()):
            key = col if col in rates else stem
            if pct:
                fraction[key] = False
            else:
                fraction.setdefault(key, is_fraction(frame[col]))
    out, names = [], {}
    for col in frame.columns:
        stem, stat, pct = _split(col)
        if col in rates:
            key, label = col, f"{col} {rates[col]} %"
        elif stem in QUANTITIES and frame.schema[col].is_numeric():
            key, label = stem, " ".join(x for x in (QUANTITIES[stem], "%", STATS[stat]) if x)
        else:
            continue
        if fraction.get(key):
            out.append((pl.col(col) * 100).alias(col))
        names[col] = label
    frame = frame.with_columns(out) if out else frame
    taken = set(frame.columns) - set(names)
    rename = {}
    for col, label in names.items():
        if label not in taken:
            rename[col] = label
            taken.add(label)
    return frame.rename(rename)


def simulated_listeners(run_dir: Path, meta: dict) -> dict[str, str]:
    """``{folder: note}`` for each of :data:`LISTENER_FOLDERS` whose listener answers are
    simulated (see the module docstring); the note says how, when the source tells."""
    marks: dict[str, str] = {}
    listeners = meta.get("listeners")
    if isinstance(listeners, dict):
        for folder in LISTENER_FOLDERS:
            note = _note(listeners.get(folder))
            if note:
                marks[folder] = note
    else:
        note = _note(listeners)
        if note:
            marks = dict.fromkeys(LISTENER_FOLDERS, note)
    sed_note = _note(meta.get("sed_listeners"))
    if sed_note:
        marks["sed"] = sed_note
    for folder in LISTENER_FOLDERS:
        if folder in marks or not (run_dir / folder).is_dir():
            continue
        note = _provenance_note(run_dir / folder)
        if note:
            marks[folder] = note
    return marks


def _note(value: object) -> str | None:
    """A ``simulated`` mark: ``True`` or a text that starts with "simulated"."""
    if value is True:
        return "simulated listener answers"
    if isinstance(value, str) and value.strip().lower().startswith("simulated"):
        return value.strip()
    return None


def _flag(value: object) -> str | None:
    """The value of a :data:`SIMULATED_FIELD`: true, or a text saying how."""
    if value is True:
        return "simulated listener answers"
    if isinstance(value, str) and value.strip() and value.strip().lower() not in ("false", "no", "0"):
        return value.strip() if value.strip().lower().startswith("simulated") else f"simulated: {value.strip()}"
    return None


def _provenance_note(folder: Path) -> str | None:
    from featstore.io import TableError, parquet_metadata

    for path in sorted(folder.rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict):
            for holder in (data, data.get("provenance")):
                if isinstance(holder, dict) and _flag(holder.get(SIMULATED_FIELD)):
                    return _flag(holder.get(SIMULATED_FIELD))
    for path in sorted(folder.rglob("*.parquet")):
        try:
            meta = parquet_metadata(path)
        except (TableError, OSError, ValueError):
            continue
        if isinstance(meta, dict) and _flag(meta.get(SIMULATED_FIELD)):
            return _flag(meta.get(SIMULATED_FIELD))
    return None
