"""What the report says beside each number: its unit, and whether listeners were simulated.

Units: the rule (a rate is a fraction unless its column ends ``_pct``) and the conversion
to percent live in :mod:`featstore.units`.

Simulated listeners: a listening test's answers are simulated when the run's ``study.json``
says so in ``listeners`` (a text starting ``simulated``, or ``{"human": ..., "sed": ...}``)
or ``sed_listeners``, or when a result file under ``human/`` or ``sed/`` carries a
``simulated`` field in its provenance: a JSON file's top level or its ``provenance``
object, or a parquet file's ``crossling`` metadata (:data:`SIMULATED_FIELD`).
"""

from __future__ import annotations

import json
from pathlib import Path

SIMULATED_FIELD = "simulated"
"""Provenance field (JSON, parquet ``crossling`` metadata): ``true`` or a text saying how
the answers were simulated."""

LISTENER_FOLDERS = ("human", "sed")
"""Sections whose tables and figures hold listener answers."""


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
