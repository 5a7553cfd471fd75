"""Our Tables I, II and IV with the paper's published value and the difference beside each cell.

The paper's numbers come from :mod:`probes.paper_values`. Every function takes our table in
the shape its builder writes it and returns a long frame, one row per cell, with

- ours (``ua_pct`` / ``eder_pct``, percent),
- ``paper_ua_pct`` / ``paper_eder_pct`` (percent, null where the paper has no such cell),
- ``diff_pct`` = ours - paper, in percentage points (null when either side is missing, or
  for demo data),
- ``comparison``: ``""`` when compared, ``"not comparable: demo"`` for synthetic/demo data
  (``demo=True``), ``"no paper cell"`` or ``"not run"`` otherwise.

Public API
----------
NOT_COMPARABLE_DEMO : the label of demo comparisons
Table I beside the paper is :func:`finetune.table_one.table_one` (probes sit below finetune)
compare_table_two(table2, demo=...) : listener UA (Table II, incl. the TJ column)
compare_table_four(table_iv, demo=..., unit=...) : EDER (Table IV)
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from featstore.errors import CrosslingError, check_choice
from probes.paper_values import TABLE_II, TABLE_IV

NOT_COMPARABLE_DEMO = "not comparable: demo"
"""The ``comparison`` of every cell built from demo or synthetic data."""
EDER_UNITS: tuple[str, ...] = ("fraction", "pct")
"""How EDER is given to :func:`compare_table_four`: fractions (0-1, as
``probes.sed._results.table_iv`` writes them) or percent."""
TABLE_TWO_LANGUAGES: tuple[str, ...] = ("cn", "de", "en", "tj")
"""Table II's stimulus languages, in printed order."""


class PaperCompareError(CrosslingError, ValueError):
    """A table that cannot be compared with the paper (its shape is not the expected one)."""


def _label(ours: float | None, paper: float | None, demo: bool) -> tuple[float | None, str]:
    """(difference in percentage points or None, comparison label)."""
    if demo:
        return None, NOT_COMPARABLE_DEMO
    if paper is None:
        return None, "no paper cell"
    if ours is None:
        return None, "not run"
    return ours - paper, ""


def _table_two_long(table2: pl.DataFrame) -> pl.DataFrame:
    """group, language, ua_pct from Table II either wide (``group`` and one column per language,
    upper or lower case, UA as a fraction 0-1: ``probes.human.compare.table2``, the
    ``table2_ua.csv`` it writes) or long (``group``, ``language`` and ``ua_pct`` in percent, or
    ``mean`` as a fraction: ``group_summary``)."""
    if "group" not in table2.columns:
        raise PaperCompareError(f"Table II needs a 'group' column; got {table2.columns}")
    if "language" in table2.columns:
        if "ua_pct" in table2.columns:
            value = pl.col("ua_pct").cast(pl.Float64)
        elif "mean" in table2.columns:
            value = pl.col("mean").cast(pl.Float64) * 100
        else:
            raise PaperCompareError("a long Table II needs 'ua_pct' (percent) or 'mean' (fraction 0-1); "
                                    f"got {table2.columns}")
        return table2.select(pl.col("group").cast(pl.Utf8), pl.col("language").cast(pl.Utf8).str.to_lowercase(),
                             value.alias("ua_pct"))
    langs = [c for c in table2.columns if c.lower() in TABLE_TWO_LANGUAGES]
    if not langs:
        raise PaperCompareError(f"Table II has no language column ({', '.join(TABLE_TWO_LANGUAGES)}); "
                                f"got {table2.columns}")
    return (table2.select(pl.col("group").cast(pl.Utf8), *[(pl.col(c).cast(pl.Float64) * 100) for c in langs])
            .unpivot(index="group", on=langs, variable_name="language", value_name="ua_pct")
            .with_columns(pl.col("language").str.to_lowercase()))


def compare_table_two(table2: pl.DataFrame, *, demo: bool = False) -> pl.DataFrame:
    """Table II (listener UA) beside the paper's.

    ``table2``: ``probes.human.compare.table2``'s frame (``group`` and one column per stimulus
    language, ``CN`` ... ``TJ``, UA in percent) or a long one (see :func:`_table_two_long`).
    Groups are listener groups by native language (``cn``, ``de``).

    Returns one row per (group, language) of ours or of the paper (all 8 printed cells, incl.
    the TJ column): ``group``, ``language``, ``ua_pct``, ``paper_ua_pct``, ``diff_pct``
    (percentage points), ``comparison``; paper cells first in printed order, then our extra ones.
    """
    return _beside(_table_two_long(table2), ("group", "language"), "ua_pct",
                   [((c.group, c.language), c.ua_pct) for c in TABLE_II], demo)


def _table_four_long(table_iv: pl.DataFrame, model_column: str | None, unit: str) -> pl.DataFrame:
    """emotion, system, eder_pct from ``probes.sed._results.table_iv``'s shape: ``emotion`` and
    one column for the model, one ``listeners <group>`` per listener group."""
    check_choice("EDER unit", unit, EDER_UNITS)
    if "emotion" not in table_iv.columns:
        raise PaperCompareError(f"Table IV needs an 'emotion' column; got {table_iv.columns}")
    others = [c for c in table_iv.columns if c != "emotion"]
    listeners = [c for c in others if c.startswith("listeners ")]
    models = [c for c in others if c not in listeners]
    if model_column is None and len(models) > 1:
        raise PaperCompareError(f"Table IV has several model columns {models}; name the diarization model's "
                                "column (model_column=...)")
    if model_column is not None and model_column not in models:
        raise PaperCompareError(f"Table IV has no column {model_column!r}; model columns: {models}")
    chosen = model_column or (models[0] if models else None)
    rename = {c: c.removeprefix("listeners ").strip() for c in listeners}
    if chosen is not None:
        rename[chosen] = "wavlm"  # the paper's one diarization system
    scale = 100.0 if unit == "fraction" else 1.0
    cols = list(rename)
    if not cols:
        return pl.DataFrame(schema={"emotion": pl.Utf8, "system": pl.Utf8, "eder_pct": pl.Float64})
    return (table_iv.select(pl.col("emotion").cast(pl.Utf8), *[(pl.col(c).cast(pl.Float64) * scale).alias(rename[c])
                                                              for c in cols])
            .unpivot(index="emotion", on=[rename[c] for c in cols], variable_name="system", value_name="eder_pct"))


def compare_table_four(table_iv: pl.DataFrame, *, demo: bool = False, unit: str = "fraction",
                       model_column: str | None = None) -> pl.DataFrame:
    """Table IV (EDER) beside the paper's.

    ``table_iv``: ``probes.sed._results.table_iv``'s frame (``emotion`` = angry, happy, sad,
    average; one column for the diarization model, one ``listeners <group>`` per group), EDER
    as a fraction 0-1 (``unit="fraction"``, the default) or in percent (``unit="pct"``).
    The model column is compared with the paper's WavLM column.

    Returns one row per (emotion, system) of ours or of the paper (all 12 printed cells):
    ``emotion``, ``system`` (``wavlm``, ``cn``, ``de``), ``eder_pct``, ``paper_eder_pct``,
    ``diff_pct`` (percentage points; negative = fewer errors than the paper), ``comparison``.
    """
    return _beside(_table_four_long(table_iv, model_column, unit), ("emotion", "system"), "eder_pct",
                   [((c.emotion, c.system), c.eder_pct) for c in TABLE_IV], demo)


def _beside(ours: pl.DataFrame, keys: tuple[str, str], value: str, paper: list[tuple[tuple[str, str], float]],
            demo: bool) -> pl.DataFrame:
    """One row per paper cell (printed order), then our cells the paper lacks: the ``keys``,
    our ``value``, ``paper_<value>``, ``diff_pct`` and ``comparison``."""
    got = {tuple(r[k] for k in keys): r[value] for r in ours.iter_rows(named=True)}
    rows = []
    for key, printed in paper:
        mine = got.pop(key, None)
        rows.append((*key, mine, printed, *_label(mine, printed, demo)))
    rows += [(*key, mine, None, None, NOT_COMPARABLE_DEMO if demo else "no paper cell") for key, mine in got.items()]
    schema = {keys[0]: pl.Utf8, keys[1]: pl.Utf8, value: pl.Float64, f"paper_{value}": pl.Float64,
              "diff_pct": pl.Float64, "comparison": pl.Utf8}
    return pl.DataFrame(rows, schema=schema, orient="row")


def write_beside_paper(table: pl.DataFrame, out_dir: str | Path, name: str) -> dict[str, Path]:
    """Write a ``compare_table_*`` result as ``<name>.csv`` and ``<name>.md`` (atomically);
    returns ``{"csv": path, "md": path}``."""
    from featstore.io import atomic_write, atomic_write_text

    out = Path(out_dir)
    cells = [["" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v)) for v in row]
             for row in table.iter_rows()]
    lines = ["| " + " | ".join(table.columns) + " |", "| " + " | ".join("---" for _ in table.columns) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    csv_path = atomic_write(out / f"{name}.csv", table.write_csv)
    md_path = atomic_write_text(out / f"{name}.md", "\n".join(lines) + "\n")
    return {"csv": csv_path, "md": md_path}


__all__ = [
    "write_beside_paper",
    "EDER_UNITS", "NOT_COMPARABLE_DEMO", "TABLE_TWO_LANGUAGES", "PaperCompareError", "compare_table_four",
    "compare_table_two",
]
