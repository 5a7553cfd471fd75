"""The fine-tuning results table (the probes' columns plus the fine-tuning ones), the
per-utterance predictions, the epoch log and the Table-I-shaped summary (built by
:mod:`finetune.table_one`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from featstore.io import atomic_write
from finetune.table_one import (  # Table I lives there; re-exported for the existing callers
    TWO_STAGE_READINGS,
    table_one,
    table_one_cell_keys,
    table_one_cells,
    table_one_markdown,
)
from probes.results import PREDICTION_SCHEMA, RESULT_SCHEMA

FINETUNE_SCHEMA: dict[str, pl.DataType] = {
    "strategy": pl.Utf8, "two_stage": pl.Boolean, "scope": pl.Utf8, "source_corpus": pl.Utf8,
    "train_language": pl.Utf8, "test_language": pl.Utf8, "source_language": pl.Utf8,
    "source_manifest_fingerprint": pl.Utf8, "source_fold_scheme": pl.Utf8,
    "stage1_epochs": pl.Int64, "trainable_params": pl.Int64, "total_params": pl.Int64,
    "checkpoint": pl.Utf8,
    # which Table I cell a run is, and the effective protocol options (PROTOCOL_COLUMNS.md)
    "model_language": pl.Utf8, "stage1_corpus": pl.Utf8, "stage2_corpus": pl.Utf8,
    "stage1_valid_corpus": pl.Utf8, "stage2_valid_corpus": pl.Utf8, "protocol": pl.Utf8, "valid_corpus": pl.Utf8,
    "two_stage_schedule": pl.Utf8, "layer_means": pl.Utf8, "hidden_state": pl.Int64, "batch_size": pl.Int64,
    "train_mode_regularisation": pl.Boolean, "best_layer_by": pl.Utf8, "equal_loss_resets_patience": pl.Boolean,
    "switch_epoch": pl.Int64, "kept_epoch": pl.Int64, "kept_stage": pl.Utf8,
}
"""Columns added to ``probes.results.RESULT_SCHEMA``; ``source_*`` describe stage 1 of a
two-stage run (null otherwise). ``stage1_corpus`` is the corpus trained on first (the
source of a two-stage run, else the training corpus), ``stage2_corpus`` the second (null for
one stage); ``switch_epoch``/``kept_epoch`` count epochs over the whole run."""
RESULT_SCHEMA_FT: dict[str, pl.DataType] = {**RESULT_SCHEMA, **FINETUNE_SCHEMA}
PREDICTION_SCHEMA_FT: dict[str, pl.DataType] = {
    **PREDICTION_SCHEMA, "strategy": pl.Utf8, "two_stage": pl.Boolean, "scope": pl.Utf8,
}
LOG_SCHEMA: dict[str, pl.DataType] = {
    "fold": pl.Int64, "stage": pl.Utf8, "epoch": pl.Int64, "run_epoch": pl.Int64, "valid_corpus": pl.Utf8,
    "train_loss": pl.Float64, "train_acc": pl.Float64, "valid_loss": pl.Float64, "valid_acc": pl.Float64,
    "valid_ua": pl.Float64, "seconds": pl.Float64, "kept": pl.Boolean,
}
"""The epoch log: ``stage`` (train, stage1, stage2), ``epoch`` within the stage,
``run_epoch`` over the whole run, the corpus validated on, and ``kept`` on the epoch whose
weights were kept."""

def results_frame(rows: Sequence[Mapping[str, object]]) -> pl.DataFrame:
    """Typed results table (missing columns -> error)."""
    for row in rows:
        missing = [c for c in RESULT_SCHEMA_FT if c not in row]
        if missing:
            raise ValueError(f"results row lacks {missing}")
    data = [{c: row[c] for c in RESULT_SCHEMA_FT} for row in rows]
    return pl.DataFrame(data, schema=RESULT_SCHEMA_FT) if data else pl.DataFrame(schema=RESULT_SCHEMA_FT)


def write_finetune_run(out_dir: str | Path, results: pl.DataFrame, predictions: pl.DataFrame,
                       log: pl.DataFrame, config_json: str, *, two_stage_reading: str = "text",
                       demo: bool = False) -> dict[str, Path]:
    """Write results (parquet + CSV), predictions, epoch log, Table I (CSV + Markdown, UA in
    %, the paper's value beside each cell the run fills, see :func:`finetune.table_one.table_one`)
    and the config to ``out_dir``, each under a temporary name first."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = table_one(results, reading=two_stage_reading, demo=demo)
    paths = {
        "results": out / "results.parquet", "results_csv": out / "results.csv",
        "predictions": out / "predictions.parquet", "log": out / "epochs.csv",
        "table_one": out / "table_one.csv", "table_one_md": out / "table_one.md", "config": out / "config.json",
    }
    atomic_write(paths["results"], results.write_parquet)
    atomic_write(paths["results_csv"], results.write_csv)
    atomic_write(paths["predictions"], predictions.write_parquet)
    atomic_write(paths["log"], log.write_csv)
    atomic_write(paths["table_one"], table.write_csv)
    atomic_write(paths["table_one_md"], lambda p: Path(p).write_text(table_one_markdown(table)))
    text = json.dumps(json.loads(config_json), indent=2, sort_keys=True) + "\n"
    atomic_write(paths["config"], lambda p: Path(p).write_text(text))
    return paths


FOLD_PARTS_DIR = "fold-parts"
"""Where a run's per-fold parts wait to be gathered (``<run>/fold-parts/fold<k>-*.parquet``)."""


def fold_part_paths(out_dir: str | Path, fold: int) -> dict[str, Path]:
    """The three files of fold ``fold``'s part of a run (results, predictions, epoch log)."""
    base = Path(out_dir) / FOLD_PARTS_DIR
    return {k: base / f"fold{fold}-{k}.parquet" for k in ("results", "predictions", "epochs")}


def write_fold_part(out_dir: str | Path, fold: int, results: pl.DataFrame, predictions: pl.DataFrame,
                    log: pl.DataFrame) -> Path:
    """Write one fold's rows of a run (each file atomically; results last, so a part whose
    results file exists is whole); returns the results file's path."""
    paths = fold_part_paths(out_dir, fold)
    paths["results"].parent.mkdir(parents=True, exist_ok=True)
    atomic_write(paths["predictions"], predictions.write_parquet)
    atomic_write(paths["epochs"], log.write_parquet)
    return atomic_write(paths["results"], results.write_parquet)


def gather_fold_parts(out_dir: str | Path, folds: Sequence[int], config_json: str, **table_options: object
                      ) -> dict[str, Path]:
    """Join the parts of ``folds`` (in that order) and write the run with
    :func:`write_finetune_run`: the same files, rows and values as one run over all folds."""
    missing = [str(fold_part_paths(out_dir, f)["results"]) for f in folds
               if not fold_part_paths(out_dir, f)["results"].exists()]
    if missing:
        raise FileNotFoundError(f"fold parts not written yet: {', '.join(missing)}")
    parts = [fold_part_paths(out_dir, f) for f in folds]
    results = pl.concat([pl.read_parquet(p["results"]) for p in parts])
    predictions = pl.concat([pl.read_parquet(p["predictions"]) for p in parts])
    log = pl.concat([pl.read_parquet(p["epochs"]) for p in parts])
    return write_finetune_run(out_dir, results, predictions, log, config_json, **table_options)


__all__ = [
    "FINETUNE_SCHEMA", "FOLD_PARTS_DIR", "LOG_SCHEMA", "PREDICTION_SCHEMA_FT", "RESULT_SCHEMA_FT", "TWO_STAGE_READINGS",
    "results_frame", "table_one", "table_one_cell_keys", "table_one_cells", "table_one_markdown",
    "fold_part_paths", "gather_fold_parts", "write_finetune_run", "write_fold_part",
]
