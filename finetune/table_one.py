"""Table I in the paper's layout, with the paper's published value beside each cell.

Units: ``ua`` in a results frame is a fraction (0-1); every column of the tables built here
is a percentage and says so (``ua_pct``, ``ua_std_pct``, ``paper_ua_pct``, ``diff_pct`` =
ours - paper in percentage points).

Which run fills which cell
--------------------------
A run is (model, stage-1 corpus, stage-2 corpus or none, test corpus, strategy). The 16
one-stage cells are unambiguous: stage 1 = the printed Source, test = the printed Target.
The eight 2-stg cells depend on the setting ``two_stage_reading`` (docs/fidelity.md,
"Table I cells"), with ``m`` the model's language, ``s`` the printed Source, ``t`` the Target:

- ``text``: stage 1 = ``m``, stage 2 = ``t``, test ``t`` (the paper's text: first the
  model's own language, then the target). Cross and Trans cells of one model and target share
  one run (rows 6/9 and 18/21).
- ``source-target``: stage 1 = ``s``, stage 2 = ``t``, test ``t`` (the columns as printed;
  Mono and Trans cells train twice on one corpus).
- ``authors``: stage 1 = ``s``, stage 2 = the other of CN/DE (the published code's switch),
  test ``t``; a cell whose Source is neither CN nor DE (the Trans-EN rows 12 and 24) cannot
  be run and stays empty with that reason.

A second setting, ``alignment``, chooses the published value a run is compared with:
``printed`` (the value in its own row) or ``logged`` (the value printed one row below it in
the same block, where the authors' logs show that run's mean; 2-stg cells then have none).

Public API
----------
TWO_STAGE_READINGS, ALIGNMENTS, PAPER_LANGUAGE_OF_MODEL
table_one_cell_keys() : the 24 cells' keys (model, setting, target, ba_wg, two_stage)
table_one_cells(reading, alignment) : the 24 cells with the run each needs
table_one_runs(reading, corpora) : the distinct ``[[finetune.runs]]`` that fill them
table_one(results, ...) : our conditions in the paper's layout, paper value and difference beside
table_one_markdown(table) : the same as Markdown
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from featstore.errors import check_choice
from probes.paper_values import MODEL_LABELS, TABLE_I, TableOneCell

TWO_STAGE_READINGS: tuple[str, ...] = ("text", "source-target", "authors")
"""Values of ``two_stage_reading`` (see the module docstring and docs/fidelity.md)."""
ALIGNMENTS: tuple[str, ...] = ("printed", "logged")
"""Values of ``alignment``: compare a run with its own row, or with the row below it."""
PAPER_LANGUAGE_OF_MODEL: dict[str, str] = {"w2v2-cn": "cn", "w2v2-de": "de"}
"""The language of each model of Table I."""
CELL_KEY: tuple[str, ...] = ("model", "setting", "target", "ba_wg", "two_stage")
"""The columns that identify one of the 24 cells."""
PROTOCOL_COLUMNS: tuple[str, ...] = (
    "protocol", "valid_corpus", "two_stage_schedule", "layer_means", "batch_size",
    "train_mode_regularisation", "best_layer_by", "equal_loss_resets_patience",
)
"""Result columns (from the protocol options, PROTOCOL_COLUMNS.md) that make runs distinct
conditions: runs differing in any of these present columns are never averaged together."""
_STRATEGY_OF = {(True, False): "lora", (True, True): "lora+ba+wg"}
_OTHER_OF_CN_DE = {"cn": "de", "de": "cn"}

TABLE_ONE_COLUMNS: tuple[str, ...] = (
    "row", "cell", "model", "setting", "source", "stage2", "target", "paper_source", "lora", "ba_wg", "two_stage",
    "strategy", "scope", "layer", "n_folds", "ua_pct", "ua_std_pct", "paper_ua_pct", "diff_pct",
    "comparison", "stage1_corpus", "stage2_corpus", "test_corpus",
)
"""The leading columns of :func:`table_one` (present protocol columns follow)."""


def cell_id(model: str, setting: str, target: str, ba_wg: bool, two_stage: bool) -> str:
    """A readable id of a Table I cell, e.g. ``w2v2-cn/cross/de/lora+ba+wg+2stg``."""
    return f"{model}/{setting}/{target}/{_STRATEGY_OF[(True, ba_wg)]}{'+2stg' if two_stage else ''}"


def table_one_cell_keys() -> list[tuple[str, str, str, bool, bool]]:
    """The 24 cells' keys ``(model, setting, target, ba_wg, two_stage)`` in printed order
    (every cell also has LoRA ticked); each passes to ``paper_value("I", ...)``."""
    return [(c.model, c.setting, c.target, c.ba_wg, c.two_stage) for c in TABLE_I]


def _run_of(cell: TableOneCell, reading: str) -> tuple[str, str | None, str | None]:
    """(stage-1 language, stage-2 language or None, reason the cell cannot run or None)."""
    if not cell.two_stage:
        return cell.source, None, None
    model_language = PAPER_LANGUAGE_OF_MODEL[cell.model]
    if reading == "text":
        return model_language, cell.target, None
    if reading == "source-target":
        return cell.source, cell.target, None
    other = _OTHER_OF_CN_DE.get(cell.source)
    if other is None:
        return cell.source, None, (f"not possible under two_stage_reading 'authors': the authors' code switches "
                                   f"only between CN and DE and raises for Source {cell.source.upper()}")
    return cell.source, other, None


def table_one_cells(reading: str = "text", alignment: str = "printed") -> pl.DataFrame:
    """The 24 cells of Table I and the run each needs under ``reading``.

    Columns: ``row`` (1-24), ``cell`` (:func:`cell_id`), the cell key (``model``, ``setting``,
    ``source``, ``target``, ``lora``, ``ba_wg``, ``two_stage``), ``strategy`` (``lora`` or
    ``lora+ba+wg``), the run's languages ``run_stage1``, ``run_stage2`` (null: one stage),
    ``run_test``, ``impossible`` (why the reading leaves the cell without a run, else null),
    ``paper_ua_pct`` (percent, per ``alignment``) and ``note``.
    """
    check_choice("two_stage_reading", reading, TWO_STAGE_READINGS)
    check_choice("alignment", alignment, ALIGNMENTS)
    by_row = {c.row: c for c in TABLE_I}
    rows = []
    for c in TABLE_I:
        stage1, stage2, impossible = _run_of(c, reading)
        if alignment == "printed":
            paper = c.ua_pct
        else:  # the value printed one row below, in the same block of three
            below = by_row.get(c.row + 1)
            paper = below.ua_pct if below is not None and not c.two_stage else None
        rows.append({
            "row": c.row, "cell": cell_id(c.model, c.setting, c.target, c.ba_wg, c.two_stage),
            "model": c.model, "setting": c.setting, "source": c.source, "target": c.target,
            "lora": c.lora, "ba_wg": c.ba_wg, "two_stage": c.two_stage,
            "strategy": _STRATEGY_OF[(c.lora, c.ba_wg)],
            "run_stage1": stage1, "run_stage2": stage2, "run_test": c.target, "impossible": impossible,
            "paper_ua_pct": paper, "note": c.note,
        })
    return pl.DataFrame(rows, schema_overrides={"run_stage2": pl.Utf8, "impossible": pl.Utf8,
                                                "paper_ua_pct": pl.Float64})


PAPER_CORPORA: dict[str, str] = {"cn": "esd", "de": "pavoque", "en": "iemocap"}
"""The paper's corpus of each language (the study's corpus names)."""


def table_one_runs(reading: str = "text", corpora: Mapping[str, str] | None = None) -> list[dict]:
    """The fine-tuning runs that fill Table I under ``reading``, one per distinct run.

    ``corpora`` maps a language to the study's corpus name (default :data:`PAPER_CORPORA`).
    Each run is a ``[[finetune.runs]]`` table (``model``, ``strategy``, ``train_corpus``,
    ``test_corpus``, ``two_stage``, and ``source_corpus`` = stage 1 of a two-stage run, whose
    ``train_corpus`` is stage 2) plus ``rows``: the Table I rows it fills (two under ``text``
    for the Cross/Trans 2-stg pairs). Cells the reading cannot run are in no run.
    """
    names = dict(PAPER_CORPORA if corpora is None else corpora)
    runs: dict[tuple, dict] = {}
    for cell in table_one_cells(reading).filter(pl.col("impossible").is_null()).iter_rows(named=True):
        stage1, stage2 = names[cell["run_stage1"]], names.get(cell["run_stage2"]) if cell["run_stage2"] else None
        run = {"model": cell["model"], "strategy": cell["strategy"], "train_corpus": stage2 or stage1,
               "test_corpus": names[cell["run_test"]], "two_stage": cell["two_stage"]}
        if cell["two_stage"]:
            run["source_corpus"] = stage1
        key = tuple(sorted(run.items()))
        runs.setdefault(key, {**run, "rows": []})["rows"].append(cell["row"])
    return list(runs.values())


def _with_stage_columns(results: pl.DataFrame) -> pl.DataFrame:
    """Add ``stage1_corpus``, ``stage2_corpus``, ``stage1_language``, ``stage2_language`` from
    the protocol branch's columns when present, else from train/source corpus and language."""
    two = pl.col("two_stage").fill_null(False)
    frame = results
    if "source_corpus" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.Utf8).alias("source_corpus"))
    if "source_language" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.Utf8).alias("source_language"))
    if "stage1_corpus" not in frame.columns:
        frame = frame.with_columns(pl.when(two).then(pl.col("source_corpus")).otherwise(pl.col("train_corpus"))
                                   .alias("stage1_corpus"))
    if "stage2_corpus" not in frame.columns:
        frame = frame.with_columns(pl.when(two).then(pl.col("train_corpus")).otherwise(None).alias("stage2_corpus"))
    return frame.with_columns(
        pl.when(two).then(pl.col("source_language")).otherwise(pl.col("train_language")).alias("stage1_language"),
        pl.when(two).then(pl.col("train_language")).otherwise(None).cast(pl.Utf8).alias("stage2_language"),
    )


def _conditions(results: pl.DataFrame) -> pl.DataFrame:
    """One row per distinct condition with UA over folds in percent (std null for one fold)."""
    frame = _with_stage_columns(results)
    if "scope" not in frame.columns:
        frame = frame.with_columns(pl.lit("every-layer").alias("scope"))
    protocol = [c for c in PROTOCOL_COLUMNS if c in frame.columns]
    keys = ["model", "setting", "stage1_corpus", "stage2_corpus", "test_corpus", "stage1_language",
            "stage2_language", "test_language", "strategy", "two_stage", "scope", "layer", *protocol]
    out = frame.group_by(keys, maintain_order=True).agg(
        (pl.col("ua").mean() * 100).round(6).alias("ua_pct"),  # 75.0, not 74.99999999999999
        (pl.col("ua").std(ddof=1) * 100).round(6).alias("ua_std_pct"),
        pl.len().alias("n_folds"),
    )
    return out.with_columns(
        pl.when(pl.col("n_folds") > 1).then(pl.col("ua_std_pct")).otherwise(None).alias("ua_std_pct"),
        pl.col("two_stage").fill_null(False),
    )


def _ticks(strategy: str) -> tuple[bool, bool]:
    parts = set(strategy.split("+"))
    return "lora" in parts, {"ba", "wg"} <= parts


def table_one(results: pl.DataFrame, *, reading: str = "text", alignment: str = "printed",
              demo: bool = False, all_cells: bool = False,
              models: Mapping[str, str] | None = None) -> pl.DataFrame:
    """Table I in the paper's layout: one row per condition we ran (and, with ``all_cells``,
    one per paper cell nobody ran), the paper's value and the difference beside it.

    Parameters
    ----------
    results : fine-tuning results (``finetune.results`` frame: one row per fold, ``ua`` a
        fraction 0-1). Uses ``stage1_corpus``/``stage2_corpus`` when present, else
        ``source_corpus``/``train_corpus`` with ``two_stage``.
    reading : ``two_stage_reading`` (``text``, ``source-target``, ``authors``): which run fills
        each 2-stg cell; a run can fill two cells under ``text`` (one row per cell).
    alignment : ``printed`` or ``logged`` (see the module docstring).
    demo : the results come from synthetic data: paper values stay for reference but no
        difference is computed and ``comparison`` says "not comparable: demo".
    all_cells : also list every paper cell no condition fills (ours empty).
    models : our model alias -> the paper's (``w2v2-cn``/``w2v2-de``) when the names differ.

    Returns
    -------
    :data:`TABLE_ONE_COLUMNS` then the protocol columns present in ``results``. ``source`` is
    the stage-1 language (the Source of a two-stage run is its stage-1 corpus's language),
    ``stage2`` the stage-2 language (null: one stage), ``paper_source`` the Source as printed
    in the paper (it differs from ``source`` where the reading trains first on another
    language, e.g. row 9 under ``text``), ``ua_pct`` the mean over folds (%),
    ``ua_std_pct`` the sample std over folds (%, null for one fold), ``diff_pct`` = ``ua_pct
    - paper_ua_pct`` (percentage points). Rows: the paper's cells in printed order, then the
    conditions that fill no cell.
    """
    cells = table_one_cells(reading, alignment)
    ours = _conditions(results) if results.height else None
    alias = dict(models or {})
    filled: dict[int, list[dict]] = {}
    loose: list[dict] = []
    protocol = [c for c in PROTOCOL_COLUMNS if ours is not None and c in ours.columns]
    for cond in (ours.iter_rows(named=True) if ours is not None else ()):
        lora, ba_wg = _ticks(cond["strategy"])
        base = {
            "model": cond["model"], "setting": cond["setting"], "source": cond["stage1_language"],
            "stage2": cond["stage2_language"], "target": cond["test_language"], "lora": lora, "ba_wg": ba_wg,
            "two_stage": cond["two_stage"], "strategy": cond["strategy"], "scope": cond["scope"],
            "layer": cond["layer"], "n_folds": cond["n_folds"], "ua_pct": cond["ua_pct"],
            "ua_std_pct": cond["ua_std_pct"], "stage1_corpus": cond["stage1_corpus"],
            "stage2_corpus": cond["stage2_corpus"], "test_corpus": cond["test_corpus"],
            **{c: cond[c] for c in protocol},
        }
        paper_model = alias.get(cond["model"], cond["model"])
        match = cells.filter(
            (pl.col("model") == paper_model) & (pl.col("strategy") == cond["strategy"])
            & (pl.col("two_stage") == cond["two_stage"]) & (pl.col("run_stage1") == cond["stage1_language"])
            & (pl.col("run_test") == cond["test_language"]) & pl.col("impossible").is_null()
            & (pl.col("run_stage2").eq_missing(cond["stage2_language"])))
        if match.is_empty():
            loose.append({**base, "row": None, "cell": None, "paper_source": None, "paper_ua_pct": None, "diff_pct": None,
                          "comparison": "no paper cell"})
            continue
        for cell in match.iter_rows(named=True):  # text reading: one run can fill two cells
            paper = cell["paper_ua_pct"]
            row = {**base, "row": cell["row"], "cell": cell["cell"], "setting": cell["setting"],
                   "paper_source": cell["source"], "paper_ua_pct": paper}
            if demo:
                row.update(diff_pct=None, comparison="not comparable: demo")
            elif paper is None:
                row.update(diff_pct=None, comparison=f"no published value under alignment '{alignment}'")
            else:
                row.update(diff_pct=cond["ua_pct"] - paper, comparison="")
            filled.setdefault(cell["row"], []).append(row)
    out_rows: list[dict] = []
    for cell in cells.iter_rows(named=True):
        if cell["row"] in filled:
            out_rows += filled[cell["row"]]
        elif all_cells:
            out_rows.append({
                "row": cell["row"], "cell": cell["cell"], "model": cell["model"], "setting": cell["setting"],
                "source": cell["run_stage1"], "stage2": cell["run_stage2"], "target": cell["target"],
                "paper_source": cell["source"],
                "lora": cell["lora"], "ba_wg": cell["ba_wg"], "two_stage": cell["two_stage"],
                "strategy": cell["strategy"], "scope": None, "layer": None, "n_folds": 0, "ua_pct": None,
                "ua_std_pct": None, "paper_ua_pct": cell["paper_ua_pct"], "diff_pct": None,
                "comparison": cell["impossible"] or ("not comparable: demo" if demo else "not run"),
                "stage1_corpus": None, "stage2_corpus": None, "test_corpus": None, **{c: None for c in protocol},
            })
    out_rows += loose
    schema = {"row": pl.Int64, "cell": pl.Utf8, "model": pl.Utf8, "setting": pl.Utf8, "source": pl.Utf8,
              "stage2": pl.Utf8, "target": pl.Utf8, "paper_source": pl.Utf8, "lora": pl.Boolean, "ba_wg": pl.Boolean,
              "two_stage": pl.Boolean, "strategy": pl.Utf8, "scope": pl.Utf8, "layer": pl.Int64,
              "n_folds": pl.Int64, "ua_pct": pl.Float64, "ua_std_pct": pl.Float64, "paper_ua_pct": pl.Float64,
              "diff_pct": pl.Float64, "comparison": pl.Utf8, "stage1_corpus": pl.Utf8, "stage2_corpus": pl.Utf8,
              "test_corpus": pl.Utf8}
    if ours is not None:
        schema.update({c: ours.schema[c] for c in protocol})
    return pl.DataFrame(out_rows, schema=schema, orient="row") if out_rows else pl.DataFrame(schema=schema)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def format_ua(mean: float | None, std: float | None) -> str:
    """``"91.4 ± 1.2"`` (percent), ``"91.4"`` when there is no std (one fold), ``""`` when no run."""
    if mean is None:
        return ""
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


DISPLAY_COLUMNS: tuple[str, ...] = ("Model", "Setting", "Source", "Target", "LoRA", "BA+WG", "2-stg", "k", "UA %",
                                   "Paper UA %", "Diff (pp)", "Note")
"""Table I's columns as the paper prints them (plus ours beside the paper's)."""


def table_one_display(table: pl.DataFrame) -> pl.DataFrame:
    """Table I (from :func:`table_one`) in the paper's layout, as text cells: Model, Setting,
    Source (stage-1 language), Target, the LoRA / BA+WG / 2-stg ticks (the 2-stg tick names
    the stage-2 language), layer k, UA % (mean ± std over folds; one fold: no ±), the paper's
    UA % and the difference in percentage points, and a note (why a cell is not compared)."""
    rows = []
    for r in table.iter_rows(named=True):
        strategy = set((r.get("strategy") or "").split("+"))
        ba_wg = "✓" if r["ba_wg"] else ("BA" if "ba" in strategy else "WG" if "wg" in strategy else "")
        stage2 = f"✓ →{r['stage2'].upper()}" if r["two_stage"] and r.get("stage2") else ("✓" if r["two_stage"] else "")
        layer = "" if r.get("layer") is None else f"{r['layer']}{' (target layer)' if r.get('scope') == 'target-layer' else ''}"
        diff = r.get("diff_pct")
        rows.append((MODEL_LABELS.get(r["model"], r["model"]), r["setting"].capitalize(), (r["source"] or "").upper(),
                     (r["target"] or "").upper(), "✓" if r["lora"] else "", ba_wg, stage2, layer,
                     format_ua(r["ua_pct"], r["ua_std_pct"]), _pct(r.get("paper_ua_pct")),
                     "" if diff is None else f"{diff:+.1f}", r.get("comparison") or ""))
    return pl.DataFrame(rows, schema=dict.fromkeys(DISPLAY_COLUMNS, pl.Utf8), orient="row")


def table_one_markdown(table: pl.DataFrame) -> str:
    """Table I (from :func:`table_one`) as Markdown in the paper's layout
    (:func:`table_one_display`)."""
    shown = table_one_display(table)
    lines = ["| " + " | ".join(DISPLAY_COLUMNS) + " |",
             "| --- | --- | --- | --- | :-: | :-: | :-: | --: | --: | --: | --: | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in shown.iter_rows()]
    return "\n".join(lines) + "\n"


__all__ = [
    "ALIGNMENTS", "CELL_KEY", "PAPER_CORPORA", "PAPER_LANGUAGE_OF_MODEL", "PROTOCOL_COLUMNS", "TABLE_ONE_COLUMNS",
    "DISPLAY_COLUMNS", "TWO_STAGE_READINGS", "cell_id", "format_ua", "table_one", "table_one_cell_keys",
    "table_one_cells", "table_one_display", "table_one_markdown", "table_one_runs",
]
