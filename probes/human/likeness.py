"""Which layer errs like a human: agreement of each layer's probe with the listeners.

For each model, setting (and training corpus, head) and hidden layer, on the
listening-test stimuli the listener group of that setting heard:

- ``kappa``: Cohen's kappa between the model's answer and the group's MAJORITY answer per
  stimulus (unitless, -1..1; 0 = the agreement two raters with these answer rates reach
  by chance, 1 = the same answer on every stimulus). Equal to
  ``sklearn.metrics.cohen_kappa_score(majority, model, labels=labels)``;
- ``confusion_r``: Pearson's r between the row-normalised confusion matrices (row = true
  emotion) of the model and of the group's pooled answers on the same stimuli, flattened
  over the rows of the emotions the stimuli have (unitless, -1..1: do they confuse the
  same emotions with the same ones, whatever their accuracy);
- 95 % percentile intervals of both from one seeded bootstrap over stimuli (the resampling
  unit is the stimulus: a resample draws stimuli with replacement and takes every
  listener's answer and the model's answer on each). The same resamples serve every layer
  of a variant, so the curves' wiggles are comparable layer to layer. Vectorised: a
  resample is a row of stimulus counts ``W`` (B x n) and every count table is ``W @``
  per-stimulus one-hot tables;
- ``ua``: the model's UA per layer (fraction 0-1) over every pooled out-of-fold test
  prediction of the paired test corpora, the accuracy curve the likeness curve is read
  beside.

Majority answer and ties: the answer most of the group's listeners gave the stimulus.
A tie goes to the tied answer the group gave most often over all the stimuli of that
language (its answer bias), and a tie there to the first in label order (A H N S); the
table counts tied stimuli in ``n_ties``. The rule is deterministic and uses no model
answer and no true label.

Pairing (as :mod:`probes.human.compare` pairs Table III): a group on stimuli of its own
language is ``mono`` and goes with the ``mono`` model setting, a second language ``L2``
with ``trans``, any other language ``cross`` with ``cross``; the model is the one whose
pre-training language is the group's. A group's stimuli of several languages in the same
setting are pooled (``languages`` lists them).

Model answers come from the probes' saved predictions (``predictions.parquet`` of
``probes layerwise``: every head's out-of-fold predictions on its fold's test part, every
layer), not from :func:`probes.layerwise.predict_layer`: they are the answers of the very
heads whose UA makes the accuracy curve, so both curves describe the same models, and
reading them costs nothing where ``predict_layer`` would train the heads of every layer
again. A stimulus predicted by several folds' heads (``cross``: every fold's head is
tested on the other corpus) takes the arg-max of the mean probabilities, the rule of
:func:`probes.human.compare.match_predictions`.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from featstore.configs import check_fields
from featstore.errors import CrosslingError
from featstore.io import atomic_write, atomic_write_json, write_parquet
from probes.human.compare import (
    MODEL_SETTING,
    CompareConfig,
    match_predictions,
    resolved_group_languages,
)

TIE_RULE = ("majority answer of the group's listeners; a tie goes to the tied answer the group gave most often "
            "over all stimuli of that language, then to the first in label order")
"""The majority rule, as written into every table's provenance."""
PROVENANCE_FROM_RESULTS: tuple[str, ...] = (
    "model_fingerprint", "manifest_fingerprint", "test_manifest_fingerprint", "cache_fingerprint",
    "fold_scheme", "seed",
)
"""Columns taken from the probes' results table per (model, setting, train corpus)."""
SETTING_ORDER: tuple[str, ...] = ("mono", "cross", "trans")


class LikenessError(CrosslingError, ValueError):
    """Answers or predictions that give no human-likeness table; the message says why."""


@dataclass(frozen=True)
class LikenessConfig:
    """Options of :func:`human_likeness`.

    Attributes
    ----------
    n_resamples : bootstrap resamples over stimuli
    confidence : level of the percentile intervals (fraction)
    seed : seed of the bootstrap
    """

    n_resamples: int = field(default=2000, metadata={"help": "Bootstrap resamples over stimuli.", "min": 10})
    confidence: float = field(default=0.95, metadata={"help": "Interval level (fraction).", "gt": 0, "lt": 1})
    seed: int = field(default=0, metadata={"help": "Seed of the bootstrap.", "min": 0})

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class LikenessResult:
    """The table (one row per model variant, listener group and layer) and a report
    (tie rule, stimuli without a prediction, groups without a paired model)."""

    table: pl.DataFrame
    report: dict


# --------------------------------------------------------------------------- numbers


def kappa_from_counts(counts: np.ndarray) -> np.ndarray:
    """Cohen's kappa of agreement count tables ``(..., K, K)`` (rows one rater, columns
    the other): ``(p_o - p_e) / (1 - p_e)``; nan where ``p_e`` is 1 (both raters gave
    one and the same answer throughout) or a table is empty."""
    counts = np.asarray(counts, dtype=float)
    n = counts.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        po = np.trace(counts, axis1=-2, axis2=-1) / n
        pe = (counts.sum(axis=-1) * counts.sum(axis=-2)).sum(axis=-1) / n**2
        kappa = (po - pe) / (1.0 - pe)
    return np.where(np.isclose(pe, 1.0) | (n == 0), np.nan, kappa)


def pearson_last_axis(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r of ``a`` and ``b`` along their last axis (broadcast); nan where either
    is constant."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    da = a - a.mean(axis=-1, keepdims=True)
    db = b - b.mean(axis=-1, keepdims=True)
    num = (da * db).sum(axis=-1)
    den = np.sqrt((da**2).sum(axis=-1) * (db**2).sum(axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num / den
    return np.where(den > 1e-12, r, np.nan)


def _row_normalise_flat(counts: np.ndarray, k: int, rows: np.ndarray) -> np.ndarray:
    """``(..., K*K)`` counts -> row-normalised matrices flattened over ``rows`` only."""
    mats = counts.reshape(*counts.shape[:-1], k, k)
    sums = mats.sum(axis=-1, keepdims=True)
    norm = np.divide(mats, sums, out=np.zeros_like(mats, dtype=float), where=sums > 0)
    return norm[..., rows, :].reshape(*counts.shape[:-1], -1)


def bootstrap_weights(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """``(n_resamples, n)`` counts of each stimulus in each resample (rows sum to ``n``)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_resamples, n))
    flat = (draws + np.arange(n_resamples)[:, None] * n).ravel()
    return np.bincount(flat, minlength=n_resamples * n).reshape(n_resamples, n).astype(float)


def _onehot(idx: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k)[idx]


def likeness_curves(true: np.ndarray, model: np.ndarray, answer_counts: np.ndarray, majority: np.ndarray,
                    k: int, config: LikenessConfig = LikenessConfig()) -> dict[str, np.ndarray]:
    """Kappa and confusion r per layer with bootstrap intervals over stimuli.

    Parameters
    ----------
    true : (n,) true label index of each stimulus
    model : (L, n) the model's answer index per layer and stimulus
    answer_counts : (n, K) how many listeners gave each answer to each stimulus
    majority : (n,) the listeners' majority answer index
    k : number of labels

    Returns
    -------
    ``kappa``, ``kappa_lo``, ``kappa_hi``, ``confusion_r``, ``confusion_r_lo``,
    ``confusion_r_hi``: arrays of shape (L,), interval ends the percentiles
    ``(1 -/+ confidence) / 2`` of the resampled values (nan resamples left out).
    """
    true, majority = np.asarray(true), np.asarray(majority)
    model = np.atleast_2d(np.asarray(model))
    n = true.size
    t1, h1, p1 = _onehot(true, k), _onehot(majority, k), _onehot(model, k)
    # per-stimulus tables, flattened K*K: agreement (rows majority, columns model) and confusions
    agree = (h1[None, :, :, None] * p1[:, :, None, :]).reshape(model.shape[0], n, k * k)
    model_conf = (t1[None, :, :, None] * p1[:, :, None, :]).reshape(model.shape[0], n, k * k)
    human_conf = (t1[:, :, None] * np.asarray(answer_counts, dtype=float)[:, None, :]).reshape(n, k * k)
    rows = np.flatnonzero(t1.sum(axis=0) > 0)  # the emotions the stimuli have
    w = bootstrap_weights(n, config.n_resamples, config.seed)
    kappa = kappa_from_counts(agree.sum(axis=1).reshape(-1, k, k))
    kappa_b = kappa_from_counts(np.einsum("bn,lnc->lbc", w, agree).reshape(model.shape[0], -1, k, k))
    r = pearson_last_axis(_row_normalise_flat(model_conf.sum(axis=1), k, rows),
                          _row_normalise_flat(human_conf.sum(axis=0), k, rows)[None])
    r_b = pearson_last_axis(_row_normalise_flat(np.einsum("bn,lnc->lbc", w, model_conf), k, rows),
                            _row_normalise_flat(w @ human_conf, k, rows)[None])
    tail = 100 * (1 - config.confidence) / 2
    out = {"kappa": kappa, "confusion_r": r}
    for name, boot in (("kappa", kappa_b), ("confusion_r", r_b)):
        with warnings.catch_warnings():  # a layer whose every resample is undefined: nan, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = (np.nanpercentile(boot, q, axis=1) for q in (tail, 100 - tail))
        out[f"{name}_lo"], out[f"{name}_hi"] = lo, hi
    return out


def majority_answers(answers: pl.DataFrame, labels: Sequence[str]) -> pl.DataFrame:
    """One row per (group, stimulus): ``majority`` (see the module docstring for ties),
    ``n_answers``, ``tied`` and one count column ``n_<label>`` per answer label."""
    lab = list(labels)
    ans = answers.filter(pl.col("group").is_not_null() & pl.col("answer").is_in(lab))
    counts = (ans.group_by("group", "language", "stimulus").agg(
        *[(pl.col("answer") == c).sum().alias(f"n_{c}") for c in lab]).sort("group", "stimulus"))
    bias = ans.group_by("group", "language").agg(*[(pl.col("answer") == c).sum().alias(f"b_{c}") for c in lab])
    counts = counts.join(bias, on=["group", "language"], how="left")
    c = counts.select([f"n_{x}" for x in lab]).to_numpy().astype(np.int64)
    b = counts.select([f"b_{x}" for x in lab]).to_numpy().astype(np.int64)
    top = c == c.max(axis=1, keepdims=True) if c.size else np.zeros_like(c, dtype=bool)
    pick = np.where(top, b, -1).argmax(axis=1) if c.size else np.zeros(0, dtype=int)
    return counts.drop([f"b_{x}" for x in lab]).with_columns(
        pl.Series("majority", [lab[i] for i in pick], dtype=pl.Utf8),
        pl.Series("n_answers", c.sum(axis=1), dtype=pl.Int64),
        pl.Series("tied", top.sum(axis=1) > 1, dtype=pl.Boolean),
    )


def class_counts(predictions: pl.LazyFrame, by: Sequence[str]) -> pl.DataFrame:
    """Per ``by`` and true class: ``n`` predictions and ``n_correct`` of them (a small
    table, computed lazily, so a large ``predictions.parquet`` is never held whole)."""
    return (predictions.group_by(*by, "true")
            .agg(pl.len().alias("n"), (pl.col("true") == pl.col("pred")).sum().alias("n_correct")).collect())


def ua_from_counts(counts: pl.DataFrame, by: Sequence[str]) -> pl.DataFrame:
    """UA (fraction 0-1, mean recall over the true classes present) per ``by`` from
    :func:`class_counts` rows, pooling them over every other column."""
    recall = (counts.group_by(*by, "true").agg((pl.col("n_correct").sum() / pl.col("n").sum()).alias("r"))
              .sort(*by, "true"))  # one summation order: the same UA to the last bit on every run
    return recall.group_by(*by, maintain_order=True).agg(pl.col("r").mean().alias("ua"))


# --------------------------------------------------------------------------- the table


def human_likeness(
    answers: pl.DataFrame,
    predictions: pl.DataFrame | pl.LazyFrame,
    compare_config: CompareConfig = CompareConfig(),
    key: pl.DataFrame | None = None,
    config: LikenessConfig = LikenessConfig(),
    results: pl.DataFrame | None = None,
    simulated: str | None = None,
) -> LikenessResult:
    """The human-likeness per layer table.

    Parameters
    ----------
    answers : tidy answers (:func:`probes.human.ingest.ingest`)
    predictions : the probes' predictions of every layer (``predictions.parquet``: model,
        setting, train_corpus, test_corpus, layer, fold, utt_id, true, pred, prob_*);
        ``compare_config.prediction_filters`` apply except one on ``layer``; a LazyFrame
        (``pl.scan_parquet``) is read only for the stimuli and per-class counts; rows of
        fine-tuning (a non-null ``strategy``) are left out
    key : the stimuli heard; default: the distinct stimuli of ``answers``
    results : the probes' results table, for the provenance columns
    simulated : how the answers were simulated (None: people); marks every row

    Returns
    -------
    One row per model variant (model, setting, train_corpus, head), listener group and
    layer: model_language, listener_group, human_setting, languages, layer, n_stimuli,
    n_listeners, n_ties, kappa, kappa_lo, kappa_hi, confusion_r, confusion_r_lo,
    confusion_r_hi, ua (fraction), simulated, provenance and config_json.
    """
    if answers.is_empty():
        raise LikenessError("no answers to compare")
    lazy = predictions.lazy()
    columns = lazy.collect_schema().names()
    if "strategy" in columns:  # fine-tuning's rows: one adapted layer each, no layer-wise curve
        lazy = lazy.filter(pl.col("strategy").is_null())
    need = [c for c in ("utt_id", "pred", "model", "setting", "layer") if c not in columns]
    if need:
        raise LikenessError(f"predictions lack column(s) {need}: give the probes' predictions.parquet "
                            "(every layer) for the human-likeness table")
    if key is None:
        key = answers.select("stimulus", "corpus", "utt_id", "language",
                             pl.col("true").alias("emotion")).unique("stimulus", maintain_order=True)
    languages = sorted(set(answers["language"].to_list()) | set(key["language"].to_list()))
    mapping, _ = resolved_group_languages(answers, languages, compare_config)
    found = set(answers["true"].drop_nulls().to_list()) | set(answers["answer"].drop_nulls().to_list())
    labels = (*compare_config.labels, *sorted(found - set(compare_config.labels)))
    filters = {c: v for c, v in compare_config.prediction_filters.items() if c != "layer"}
    cc = dataclasses.replace(compare_config, group_languages=mapping, labels=labels, prediction_filters=filters)
    for col, value in filters.items():
        if col in columns:
            lazy = lazy.filter(pl.col(col).cast(pl.Utf8) == str(value))
    heard = lazy.filter(pl.col("utt_id").cast(pl.Utf8).is_in(key["utt_id"].cast(pl.Utf8).to_list())).collect()
    matched, match_report = match_predictions(heard, key, cc)
    corpus_col = next((c for c in ("test_corpus", "corpus") if c in columns), None)
    by = [c for c in ("model", "setting", "train_corpus", "head", corpus_col, "layer") if c in columns and c]
    class_table = class_counts(lazy, by) if "true" in columns else None
    base = [c for c in ("model", "setting", "train_corpus", "head") if c in matched.columns]
    majority = majority_answers(answers, labels)
    n_listeners = answers.filter(pl.col("group").is_not_null()).group_by("group").agg(
        pl.col("listener").n_unique().alias("n"))
    listeners_of = dict(n_listeners.iter_rows())
    index = {lab: i for i, lab in enumerate(labels)}
    rows, report = [], {"tie_rule": TIE_RULE, "matching": match_report, "skipped": [], "labels": list(labels)}
    for v_key, part in matched.group_by(*base, "model_language", maintain_order=True):
        var = dict(zip([*base, "model_language"], v_key, strict=True))
        for group in sorted(set(majority["group"].to_list())):
            if var["model_language"] != cc.group_language(group):
                continue
            langs = sorted(lang for lang in set(part["language"].to_list())
                           if MODEL_SETTING[cc.human_setting(group, lang)] == var["setting"])
            if not langs:
                continue
            rows += _variant_rows(var, group, langs, part, majority, class_table, corpus_col, cc, index, config,
                                  listeners_of.get(group, 0), report)
    if not rows:
        raise LikenessError("no model variant pairs with a listener group on the stimuli heard (check the models' "
                            "languages, the settings predicted and the stimuli's corpora and utt_ids)")
    table = pl.DataFrame(rows)
    table = _with_provenance(table, results, cc, config, simulated)
    return LikenessResult(table, report)


def _variant_rows(var: dict, group: str, langs: list[str], part: pl.DataFrame, majority: pl.DataFrame,
                  class_table: pl.DataFrame | None, corpus_col: str | None, cc: CompareConfig, index: dict[str, int],
                  config: LikenessConfig,
                  n_listeners: int, report: dict) -> list[dict]:
    labels = list(index)
    maj = majority.filter((pl.col("group") == group) & pl.col("language").is_in(langs))
    sub = part.filter(pl.col("language").is_in(langs) & pl.col("stimulus").is_in(maj["stimulus"].to_list()))
    layers = sorted(set(sub["layer"].to_list()))
    per_layer = sub.group_by("stimulus").agg(pl.col("layer").n_unique().alias("n"))
    complete = per_layer.filter(pl.col("n") == len(layers))["stimulus"].to_list()
    dropped = maj.height - len(complete)
    if dropped:
        report["skipped"].append({**{k: str(v) for k, v in var.items()}, "group": group,
                                  "stimuli_without_every_layer": dropped})
    if not complete:
        return []
    maj = maj.filter(pl.col("stimulus").is_in(complete)).sort("stimulus")
    stimuli = maj["stimulus"].to_list()
    truth = sub.unique("stimulus").sort("stimulus").filter(pl.col("stimulus").is_in(stimuli))
    true = np.array([index[t] for t in truth["true"].to_list()])
    grid = sub.filter(pl.col("stimulus").is_in(stimuli)).sort("layer", "stimulus")
    model = np.array([index.get(p, -1) for p in grid["pred"].to_list()]).reshape(len(layers), len(stimuli))
    if (model < 0).any():
        raise LikenessError(f"{var['model']}: predictions hold answers outside the labels {labels}")
    answer_counts = maj.select([f"n_{c}" for c in labels]).to_numpy()
    out = likeness_curves(true, model, answer_counts, np.array([index[m] for m in maj["majority"].to_list()]),
                          len(labels), config)
    ua = _accuracy_curve(var, sub, class_table, corpus_col)
    rows = []
    for i, layer in enumerate(layers):
        rows.append({**var, "listener_group": group,
                     "human_setting": cc.human_setting(group, langs[0]) if len(langs) == 1 else
                     "+".join(sorted({cc.human_setting(group, lang) for lang in langs})),
                     "languages": "+".join(langs), "layer": int(layer), "n_stimuli": len(stimuli),
                     "n_listeners": n_listeners, "n_ties": int(maj["tied"].sum()),
                     **{name: float(values[i]) for name, values in out.items()},
                     "ua": ua.get(int(layer), float("nan"))})
    return rows


def _accuracy_curve(var: dict, sub: pl.DataFrame, counts: pl.DataFrame | None,
                    corpus_col: str | None) -> dict[int, float]:
    """UA per layer over every test prediction of the variant on the paired test corpora."""
    if counts is None:
        return {}
    sel = counts
    for col in ("model", "setting", "train_corpus", "head"):
        if col in var and col in sel.columns:
            sel = sel.filter(pl.col(col) == var[col])
    if corpus_col is not None:
        sel = sel.filter(pl.col(corpus_col).is_in(sub["corpus"].unique().to_list()))
    return {int(r["layer"]): float(r["ua"]) for r in ua_from_counts(sel, ["layer"]).iter_rows(named=True)}


def _with_provenance(table: pl.DataFrame, results: pl.DataFrame | None, cc: CompareConfig,
                     config: LikenessConfig, simulated: str | None) -> pl.DataFrame:
    keys = [c for c in ("model", "setting", "train_corpus") if c in table.columns]
    probe_json = pl.lit(None, dtype=pl.Utf8).alias("probe_config_json")
    if results is not None and results.height:
        have = [c for c in PROVENANCE_FROM_RESULTS if c in results.columns]
        extra = ["config_json"] if "config_json" in results.columns else []
        prov = (results.select(*[k for k in keys if k in results.columns], *have, *extra)
                .unique([k for k in keys if k in results.columns], keep="first", maintain_order=True)
                .rename({"config_json": "probe_config_json"} if extra else {}))
        table = table.join(prov, on=[k for k in keys if k in results.columns], how="left")
    else:
        table = table.with_columns(probe_json)
    for col in PROVENANCE_FROM_RESULTS:
        if col not in table.columns:
            table = table.with_columns(pl.lit(None, dtype=pl.Int64 if col == "seed" else pl.Utf8).alias(col))
    cfg = {"likeness": dataclasses.asdict(config), "tie_rule": TIE_RULE,
           "labels": list(cc.labels), "group_languages": dict(cc.group_languages),
           "l2_languages": {k: list(v) for k, v in cc.l2_languages.items()},
           "model_languages": dict(cc.model_languages), "filters": dict(cc.prediction_filters)}
    return table.with_columns(
        pl.lit(simulated is not None).alias("simulated"),
        pl.lit(config.seed).alias("bootstrap_seed"), pl.lit(config.n_resamples).alias("n_resamples"),
        pl.lit(config.confidence).alias("confidence"),
        pl.lit(json.dumps(cfg, sort_keys=True)).alias("config_json"),
    ).sort([*keys, "listener_group", "layer"])


def best_layers(table: pl.DataFrame) -> pl.DataFrame:
    """One row per model variant and listener group: the layer of the highest kappa (ties
    to the lower layer) with its interval, the layer of the highest confusion r, and the
    layer of the highest UA, so the most human-like layer reads beside the most accurate
    one; ``simulated``, the provenance and ``config_json`` carried over."""
    keys = [c for c in ("model", "setting", "train_corpus", "head", "listener_group", "languages")
            if c in table.columns]
    keep = [c for c in ("n_stimuli", "n_listeners", "simulated", *PROVENANCE_FROM_RESULTS, "bootstrap_seed",
                        "n_resamples", "config_json") if c in table.columns]

    def top(col: str, extra: Sequence[str]) -> pl.DataFrame:
        return (table.sort([*keys, col, "layer"], descending=[*([False] * len(keys)), True, False], nulls_last=True)
                .group_by(keys, maintain_order=True).first()
                .select(*keys, pl.col("layer").alias(f"{col}_layer"), col, *extra))

    out = top("kappa", ["kappa_lo", "kappa_hi", *keep])
    out = out.join(top("confusion_r", ["confusion_r_lo", "confusion_r_hi"]), on=keys, how="left", nulls_equal=True)
    out = out.join(top("ua", []), on=keys, how="left", nulls_equal=True)
    first = [*keys, "kappa_layer", "kappa", "kappa_lo", "kappa_hi", "confusion_r_layer", "confusion_r",
             "confusion_r_lo", "confusion_r_hi", "ua_layer", "ua"]
    return out.select(*first, *[c for c in out.columns if c not in first]).sort(keys)


def save_likeness(result: LikenessResult, out_dir: str | Path, provenance: Mapping,
                  simulated: str | None = None) -> dict[str, Path]:
    """Write ``likeness.parquet`` (provenance in its ``crossling`` metadata, with the field
    ``simulated`` when the answers were), ``likeness.csv``, the summary
    ``likeness_best.parquet``/``.csv`` (:func:`best_layers`), ``likeness.json`` (report and
    provenance) and the figure ``human_likeness.png``/``.svg`` into ``out_dir``."""
    from probes.human.figures import likeness_figure

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {**dict(provenance), "tie_rule": TIE_RULE}
    if simulated:
        meta["simulated"] = simulated
    if simulated:  # every row says so, whichever call marked it
        result = LikenessResult(result.table.with_columns(pl.lit(True).alias("simulated")), result.report)
    best = best_layers(result.table)
    paths = {"likeness": write_parquet(result.table, out_dir / "likeness.parquet", metadata=meta),
             "likeness_csv": atomic_write(out_dir / "likeness.csv", result.table.write_csv),
             "likeness_best": write_parquet(best, out_dir / "likeness_best.parquet", metadata=meta),
             "likeness_best_csv": atomic_write(out_dir / "likeness_best.csv", best.write_csv)}
    # wrapped: a long note must not widen the figure past the report's column
    note = textwrap.fill(f"SIMULATED LISTENERS ({simulated})", 110) if simulated else None
    made = likeness_figure(result.table, out_dir / "human_likeness", note=note)
    if made:
        paths["likeness_figure"] = made[0]
    paths["likeness_json"] = atomic_write_json(out_dir / "likeness.json", {
        "provenance": meta, "report": result.report, "files": {k: str(v) for k, v in paths.items()}})
    return paths


def write_likeness(answers: pl.DataFrame, predictions: pl.DataFrame | pl.LazyFrame, out_dir: str | Path,
                   compare_config: CompareConfig = CompareConfig(), key: pl.DataFrame | None = None,
                   results: pl.DataFrame | None = None, provenance: Mapping | None = None,
                   simulated: str | None = None, config: LikenessConfig = LikenessConfig()) -> dict[str, Path]:
    """:func:`human_likeness` then :func:`save_likeness`: the one call the command, the
    study and the demo make."""
    result = human_likeness(answers, predictions, compare_config, key, config, results, simulated)
    return save_likeness(result, out_dir, provenance or {}, simulated)


__all__ = ["best_layers", "LikenessConfig", "LikenessError", "LikenessResult", "TIE_RULE", "bootstrap_weights",
           "human_likeness", "kappa_from_counts", "likeness_curves", "majority_answers", "pearson_last_axis",
           "class_counts", "ua_from_counts", "save_likeness", "write_likeness", "write_likeness_from_run"]


def write_likeness_from_run(answers: pl.DataFrame, probes_dir: str | Path, out_dir: str | Path,
                            compare_config: CompareConfig = CompareConfig(), key: pl.DataFrame | None = None,
                            provenance: Mapping | None = None, simulated: str | None = None,
                            config: LikenessConfig = LikenessConfig()) -> dict[str, Path]:
    """:func:`write_likeness` from a ``probes layerwise`` run folder: its
    ``predictions.parquet`` (scanned lazily) and, for the provenance columns, its
    ``results.parquet``; the two files' sha256 join ``provenance``. The study's one call.
    When no table can be made (no model pairs with a listener group), ``likeness.json``
    says why (``not_written``) and nothing else is written: the human step still stands."""
    from probes.human.results import file_provenance

    probes_dir = Path(probes_dir)
    preds_path, results_path = probes_dir / "predictions.parquet", probes_dir / "results.parquet"
    if not preds_path.is_file():
        raise LikenessError(f"{preds_path}: no probes predictions here; run `probes layerwise` first")
    results = pl.read_parquet(results_path) if results_path.is_file() else None
    prov = {**dict(provenance or {}), "probe_predictions": file_provenance(preds_path),
            "probe_results": file_provenance(results_path) if results is not None else None}
    try:
        return write_likeness(answers, pl.scan_parquet(preds_path), out_dir, compare_config, key, results, prov,
                              simulated, config)
    except LikenessError as err:  # e.g. no model pairs with a group: Tables II/III stand, the reason is kept
        meta = {**prov, **({"simulated": simulated} if simulated else {})}
        return {"likeness_json": atomic_write_json(Path(out_dir) / "likeness.json",
                                                   {"provenance": meta, "not_written": str(err)})}
