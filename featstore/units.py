"""The unit rule, in one place: a rate is a FRACTION 0-1 in a column named for its quantity
(``ua``, ``ua_mean``, ``ua_lo``, ``CN_ua``, ``wavlm-emo_eder``, ``listeners_cn_eder``) and a
percentage only in a column whose name ends ``_pct`` (``ua_pct``, ``paper_ua_pct``). Readers
take the unit from the name, never from the values; the report and the console convert once,
at the edge, with :func:`percent_columns`.
"""

from __future__ import annotations

import polars as pl

QUANTITIES: dict[str, str] = {
    "ua": "UA", "wa": "WA", "macro_f1": "macro-F1", "eder": "EDER", "eder_duration_weighted": "EDER (duration-weighted)",
    "best_ua": "UA", "human_ua": "UA", "model_ua": "UA", "accuracy": "accuracy", "acc": "accuracy",
}
"""Column stems whose values are rates (fraction or percent) and the name the report shows."""

STATS = {"mean": "mean", "std": "std", "sd": "std", "lo": "low", "hi": "high", "": ""}
"""Statistic suffixes a rate column may carry (``ua_mean``, ``ua_lo``), and their header words."""


def split_column(column: str) -> tuple[str, str, str, bool]:
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
    return split_column(column)[1] in QUANTITIES


def percent_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Every rate column of ``frame`` in percent, its header naming the quantity and the unit.

    The unit comes from the column's name alone: a numeric column whose name ends in a
    quantity of :data:`QUANTITIES` (optionally with a statistic, ``_mean``/``_std``/``_lo``/
    ``_hi``) is a fraction and is multiplied by 100 once; with ``_pct`` it is already percent.
    ``CN_ua`` is shown as ``CN UA %``, ``listeners_cn_eder`` as ``listeners cn EDER %``.
    """
    out, names = [], {}
    for col in frame.columns:
        prefix, stem, stat, pct = split_column(col)
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
