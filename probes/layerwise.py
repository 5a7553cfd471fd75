"""The layer-wise analysis: every condition of the grid, from the cache, to a results table.

Heads are trained once per (model, training corpus): all layers and folds as one stacked
model (:mod:`probes._stacked`) or closed-form (``logreg``). The same heads are then tested
on every test corpus that uses them: the training corpus itself (``mono`` or ``trans``)
and, for a corpus in the model's language, every other-language corpus (``cross``; never
retrained). Jobs go to joblib workers (``loky``) or a Dask cluster; each worker reads the
cache from its path (arrays never travel) with one BLAS thread by default.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
import torch

from featstore.manifest import CANONICAL_EMOTIONS
from featstore.paths import cache_root, runs_root
from probes import results as res
from probes._logreg import fit_logreg
from probes._stacked import HeadTask, TrainedHead, train_stacked
from probes.config import LayerwiseConfig, ProbeConfig
from probes.data import CorpusData, ProbeDataError, corpus_language, load_corpus
from probes.heads import HEADS
from probes.metrics import classification_metrics
from probes.settings import conditions


@dataclass(frozen=True)
class TrainJob:
    """Heads of one model trained on one corpus, and where they are tested.

    Attributes
    ----------
    model, train_corpus : what the heads are trained on
    tests : ``(setting, test_corpus)`` pairs that share these heads
    folds : folds trained in this job
    """

    model: str
    train_corpus: str
    tests: tuple[tuple[str, str], ...]
    folds: tuple[int, ...]


@dataclass
class LayerwiseRun:
    """What :func:`run_layerwise` wrote. ``results`` is the table, ``paths`` its files."""

    results: pl.DataFrame
    predictions: pl.DataFrame
    out_dir: Path
    paths: dict[str, Path]
    best: dict[str, dict[str, int]]
    weighted: pl.DataFrame | None = None  # weighted-sum probes' results (probes.weighted), if trained


@contextlib.contextmanager
def limit_threads(n_threads: int) -> Iterator[None]:
    """Limit BLAS/OpenMP pools and torch's intra-op threads, restoring them after."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads):
            yield
    finally:
        torch.set_num_threads(before)


def train_heads(data: CorpusData, folds: Sequence[int], probe: ProbeConfig) -> list[TrainedHead]:
    """Train one head per (layer of ``data``, fold), all layers and folds together.

    Returns heads ordered fold-major, layer-minor.
    """
    tasks = [
        HeadTask(slot=slot, layer=layer, fold=fold,
                 train_rows=data.rows(fold, "train"), valid_rows=data.rows(fold, "valid"))
        for fold in folds for slot, layer in enumerate(data.layers)
    ]
    if HEADS[probe.head].kind == "closed":
        return fit_logreg(data.features, data.labels, tasks, probe, n_classes=len(CANONICAL_EMOTIONS))
    return train_stacked(data.features, data.labels, tasks, probe, n_classes=len(CANONICAL_EMOTIONS))


def evaluate_heads(
    heads: Sequence[TrainedHead],
    train: CorpusData,
    test: CorpusData,
    setting: str,
    probe: ProbeConfig,
    config_json: str,
) -> tuple[list[dict], pl.DataFrame]:
    """Test every head on its fold's test part of ``test``: results rows and predictions."""
    rows, preds = [], []
    for head in heads:
        test_rows = test.rows(head.fold, "test")
        if test_rows.size == 0:
            raise ProbeDataError(f"{test.corpus}: fold {head.fold} has no test utterance")
        proba = head.predict_proba(test.features[test.slot(head.layer), test_rows])
        pred = proba.argmax(1)
        true = test.labels[test_rows]
        key = {"model": train.model, "setting": setting, "train_corpus": train.corpus,
               "test_corpus": test.corpus, "layer": head.layer, "fold": head.fold, "head": probe.head}
        extra = {
            "epochs": head.epochs, "best_epoch": head.best_epoch, "best_val_loss": head.best_val_loss,
            "best_val_acc": head.best_val_acc, "n_train": int(train.rows(head.fold, "train").size),
            "n_valid": int(train.rows(head.fold, "valid").size), "n_test": int(test_rows.size),
            "cache_path": train.provenance.get("cache_path", ""),
            "cache_fingerprint": train.provenance.get("cache_fingerprint", ""),
            "test_cache_path": test.provenance.get("cache_path", ""),
            "test_cache_fingerprint": test.provenance.get("cache_fingerprint", ""),
            "model_fingerprint": train.provenance.get("model_fingerprint", ""),
            "manifest_fingerprint": train.provenance.get("manifest_fingerprint", ""),
            "test_manifest_fingerprint": test.provenance.get("manifest_fingerprint", ""),
            "fold_scheme": train.provenance.get("fold_scheme", ""),
            "test_fold_scheme": test.provenance.get("fold_scheme", ""),
            "seed": probe.seed, "config_json": config_json,
        }
        rows.append(res.make_row(key, classification_metrics(true, pred), extra))
        preds.append(_prediction_frame(key, [test.utt_ids[i] for i in test_rows], true, pred, proba))
    frame = pl.concat(preds) if preds else pl.DataFrame(schema=res.PREDICTION_SCHEMA)
    return rows, frame


def _prediction_frame(key: dict, utt_ids: list[str], true: np.ndarray, pred: np.ndarray, proba: np.ndarray) -> pl.DataFrame:
    n = len(utt_ids)
    cols = {name: [key[name]] * n for name in ("model", "setting", "train_corpus", "test_corpus", "layer", "fold")}
    cols |= {"utt_id": utt_ids, "true": [CANONICAL_EMOTIONS[i] for i in true],
             "pred": [CANONICAL_EMOTIONS[i] for i in pred]}
    cols |= {f"prob_{c}": proba[:, k] for k, c in enumerate(CANONICAL_EMOTIONS)}
    return pl.DataFrame(cols, schema=res.PREDICTION_SCHEMA)


def run_job_on_data(
    job: TrainJob, corpora: dict[str, CorpusData], probe: ProbeConfig, config_json: str
) -> tuple[list[dict], pl.DataFrame]:
    """Train the job's heads on ``corpora[job.train_corpus]`` and test them on each of
    ``job.tests`` (arrays already loaded)."""
    train = corpora[job.train_corpus]
    heads = train_heads(train, job.folds, probe)
    rows, preds = [], []
    for setting, test_corpus in job.tests:
        r, p = evaluate_heads(heads, train, corpora[test_corpus], setting, probe, config_json)
        rows += r
        preds.append(p)
    return rows, pl.concat(preds)


def run_job(job: TrainJob, config: LayerwiseConfig) -> tuple[list[dict], pl.DataFrame]:
    """A worker's whole job: read the caches from their paths, train, test."""
    probe = config.probe
    with limit_threads(probe.threads_per_worker):
        names = {job.train_corpus, *(c for _, c in job.tests)}
        corpora = {
            name: load_corpus(job.model, name, config.cache_root, config.layers, config.n_folds, probe.stat)
            for name in sorted(names)
        }
        return run_job_on_data(job, corpora, probe, config.to_json())


def plan_jobs(config: LayerwiseConfig) -> list[TrainJob]:
    """The jobs of the grid: one per (model, training corpus) (or per fold with
    ``split_folds``), each with every test corpus that shares its heads."""
    jobs: list[TrainJob] = []
    for model in config.models:
        langs, model_langs = {}, set()
        for corpus in config.corpora:
            langs[corpus], model_lang = corpus_language(model, corpus, config.cache_root)
            model_langs.add(model_lang)
        if len(model_langs) != 1:
            raise ProbeDataError(f"{model}: caches disagree on the model's language: {sorted(model_langs)}")
        grouped: dict[str, list[tuple[str, str]]] = {}
        for cond in conditions(model, model_langs.pop(), langs, config.settings):
            grouped.setdefault(cond.train_corpus, []).append((cond.setting, cond.test_corpus))
        folds = tuple(range(config.n_folds))
        for train_corpus, tests in grouped.items():
            parts = [(f,) for f in folds] if config.probe.split_folds else [folds]
            jobs += [TrainJob(model, train_corpus, tuple(tests), p) for p in parts]
    if not jobs:
        raise ProbeDataError(
            f"no condition of {list(config.settings)} applies to models {list(config.models)} "
            f"over corpora {list(config.corpora)} (check the languages)")
    return jobs


def dispatch(jobs: Sequence[TrainJob], config: LayerwiseConfig, progress: bool = False,
             worker: Callable | None = None) -> list:
    """Run ``worker(job, config)`` (default :func:`run_job`) for every job in this process
    (``n_jobs=1``), on loky workers or on a Dask cluster; returns the outputs in job order."""
    from joblib import Parallel, delayed, parallel_config

    probe = config.probe
    worker = worker or run_job
    calls = (delayed(worker)(job, config) for job in jobs)
    if probe.backend == "dask":
        from distributed import Client

        # the cluster's workers set the parallelism; joblib's n_jobs=1 would run in-process
        with Client(probe.scheduler) as _client, parallel_config(backend="dask"):
            return _collect(Parallel(n_jobs=-1, return_as="generator")(calls), len(jobs), progress)
    if probe.n_jobs == 1:
        return _collect((worker(job, config) for job in jobs), len(jobs), progress)
    parallel = Parallel(n_jobs=probe.n_jobs, backend="loky", return_as="generator")
    return _collect(parallel(calls), len(jobs), progress)


def _collect(outputs: Iterator, total: int, progress: bool) -> list:
    if not progress:
        return list(outputs)
    from featstore.console import StepProgress

    done = []
    with StepProgress("training probe heads", total, "jobs") as bar:
        for item in outputs:
            done.append(item)
            bar.advance()
    return done


def default_out_dir(config: LayerwiseConfig) -> Path:
    """``runs_root()/probes/<run_name>`` (run name: head, seed and a UTC time stamp)."""
    name = config.run_name or f"layerwise-{config.probe.head}-seed{config.probe.seed}-" + time.strftime(
        "%Y%m%d-%H%M%S", time.gmtime())
    return runs_root(config.cache_root) / "probes" / name


def run_layerwise(config: LayerwiseConfig, progress: bool = False) -> pl.DataFrame:
    """Run the grid of ``config`` and write the run (see :func:`run_layerwise_full`).

    Returns
    -------
    the results table (:data:`probes.results.RESULT_COLUMNS`).
    """
    return run_layerwise_full(config, progress=progress).results


def run_layerwise_full(config: LayerwiseConfig, progress: bool = False) -> LayerwiseRun:
    """Run the grid, write results/predictions/summary/best layers/Figure 1 into the run
    directory and update ``runs_root()/probes/best_layers.json`` (with ``config.write_best``)."""
    config = replace(config, cache_root=cache_root(config.cache_root).resolve())
    jobs = plan_jobs(config)
    outputs = dispatch(jobs, config, progress=progress)
    frame = res.results_frame([row for rows, _ in outputs for row in rows])
    return finish_layerwise(config, jobs, frame, pl.concat([p for _, p in outputs]), progress=progress)


def finish_layerwise(config: LayerwiseConfig, jobs: Sequence[TrainJob], frame: pl.DataFrame, preds: pl.DataFrame,
                     progress: bool = False) -> LayerwiseRun:
    """Everything after the per-layer heads, from their results ``frame`` and predictions
    ``preds`` (the rows of ``jobs``, in any order): write the run (results, predictions,
    summary, best layers), the weighted-sum probes, the statistics, Figure 1 and the global
    best layers. :func:`run_layerwise_full` and a cluster's gather job (``study``) share it."""
    config = replace(config, cache_root=cache_root(config.cache_root).resolve())
    frame = frame.sort(["model", "setting", "train_corpus", "test_corpus", "layer", "fold"])
    preds = preds.sort(["model", "setting", "train_corpus", "test_corpus", "layer", "fold", "utt_id"])
    out_dir = config.out_dir or default_out_dir(config)
    paths = res.write_run(frame, preds, out_dir, config.to_json())
    # weighted-sum probes (probes.weighted): their tables, weight figure and lines in Figure 1
    from probes import weighted as wsum

    weighted = wsum.run_weighted(jobs, config, out_dir, progress=progress) if wsum.applies(config) else None
    paths |= weighted.paths if weighted is not None else {}
    from probes.plot import plot_figure1

    stats = None
    if config.stats.enabled:  # intervals, paired tests, best-layer sets, gaps (probes.stats)
        from probes.stats.run import stats_of_grid

        stats, stats_paths = stats_of_grid(frame, preds, config, Path(out_dir))
        paths |= stats_paths
    paths["figure_png"], paths["figure_svg"] = plot_figure1(
        frame, out_dir, stats=stats, weighted=None if weighted is None else weighted.results)
    best = res.best_layers(frame)
    if config.write_best:
        paths["best_layers_global"] = res.write_best_layers(best, res.best_layers_path(config.cache_root))
        if stats is not None:
            paths["best_sets_global"] = res.write_best_sets(stats.best_sets, res.best_sets_path(config.cache_root))
    return LayerwiseRun(frame, preds, Path(out_dir), paths, best, weighted=None if weighted is None else weighted.results)


def predict_layer(
    model: str,
    train_corpus: str,
    test_corpus: str,
    layer: int,
    utt_ids: Sequence[str],
    probe: ProbeConfig | None = None,
    cache_root: str | Path | None = None,
    n_folds: int = 5,
) -> pl.DataFrame:
    """Per-utterance predictions of the ``layer`` heads for chosen ``utt_ids`` of ``test_corpus``.

    Trains the heads of ``layer`` on ``train_corpus`` (one per fold, as in the analysis, same
    seeds) and predicts each utterance with every fold head whose training and validation
    parts do not contain it, averaging their probabilities. With the same corpus for
    training and testing that is the one head of the fold where the utterance is test data.

    Returns
    -------
    DataFrame with utt_id, true, pred, ``prob_<emotion>`` and ``n_heads`` (heads averaged).
    """
    probe = probe or ProbeConfig()
    train = load_corpus(model, train_corpus, cache_root, [layer], n_folds, probe.stat)
    test = train if test_corpus == train_corpus else load_corpus(
        model, test_corpus, cache_root, [layer], n_folds, probe.stat)
    missing = [u for u in utt_ids if u not in set(test.utt_ids)]
    if missing:
        raise ProbeDataError(f"{model}/{test_corpus}: {len(missing)} utterance(s) not among the cached "
                             f"4-class ones, e.g. {missing[:3]}")
    with limit_threads(probe.threads_per_worker):
        heads = train_heads(train, sorted(train.folds), probe)
    position = {u: i for i, u in enumerate(test.utt_ids)}
    rows_needed = np.array([position[u] for u in utt_ids], dtype=np.int64)
    x = test.features[0, rows_needed]
    total = np.zeros((len(utt_ids), len(CANONICAL_EMOTIONS)), dtype=np.float64)
    count = np.zeros(len(utt_ids), dtype=np.int64)
    for head in heads:
        seen = np.zeros(len(utt_ids), dtype=bool)
        if test is train:
            used = set(train.rows(head.fold, "train")) | set(train.rows(head.fold, "valid"))
            seen = np.array([r in used for r in rows_needed])
        total[~seen] += head.predict_proba(x[~seen])
        count[~seen] += 1
    if (count == 0).any():
        bad = [u for u, c in zip(utt_ids, count, strict=True) if c == 0][:3]
        raise ProbeDataError(f"{model}/{train_corpus}: utterance(s) {bad} are in the training part of every fold")
    proba = total / count[:, None]
    cols = {"utt_id": list(utt_ids), "true": [CANONICAL_EMOTIONS[i] for i in test.labels[rows_needed]],
            "pred": [CANONICAL_EMOTIONS[i] for i in proba.argmax(1)]}
    cols |= {f"prob_{c}": proba[:, k].astype(np.float32) for k, c in enumerate(CANONICAL_EMOTIONS)}
    cols["n_heads"] = count
    return pl.DataFrame(cols)
