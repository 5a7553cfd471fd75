"""Weighted-sum probes beside the layer-wise grid: one per (model, training corpus, fold).

SUPERB's featurizer under the paper's head: the probe's input is a softmax-weighted sum of
every hidden state of the cache, the weights learned jointly with the head
(:mod:`probes._weighted`). It trains from the cached pooled features (no SSL forward pass)
on the same folds, with the same protocol (``config.probe``: AdamW, epochs, batch size,
early stopping, seed) as the per-layer heads, and is tested on the same test corpora (mono,
cross, trans), so its UA sits beside the per-layer curve. The probes of all folds of a
training corpus train as one stack; the jobs go through the grid's own dispatcher.

Files written into the run directory (:func:`write_weighted`):

- ``weighted_results.parquet`` / ``.csv``: the columns of ``results.parquet``
  (:data:`probes.results.RESULT_COLUMNS`) with ``layer`` = :data:`WEIGHTED_LAYER` (-1);
- ``weighted_predictions.parquet``: per-utterance predictions (``layer`` = -1);
- ``weighted_summary.csv``: UA/WA/F1 mean and std over folds per condition;
- ``layer_weights.parquet`` / ``.csv``: :data:`WEIGHT_COLUMNS`, one row per (model,
  setting, training corpus, fold, layer) with the learned weight (a fraction; the weights
  of a fold sum to 1) and provenance; ``layer_weights.png`` / ``.svg`` plot them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from featstore.io import atomic_write, write_parquet
from featstore.manifest import CANONICAL_EMOTIONS
from probes import results as res
from probes._weighted import WeightedHead, WeightedTask, train_weighted
from probes.config import LayerwiseConfig
from probes.data import CorpusData, load_corpus
from probes.heads import HEADS

WEIGHTED_LAYER = -1
"""The ``layer`` of weighted-sum rows in ``weighted_results`` and ``weighted_predictions``."""

WEIGHT_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.Utf8, "setting": pl.Utf8, "train_corpus": pl.Utf8, "fold": pl.Int64, "layer": pl.Int64,
    "weight": pl.Float64, "epochs": pl.Int64, "best_epoch": pl.Int64,
    "cache_path": pl.Utf8, "cache_fingerprint": pl.Utf8, "model_fingerprint": pl.Utf8,
    "manifest_fingerprint": pl.Utf8, "fold_scheme": pl.Utf8, "seed": pl.Int64, "config_json": pl.Utf8,
}
"""Columns of ``layer_weights``: ``weight`` is the probe's softmax weight of hidden state
``layer`` (a fraction; a probe's weights sum to 1). A probe trained on a corpus serves
every setting tested with it (mono and cross share the heads of the model's own-language
corpus), so it appears once per such setting."""
WEIGHT_COLUMNS: tuple[str, ...] = tuple(WEIGHT_SCHEMA)


@dataclass
class WeightedRun:
    """What :func:`run_weighted` wrote: the tables and their paths."""

    results: pl.DataFrame
    predictions: pl.DataFrame
    weights: pl.DataFrame
    paths: dict[str, Path]


def applies(config: LayerwiseConfig) -> bool:
    """Whether ``config`` trains weighted-sum probes (on, and a gradient-trained head)."""
    return bool(config.weighted) and HEADS[config.probe.head].kind == "sgd"


def config_json(config: LayerwiseConfig) -> str:
    """The grid's config JSON with the weighted-sum settings added (recorded in every row)."""
    data = json.loads(config.to_json())
    data["weighted"] = {"lr_scale": config.weighted_lr_scale, "layer_marker": WEIGHTED_LAYER}
    return json.dumps(data, sort_keys=True)


def train_job_probes(train: CorpusData, folds: Sequence[int], config: LayerwiseConfig) -> list[WeightedHead]:
    """The weighted-sum probes of ``folds`` on ``train`` (all its loaded layers), one stack."""
    tasks = [WeightedTask(fold=f, train_rows=train.rows(f, "train"), valid_rows=train.rows(f, "valid"))
             for f in folds]
    return train_weighted(train.features, train.labels, tasks, config.probe, n_classes=len(CANONICAL_EMOTIONS),
                          logit_scale=config.weighted_lr_scale)


def mixed_view(data: CorpusData, head: WeightedHead) -> CorpusData:
    """``data`` with its features replaced by ``head``'s mix: one slot, ``layer`` -1."""
    return replace(data, features=head.mix(data.features).numpy()[None], layers=(WEIGHTED_LAYER,))


def evaluate_job(
    heads: Sequence[WeightedHead], train: CorpusData, corpora: dict[str, CorpusData],
    tests: Sequence[tuple[str, str]], config: LayerwiseConfig,
) -> tuple[list[dict], pl.DataFrame, list[dict]]:
    """Results rows, predictions and layer-weight rows of ``heads`` on every test of the job."""
    from probes.layerwise import evaluate_heads

    cfg = config_json(config)
    rows, preds = [], []
    for head in heads:
        view = mixed_view(train, head)
        for setting, test_corpus in tests:
            test = view if test_corpus == train.corpus else mixed_view(corpora[test_corpus], head)
            r, p = evaluate_heads([head.head], view, test, setting, config.probe, cfg)
            rows += r
            preds.append(p)
    weights = [
        {"model": train.model, "setting": setting, "train_corpus": train.corpus, "fold": head.fold,
         "layer": int(layer), "weight": float(w), "epochs": head.head.epochs, "best_epoch": head.head.best_epoch,
         **{k: train.provenance.get(k, "") for k in ("cache_path", "cache_fingerprint", "model_fingerprint",
                                                     "manifest_fingerprint", "fold_scheme")},
         "seed": config.probe.seed, "config_json": cfg}
        for head in heads for setting in dict.fromkeys(s for s, _ in tests)
        for layer, w in zip(train.layers, head.layer_weights, strict=True)
    ]
    return rows, pl.concat(preds), weights


def run_weighted_job(job: object, config: LayerwiseConfig) -> tuple[list[dict], pl.DataFrame, list[dict]]:
    """A worker's whole weighted-sum job (a :class:`probes.layerwise.TrainJob`): read the
    caches from their paths, train the fold probes as one stack, test them."""
    from probes.layerwise import limit_threads

    probe = config.probe
    with limit_threads(probe.threads_per_worker):
        names = {job.train_corpus, *(c for _, c in job.tests)}
        corpora = {name: load_corpus(job.model, name, config.cache_root, config.layers, config.n_folds, probe.stat)
                   for name in sorted(names)}
        train = corpora[job.train_corpus]
        heads = train_job_probes(train, job.folds, config)
        return evaluate_job(heads, train, corpora, job.tests, config)


def run_weighted(jobs: Sequence[object], config: LayerwiseConfig, out_dir: str | Path,
                 progress: bool = False) -> WeightedRun:
    """Train and test the weighted-sum probes of the grid's ``jobs`` (same workers as the
    grid) and write them into ``out_dir`` (see the module docstring)."""
    from probes.layerwise import dispatch

    outputs = dispatch(jobs, config, progress=progress, worker=run_weighted_job)
    frame = res.results_frame([row for rows, _, _ in outputs for row in rows])
    preds = pl.concat([p for _, p, _ in outputs]).sort(
        ["model", "setting", "train_corpus", "test_corpus", "fold", "utt_id"])
    weights = pl.DataFrame([w for _, _, ws in outputs for w in ws], schema=WEIGHT_SCHEMA).sort(
        ["model", "setting", "train_corpus", "fold", "layer"])
    paths = write_weighted(frame, preds, weights, out_dir, config)
    return WeightedRun(frame, preds, weights, paths)


def write_weighted(results: pl.DataFrame, predictions: pl.DataFrame, weights: pl.DataFrame,
                   out_dir: str | Path, config: LayerwiseConfig) -> dict[str, Path]:
    """Write the weighted-sum tables (parquet with provenance metadata, CSV) and the weight
    figure into ``out_dir``; returns their paths by name."""
    from probes.plot_weights import plot_layer_weights

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"what": "weighted-sum probes (SUPERB featurizer + the paper's head)", "layer_marker": WEIGHTED_LAYER,
            "seed": config.probe.seed, "config_json": config_json(config),
            "models": sorted(set(results["model"].to_list()))}
    paths = {"weighted_results": out / "weighted_results.parquet", "weighted_results_csv": out / "weighted_results.csv",
             "weighted_predictions": out / "weighted_predictions.parquet",
             "weighted_summary": out / "weighted_summary.csv",
             "layer_weights": out / "layer_weights.parquet", "layer_weights_csv": out / "layer_weights.csv"}
    write_parquet(results, paths["weighted_results"], metadata=meta)
    atomic_write(paths["weighted_results_csv"], results.write_csv)
    write_parquet(predictions, paths["weighted_predictions"], metadata=meta)
    atomic_write(paths["weighted_summary"], res.summarise(results).write_csv)
    write_parquet(weights, paths["layer_weights"], metadata=meta)
    atomic_write(paths["layer_weights_csv"], weights.write_csv)
    paths["layer_weights_png"], paths["layer_weights_svg"] = plot_layer_weights(weights, out)
    return paths
