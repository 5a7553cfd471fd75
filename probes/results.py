"""Results of the layer-wise analysis: the table, predictions, summary and best layers.

One row per (model, setting, train corpus, test corpus, layer, fold) with the metrics of
:func:`probes.metrics.classification_metrics` and the provenance that ties it to its inputs
(:data:`RESULT_COLUMNS`). Per-utterance predictions go to ``predictions.parquet``
(:data:`PREDICTION_COLUMNS`). The best layer per model and setting (highest UA averaged over
folds and corpora) goes to ``runs_root()/probes/best_layers.json`` as
``{model: {setting: layer}}``, read back by :func:`best_layer` (``finetune --layer best``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from featstore.io import atomic_write, atomic_write_text
from featstore.manifest import CANONICAL_EMOTIONS
from featstore.paths import runs_root

_CLASS_METRICS = [f"{m}_{c}" for m in ("precision", "recall", "f1") for c in CANONICAL_EMOTIONS]
RESULT_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.Utf8, "setting": pl.Utf8, "train_corpus": pl.Utf8, "test_corpus": pl.Utf8,
    "layer": pl.Int64, "fold": pl.Int64, "head": pl.Utf8,
    "ua": pl.Float64, "wa": pl.Float64, "macro_f1": pl.Float64,
    **{name: pl.Float64 for name in _CLASS_METRICS},
    "confusion": pl.Utf8, "epochs": pl.Int64, "best_epoch": pl.Int64,
    "best_val_loss": pl.Float64, "best_val_acc": pl.Float64,
    "n_train": pl.Int64, "n_valid": pl.Int64, "n_test": pl.Int64,
    "cache_path": pl.Utf8, "cache_fingerprint": pl.Utf8,
    "test_cache_path": pl.Utf8, "test_cache_fingerprint": pl.Utf8,
    "model_fingerprint": pl.Utf8, "manifest_fingerprint": pl.Utf8, "test_manifest_fingerprint": pl.Utf8,
    "fold_scheme": pl.Utf8, "test_fold_scheme": pl.Utf8, "seed": pl.Int64, "config_json": pl.Utf8,
}
"""Columns and types of the results table. ``confusion`` is a JSON list of rows of counts
(row = true label, order A H N S); the ``cache_*``/``manifest_*``/``fold_scheme`` columns
describe the training corpus, their ``test_`` twins the test corpus."""
RESULT_COLUMNS: tuple[str, ...] = tuple(RESULT_SCHEMA)

PREDICTION_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.Utf8, "setting": pl.Utf8, "train_corpus": pl.Utf8, "test_corpus": pl.Utf8,
    "layer": pl.Int64, "fold": pl.Int64, "utt_id": pl.Utf8, "true": pl.Utf8, "pred": pl.Utf8,
    **{f"prob_{c}": pl.Float32 for c in CANONICAL_EMOTIONS},
}
"""Columns of ``predictions.parquet``: one row per test utterance of every head; ``true`` and
``pred`` are label names, ``prob_<emotion>`` the head's softmax probabilities."""
PREDICTION_COLUMNS: tuple[str, ...] = tuple(PREDICTION_SCHEMA)

BEST_LAYERS_FILE = "best_layers.json"


def make_row(key: Mapping[str, object], metrics: Mapping[str, object], extra: Mapping[str, object]) -> dict:
    """One results row from its key (model, setting, corpora, layer, fold, head), the output
    of ``classification_metrics`` and the rest (epochs, sizes, provenance...)."""
    row = {**key, **{k: v for k, v in metrics.items() if k != "confusion"}, **extra}
    row["confusion"] = json.dumps(metrics["confusion"])
    missing = [c for c in RESULT_COLUMNS if c not in row]
    if missing:
        raise ValueError(f"results row lacks {missing}")
    return {c: row[c] for c in RESULT_COLUMNS}


def results_frame(rows: Sequence[Mapping[str, object]]) -> pl.DataFrame:
    """Rows as a typed table, sorted by model, setting, corpora, layer and fold."""
    frame = pl.DataFrame(list(rows), schema=RESULT_SCHEMA) if rows else pl.DataFrame(schema=RESULT_SCHEMA)
    return frame.sort(["model", "setting", "train_corpus", "test_corpus", "layer", "fold"])


def confusions(frame: pl.DataFrame) -> np.ndarray:
    """Count confusion matrices of every row: ``(n_rows, 4, 4)`` int64 (row = true label)."""
    return np.array([json.loads(s) for s in frame["confusion"].to_list()], dtype=np.int64).reshape(-1, 4, 4)


def load_results(path: str | Path) -> pl.DataFrame:
    """Read a results table (parquet or CSV) and check its columns."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no results table here")
    try:
        frame = pl.read_csv(path) if path.suffix.lower() == ".csv" else pl.read_parquet(path)
    except pl.exceptions.PolarsError as err:
        raise ValueError(f"{path}: cannot read the results table ({err})") from err
    missing = [c for c in ("model", "setting", "test_corpus", "layer", "fold", "ua") if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a probes results table (missing {missing})")
    return frame


def summarise(frame: pl.DataFrame) -> pl.DataFrame:
    """Mean and standard deviation (ddof 1; 0 for one fold) over folds per layer.

    Returns columns model, setting, train_corpus, test_corpus, layer, n_folds, ua_mean,
    ua_std, wa_mean, wa_std, macro_f1_mean, macro_f1_std.
    """
    keys = ["model", "setting", "train_corpus", "test_corpus", "layer"]
    aggs = [pl.len().alias("n_folds")]
    for m in ("ua", "wa", "macro_f1"):
        aggs += [pl.col(m).mean().alias(f"{m}_mean"), pl.col(m).std(ddof=1).fill_null(0.0).alias(f"{m}_std")]
    return frame.group_by(keys).agg(aggs).sort(keys)


def best_layer_table(frame: pl.DataFrame, min_layer: int = 0) -> pl.DataFrame:
    """One row per model and setting: the best ``layer`` (among layers >= ``min_layer``)
    and its ``ua_mean`` (UA averaged over folds and over the setting's corpora; ties -> the
    lower layer)."""
    per = (frame.filter(pl.col("layer") >= min_layer).group_by(["model", "setting", "layer"]).agg(pl.col("ua").mean().alias("ua_mean"))
           .sort(["model", "setting", "ua_mean", "layer"], descending=[False, False, True, False]))
    return per.group_by(["model", "setting"], maintain_order=True).first().sort(["model", "setting"])


def best_layers(frame: pl.DataFrame, min_layer: int = 1) -> dict[str, dict[str, int]]:
    """``{model: {setting: layer}}`` from :func:`best_layer_table`: by default the best
    transformer layer (k >= 1), the layer fine-tuning starts from, since hidden state 0
    (the transformer's input) leaves no encoder layer to adapt."""
    out: dict[str, dict[str, int]] = {}
    for row in best_layer_table(frame, min_layer).iter_rows(named=True):
        out.setdefault(row["model"], {})[row["setting"]] = int(row["layer"])
    return out


def best_layers_path(root: str | Path | None = None) -> Path:
    """``runs_root(root)/probes/best_layers.json``."""
    return runs_root(root) / "probes" / BEST_LAYERS_FILE


def write_best_layers(best: Mapping[str, Mapping[str, int]], path: str | Path, merge: bool = True) -> Path:
    """Write ``best`` to ``path`` atomically; with ``merge`` keep entries of other models and
    settings already there."""
    path = Path(path)
    data: dict[str, dict[str, int]] = {}
    if merge and path.exists():
        data = _read_best_layers(path)
    for model, per in best.items():
        data.setdefault(model, {}).update({s: int(v) for s, v in per.items()})
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def _read_best_layers(path: Path) -> dict[str, dict[str, int]]:
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path}: not a best-layers JSON file ({err}); delete it or rerun `probes layerwise`") from err
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: not a best-layers JSON file (expected {{model: {{setting: layer}}}})")
    return data


BEST_SETS_FILE = "best_layer_sets.json"
LAYER_RULES: dict[str, str] = {"best": "best", "best-smallest": "smallest-in-set"}
"""``--layer`` values that read the probes (finetune, study) -> the ``rule`` of :func:`best_layer`."""


def best_sets_path(root: str | Path | None = None) -> Path:
    """``runs_root(root)/probes/best_layer_sets.json``: ``{model: {setting: [layers]}}``, the
    layers not significantly worse than the best (:mod:`probes.stats`)."""
    return runs_root(root) / "probes" / BEST_SETS_FILE


def write_best_sets(sets: Mapping[str, Mapping[str, Sequence[int]]], path: str | Path, merge: bool = True) -> Path:
    """Write best-layer sets to ``path`` atomically (with ``merge`` keeping other entries)."""
    path = Path(path)
    data: dict = json.loads(path.read_text()) if merge and path.exists() else {}
    for model, per in sets.items():
        data.setdefault(model, {}).update({s: sorted(int(v) for v in layers) for s, layers in per.items()})
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def best_layer(model: str, setting: str, root: str | Path | None = None, rule: str = "best") -> int:
    """The best layer of ``model`` in ``setting`` from ``runs_root(root)/probes/best_layers.json``.

    ``rule="smallest-in-set"`` instead returns the smallest layer k >= 1 of the best-layer
    set (``best_layer_sets.json``: layers not significantly worse than the best; a cheaper
    fine-tuning at the same accuracy), or the ``best`` layer when the set has no k >= 1.

    Raises
    ------
    FileNotFoundError : no layer-wise analysis has written the file yet
    KeyError : the file has no entry for this model and setting
    ValueError : the file is not a best-layers JSON file
    """
    if rule not in LAYER_RULES.values():
        raise ValueError(f"unknown best-layer rule {rule!r}; choose from {list(LAYER_RULES.values())}")
    if rule == "smallest-in-set":
        sets_path = best_sets_path(root)
        if not sets_path.exists():
            raise FileNotFoundError(f"{sets_path}: no best-layer sets yet; run `probes layerwise` with statistics")
        sets = json.loads(sets_path.read_text())
        if model not in sets or setting not in sets[model]:
            raise KeyError(f"{sets_path}: no best-layer set for model {model!r} in setting {setting!r}")
        above = [int(v) for v in sets[model][setting] if int(v) >= 1]
        if above:
            return min(above)
    path = best_layers_path(root)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no best layers yet; run `probes layerwise` first")
    data = _read_best_layers(path)
    if model not in data or setting not in data[model]:
        have = {m: sorted(v) for m, v in data.items()}
        raise KeyError(f"{path}: no best layer for model {model!r} in setting {setting!r} (have {have})")
    return int(data[model][setting])


def write_run(
    frame: pl.DataFrame, predictions: pl.DataFrame, out_dir: str | Path, config_json: str
) -> dict[str, Path]:
    """Write results (parquet + CSV), predictions, summary, best layers (JSON + CSV) and
    config to ``out_dir``.

    Every file is written under a temporary name and renamed, so an interrupted run never
    leaves a half-written table where a finished one was.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "results": out / "results.parquet", "results_csv": out / "results.csv",
        "predictions": out / "predictions.parquet", "summary": out / "summary.csv",
        "best_layers": out / BEST_LAYERS_FILE, "best_layers_csv": out / "best_layers.csv",
        "config": out / "config.json",
    }
    atomic_write(paths["results"], frame.write_parquet)
    atomic_write(paths["results_csv"], frame.write_csv)
    atomic_write(paths["predictions"], predictions.write_parquet)
    atomic_write(paths["summary"], summarise(frame).write_csv)
    write_best_layers(best_layers(frame), paths["best_layers"], merge=False)
    table = best_layer_table(frame).join(
        best_layer_table(frame, min_layer=1).select("model", "setting", pl.col("layer").alias("finetune_layer")),
        on=["model", "setting"], how="left")
    atomic_write(paths["best_layers_csv"], table.write_csv)
    atomic_write_text(paths["config"], json.dumps(json.loads(config_json), indent=2, sort_keys=True) + "\n")
    return paths


def predictions_for(
    predictions: pl.DataFrame | str | Path,
    model: str,
    setting: str,
    layer: int,
    utt_ids: Sequence[str] | None = None,
    test_corpus: str | None = None,
) -> pl.DataFrame:
    """Saved per-utterance predictions of one model, setting and layer (optionally only
    ``utt_ids`` / one test corpus), from a run's ``predictions.parquet``.

    In a 5-fold run each utterance is in the test part of one fold, so mono and trans give
    one row per utterance (from the head that never saw it); cross gives one per fold head
    that was tested on it.
    """
    frame = pl.read_parquet(predictions) if isinstance(predictions, (str, Path)) else predictions
    sel = frame.filter((pl.col("model") == model) & (pl.col("setting") == setting) & (pl.col("layer") == layer))
    if test_corpus is not None:
        sel = sel.filter(pl.col("test_corpus") == test_corpus)
    if utt_ids is not None:
        sel = sel.filter(pl.col("utt_id").is_in(list(utt_ids)))
    return sel


