"""What the report says beside each number: its unit, and whether listeners were simulated.

Units: one rule for every result file (docs/architecture.md): a rate is a FRACTION 0-1 in
a column named for its quantity (``ua``, ``ua_mean``, ``CN_ua``, ``wavlm-emo_eder``,
``listeners_cn_eder``) and a percentage only in a column whose name ends ``_pct``
(``ua_pct``, ``paper_ua_pct``). The report reads the unit from the name, never from the
values, and converts once, here, so every column it shows holds percentages and says so in
its header (``UA %``, ``CN UA %``, ``EDER %``).

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

STATS = {"mean": "mean", "std": "std", "sd": "std", "lo": "low", "hi": "high", "": ""}
"""Statistic suffixes a rate column may carry (``ua_mean``, ``ua_lo``), and their header words."""


def _split(column: str) -> tuple[str, str, str, bool]:
    """A column's (prefix, quantity stem, statistic, in percent) by the unit rule:
    ``ua_mean`` -> (``""``, ``ua``, ``mean``, False); ``CN_ua`` -> (``CN``, ``ua``, ``""``, False);
    ``paper_ua_pct`` -> (``paper``, ``ua``, ``""``, True); a column that names no quantity
    -> (``""``, its lower-case name, ``""``, pct)."""
    name = column
    pct = name.lower().endswith("_pct")
    if pct:
        name = name[:-4]
    stat = ""
    for suffix in ("mean", "std", "sd", "lo", "hi"):
        if name.lower().endswith(f"_{suffix}"):
            name, stat = name[: -len(suffix) - 1], suffix
            break
    if not pct and name.lower().endswith("_pct"):  # ``ua_pct_std``: the statistic after the unit
        name, pct = name[:-4], True
    low = name.lower()
    if low in QUANTITIES:
        return "", low, stat, pct
    for quantity in sorted(QUANTITIES, key=len, reverse=True):
        if low.endswith(f"_{quantity}") and len(low) > len(quantity) + 1:
            return name[: -len(quantity) - 1], quantity, stat, pct
    return "", low, stat, pct


def is_rate(column: str) -> bool:
    """True when ``column``'s name says it holds a rate (fraction, or percent with ``_pct``)."""
    return _split(column)[1] in QUANTITIES


def percent_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Every rate column of ``frame`` in percent, its header naming the quantity and the unit.

    The unit comes from the column's name alone: a numeric column whose name ends in a
    quantity of :data:`QUANTITIES` (optionally with a statistic, ``_mean``/``_std``/``_lo``/
    ``_hi``) is a fraction and is multiplied by 100 once; with ``_pct`` it is already percent.
    ``CN_ua`` is shown as ``CN UA %``, ``listeners_cn_eder`` as ``listeners cn EDER %``.
    """
    out, names = [], {}
    for col in frame.columns:
        prefix, stem, stat, pct = _split(col)
        if stem not in QUANTITIES or not frame.schema[col].is_numeric():
            continue
        if not pct:
            out.append((pl.col(col) * 100).alias(col))
        names[col] = " ".join(x for x in (prefix.replace("_", " "), QUANTITIES[stem], "%", STATS[stat]) if x)
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
