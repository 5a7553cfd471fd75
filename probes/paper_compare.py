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
compare_table_four(table_iv, demo=...) : EDER (Table IV)
rate_column(column, quantity) : the unit rule for a column name (``CN_ua``, ``x_eder_pct``)
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from featstore.errors import CrosslingError
from probes.paper_values import TABLE_II, TABLE_IV

NOT_COMPARABLE_DEMO = "not comparable: demo"
"""The ``comparison`` of every cell built from demo or synthetic data."""
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


def rate_column(column: str, quantity: str) -> tuple[str, float] | None:
    """``(what, scale to percent)`` of a column named by the unit rule, else None:
    ``CN_ua`` -> (``CN``, 100.0) (a fraction), ``CN_ua_pct`` -> (``CN``, 1.0) (percent)."""
    for suffix, scale in ((f"_{quantity}_pct", 1.0), (f"_{quantity}", 100.0)):
        if column.lower().endswith(suffix) and len(column) > len(suffix):
            return column[: -len(suffix)], scale
    return None


def _table_two_long(table2: pl.DataFrame) -> pl.DataFrame:
    """group, language, ua_pct from Table II either wide (``group`` and one column per language
    named ``<LANG>_ua`` for a fraction 0-1, as ``probes.human.compare.table2`` writes
    ``table2_ua.csv``, or ``<LANG>_ua_pct`` for percent) or long (``group``, ``language`` and
    ``ua_pct`` in percent, or ``mean`` as a fraction: ``group_summary``). The unit is read from
    the column's name, never guessed from its values."""
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
    langs = {c: parsed for c in table2.columns if (parsed := rate_column(c, "ua")) is not None}
    if not langs:
        bare = [c for c in table2.columns if c.lower() in TABLE_TWO_LANGUAGES]
        hint = (f"; columns {bare} do not say their unit: name them <LANG>_ua (a fraction 0-1) or "
                "<LANG>_ua_pct (percent)") if bare else ""
        raise PaperCompareError(f"Table II has no language column (<LANG>_ua or <LANG>_ua_pct, e.g. CN_ua); "
                                f"got {table2.columns}{hint}")
    return (table2.select(pl.col("group").cast(pl.Utf8),
                          *[(pl.col(c).cast(pl.Float64) * scale).alias(lang.lower()) for c, (lang, scale) in langs.items()])
            .unpivot(index="group", on=[lang.lower() for lang, _ in langs.values()],
                     variable_name="language", value_name="ua_pct"))


def compare_table_two(table2: pl.DataFrame, *, demo: bool = False) -> pl.DataFrame:
    """Table II (listener UA) beside the paper's.

    ``table2``: ``probes.human.compare.table2``'s frame (``group`` and one column per stimulus
    language, ``CN_ua`` ... ``TJ_ua``, UA as a fraction) or a long one (see :func:`_table_two_long`).
    Groups are listener groups by native language (``cn``, ``de``).

    Returns one row per (group, language) of ours or of the paper (all 8 printed cells, incl.
    the TJ column): ``group``, ``language``, ``ua_pct``, ``paper_ua_pct``, ``diff_pct``
    (percentage points), ``comparison``; paper cells first in printed order, then our extra ones.
    """
    return _beside(_table_two_long(table2), ("group", "language"), "ua_pct",
                   [((c.group, c.language), c.ua_pct) for c in TABLE_II], demo)


def _table_four_long(table_iv: pl.DataFrame, model_column: str | None) -> pl.DataFrame:
    """emotion, system, eder_pct from ``probes.sed._results.table_iv``'s shape: ``emotion``,
    one ``<model>_eder`` column and one ``listeners_<group>_eder`` per listener group (a
    ``_eder_pct`` suffix instead means percent; the unit is read from the name)."""
    if "emotion" not in table_iv.columns:
        raise PaperCompareError(f"Table IV needs an 'emotion' column; got {table_iv.columns}")
    rates = {c: parsed for c in table_iv.columns if (parsed := rate_column(c, "eder")) is not None}
    unnamed = [c for c in table_iv.columns if c != "emotion" and c not in rates]
    if unnamed and not rates:
        raise PaperCompareError(f"Table IV columns {unnamed} do not say their unit: name them <system>_eder "
                                "(a fraction 0-1) or <system>_eder_pct (percent)")
    listeners = [c for c, (system, _) in rates.items() if system.startswith("listeners_")]
    models = [c for c in rates if c not in listeners]
    names = {c: rates[c][0] for c in models}
    if model_column is not None:
        found = [c for c in models if model_column in (c, names[c])]
        if not found:
            raise PaperCompareError(f"Table IV has no column {model_column!r}; model columns: {models}")
        chosen: str | None = found[0]
    elif len(models) > 1:
        raise PaperCompareError(f"Table IV has several model columns {models}; name the diarization model's "
                                "column (model_column=...)")
    else:
        chosen = models[0] if models else None
    rename = {c: rates[c][0].removeprefix("listeners_").strip() for c in listeners}
    if chosen is not None:
        rename[chosen] = "wavlm"  # the paper's one diarization system
    if not rename:
        return pl.DataFrame(schema={"emotion": pl.Utf8, "system": pl.Utf8, "eder_pct": pl.Float64})
    return (table_iv.select(pl.col("emotion").cast(pl.Utf8),
                            *[(pl.col(c).cast(pl.Float64) * rates[c][1]).alias(rename[c]) for c in rename])
            .unpivot(index="emotion", on=list(rename.values()), variable_name="system", value_name="eder_pct"))


def compare_table_four(table_iv: pl.DataFrame, *, demo: bool = False,
                       model_column: str | None = None) -> pl.DataFrame:
    """Table IV (EDER) beside the paper's.

    ``table_iv``: ``probes.sed._results.table_iv``'s frame (``emotion`` = angry, happy, sad,
    average; ``<model>_eder`` for the diarization model, ``listeners_<group>_eder`` per group),
    EDER as a fraction 0-1, or in percent where a column ends ``_eder_pct``. The model column
    (``model_column``: its full name or the model's) is compared with the paper's WavLM column.

    Returns one row per (emotion, system) of ours or of the paper (all 12 printed cells):
    ``emotion``, ``system`` (``wavlm``, ``cn``, ``de``), ``eder_pct``, ``paper_eder_pct``,
    ``diff_pct`` (percentage points; negative = fewer errors than the paper), ``comparison``.
    """
    return _beside(_table_four_long(table_iv, model_column), ("emotion", "system"), "eder_pct",
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
    "rate_column", "NOT_COMPARABLE_DEMO", "TABLE_TWO_LANGUAGES", "PaperCompareError", "compare_table_four",
    "compare_table_two",
]
