"""Listeners against models on the same stimuli (the paper's Tables II and III, t-tests).

- per listener and test language: UA, WA, macro-F1, per-class precision/recall/F1
  (:func:`probes.metrics.classification_metrics`);
- per group and test language: mean (and SD) of the per-listener UA (Table II) and the
  row-normalised confusion matrix of the pooled answers (Table III; every listener hears
  the same stimuli, so pooling weighs listeners equally when all finished);
- Welch two-sided t-tests on per-listener metrics between groups (same language) and
  between languages within a group. The paper used Welch for both, so both are Welch
  here although the second compares the same listeners twice;
- the paper's tests "across CN, DE and EN data": each listener's metric on the pooled
  answers of a set of languages (``CompareConfig.pooled_languages``, language
  ``cn+de+en``), then Welch between groups, in the same table and correction family;
- a corpus with fewer categories than the labels (TJD: negation ~ angry, expectation ~
  happy, question) is scored over the categories it has (UA = mean recall over the true
  classes present); a category kept as its own answer extends the labels;
- models on exactly the stimuli heard, paired by setting: a group whose language is the
  stimulus language is ``mono`` (native listeners <-> monolingual model of that
  language), a stimulus language in the group's second languages is ``L2`` (<-> the
  transfer-learning model), any other is ``cross`` (<-> the cross-lingual model). The
  model paired with a group is the one whose pre-training language is the group's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import polars as pl

from featstore.errors import CrosslingError
from featstore.manifest import CANONICAL_EMOTIONS
from probes.human.groups import normalise_group, resolve_group_languages
from probes.human.stats import CORRECTIONS, adjust_pvalues, welch_test
from probes.metrics import classification_metrics, row_normalise

MODEL_SETTING: dict[str, str] = {"mono": "mono", "cross": "cross", "L2": "trans"}
"""Human setting -> the model setting it is paired with (as in the paper's Table III)."""
VARIANT_COLUMNS: tuple[str, ...] = (
    "model", "setting", "train_corpus", "head", "strategy", "two_stage", "scope", "layer",
)
"""Prediction columns that tell model variants apart (those present are used). ``fold``
is not one: each stimulus is predicted by the fold(s) where it was test data."""
LANGUAGE_ORDER: tuple[str, ...] = ("cn", "de", "en", "tj")
"""Table II's column order (the paper's); other languages follow in alphabetical order."""


@dataclass(frozen=True)
class CompareConfig:
    """Options of :func:`compare`.

    Attributes
    ----------
    labels : class order (A H N S)
    correction : multiple-comparison correction over the whole t-test table
    metrics : per-listener metrics to test; empty = UA and every per-class P/R/F1
    group_languages : group -> its language code; a group not listed must be a language
        code of the stimuli or a built-in alias (``zh`` -> ``cn``, ...; see
        :mod:`probes.human.groups`), else :func:`compare` raises a ``GroupError``
    l2_languages : group -> second-language codes; key ``"*"`` applies to every group
        (the paper: English for both groups)
    model_languages : model alias -> pre-training language; else taken from the model
        registry or the alias suffix (``w2v2-cn`` -> ``cn``)
    prediction_filters : column -> value kept (e.g. ``{"layer": "7"}``), compared as text
    alpha : significance level for the ``significant`` column (corrected p)
    pooled_languages : language sets whose answers are pooled per listener for extra
        between-group tests (the paper: CN, DE and EN together); a set is used when every
        one of its languages is in the answers
    """

    labels: tuple[str, ...] = CANONICAL_EMOTIONS
    correction: str = "holm"
    metrics: tuple[str, ...] = ()
    group_languages: Mapping[str, str] = field(default_factory=dict)
    l2_languages: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {"*": ("en",)})
    model_languages: Mapping[str, str] = field(default_factory=dict)
    prediction_filters: Mapping[str, str] = field(default_factory=dict)
    alpha: float = 0.05
    pooled_languages: tuple[tuple[str, ...], ...] = (("cn", "de", "en"),)

    def __post_init__(self) -> None:
        for pool in self.pooled_languages:
            if len(set(pool)) < 2 or isinstance(pool, str):
                raise CompareError(f"pooled_languages: {pool!r} must name at least two languages")
        if self.correction not in CORRECTIONS:
            raise CompareError(f"correction must be one of {CORRECTIONS}, got {self.correction!r}")
        if not 0 < self.alpha < 1:
            raise CompareError(f"alpha must be in (0, 1), got {self.alpha}")
        bad = [m for m in self.metrics if m not in metric_names(self.labels)]
        if bad:
            raise CompareError(f"unknown metric(s) {bad}; choose from {metric_names(self.labels)}")

    def group_language(self, group: str) -> str:
        """The language code of ``group`` (explicit mapping, else the group name itself;
        :func:`compare` fills the mapping for every group first)."""
        mapping = {normalise_group(k): v for k, v in self.group_languages.items()}
        return mapping.get(normalise_group(group), group)

    def second_languages(self, group: str) -> tuple[str, ...]:
        return tuple(self.l2_languages.get(group, self.l2_languages.get("*", ())))

    def human_setting(self, group: str, language: str) -> str:
        """``mono``, ``L2`` or ``cross`` for a group listening to a language."""
        if language == self.group_language(group):
            return "mono"
        return "L2" if language in self.second_languages(group) else "cross"


class CompareError(CrosslingError, ValueError):
    """Answers or predictions that cannot be compared; the message says what is wrong."""


def resolved_group_languages(answers: pl.DataFrame, languages: Sequence[str],
                             config: CompareConfig) -> tuple[dict[str, str], list[str]]:
    """Group -> language code for every group of ``answers``: ``config.group_languages``,
    then the ``group_language`` column written by ingest, then the group name or a
    built-in alias; a ``GroupError`` for any other group."""
    explicit: dict[str, str] = {}
    if "group_language" in answers.columns:
        for group, lang in answers.select("group", "group_language").unique().iter_rows():
            if group is not None and lang:
                explicit[normalise_group(group)] = lang
    explicit |= {normalise_group(k): v for k, v in config.group_languages.items()}
    groups = [g for g in answers["group"].unique().to_list() if g is not None]
    return resolve_group_languages(groups, languages, explicit, where="answers")


def metric_names(labels: Sequence[str] = CANONICAL_EMOTIONS) -> list[str]:
    """Testable per-listener metrics: ``ua``, ``wa``, ``macro_f1`` and per-class P/R/F1."""
    return ["ua", "wa", "macro_f1"] + [f"{m}_{c}" for m in ("precision", "recall", "f1") for c in labels]


@dataclass
class CompareResult:
    """Tables of :func:`compare` (polars frames) and a report of the model matching.

    ``per_listener_pooled`` has the per-listener metrics on pooled languages (language
    ``cn+de+en``); ``labels`` the class order used (the config's plus any other category
    found in the answers)."""

    per_listener: pl.DataFrame
    group_summary: pl.DataFrame
    table2: pl.DataFrame
    confusions: pl.DataFrame
    ttests: pl.DataFrame
    model_metrics: pl.DataFrame
    table3: pl.DataFrame
    pairs: pl.DataFrame
    report: dict
    per_listener_pooled: pl.DataFrame = field(default_factory=pl.DataFrame)
    labels: tuple[str, ...] = CANONICAL_EMOTIONS


def _metrics_row(true: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict:
    m = classification_metrics(true, pred, labels)
    m["confusion"] = json.dumps(m["confusion"])
    m["n"] = len(true)
    return m


def listener_metrics(answers: pl.DataFrame, labels: Sequence[str] = CANONICAL_EMOTIONS) -> pl.DataFrame:
    """One row per listener and test language with every metric of
    :func:`probes.metrics.classification_metrics` (confusion as JSON counts)."""
    rows = []
    for (listener, group, language), part in answers.group_by(
        "listener", "group", "language", maintain_order=True
    ):
        rows.append({"listener": listener, "group": group, "language": language,
                     **_metrics_row(part["true"].to_list(), part["answer"].to_list(), labels)})
    return pl.DataFrame(rows).sort("group", "listener", "language", nulls_last=True)


def pool_name(languages: Sequence[str]) -> str:
    """``("cn", "de", "en")`` -> ``"cn+de+en"`` (the language of pooled rows)."""
    return "+".join(languages)


def pooled_listener_metrics(answers: pl.DataFrame, languages: Sequence[str],
                            labels: Sequence[str] = CANONICAL_EMOTIONS) -> pl.DataFrame:
    """One row per listener on the pooled answers of ``languages`` (e.g. recall of sad =
    the listener's sad stimuli of CN, DE and EN answered sad, over all of them), with
    ``language`` = ``cn+de+en``; columns as :func:`listener_metrics`."""
    part = answers.filter(pl.col("language").is_in(list(languages)))
    if part.is_empty():
        return pl.DataFrame()
    return listener_metrics(part.with_columns(pl.lit(pool_name(languages)).alias("language")), labels)


def group_summary(per_listener: pl.DataFrame, metric: str = "ua") -> pl.DataFrame:
    """Mean, SD and number of listeners of ``metric`` per group and language."""
    return (
        per_listener.filter(pl.col("group").is_not_null())
        .group_by("group", "language")
        .agg(pl.col(metric).mean().alias("mean"), pl.col(metric).std(ddof=1).alias("sd"),
             pl.len().alias("n_listeners"))
        .with_columns(pl.lit(metric).alias("metric"))
        .sort("group", "language")
    )


def order_languages(languages: Sequence[str]) -> list[str]:
    """Distinct languages in Table II's order: ``cn, de, en, tj`` first, then the others."""
    found = set(languages)
    return [lang for lang in LANGUAGE_ORDER if lang in found] + sorted(found - set(LANGUAGE_ORDER))


def table2(summary: pl.DataFrame, languages: Sequence[str] | None = None) -> pl.DataFrame:
    """Table II: rows = listener groups, one column per test language named ``<LANG>_ua``
    (``CN_ua``, ``DE_ua``, ``EN_ua``, ``TJ_ua``... in that order): mean UA over the group's
    listeners as a FRACTION 0-1, as the ``_ua`` in its name says (the report and the paper
    comparison turn it into % at the edge); a language a group did not hear is null."""
    if summary.is_empty():
        return pl.DataFrame(schema={"group": pl.Utf8})
    langs = list(languages or order_languages(summary["language"].to_list()))
    wide = summary.pivot(on="language", index="group", values="mean")
    cols = [c for c in langs if c in wide.columns]
    return wide.select("group", *cols).rename({c: table2_column(c) for c in cols}).sort("group")


def table2_column(language: str) -> str:
    """Table II's column for a test language: ``cn`` -> ``CN_ua`` (a fraction 0-1)."""
    return f"{language.upper()}_ua"


def group_confusions(answers: pl.DataFrame, labels: Sequence[str] = CANONICAL_EMOTIONS) -> pl.DataFrame:
    """Pooled counts and row-normalised confusion per group and language (long form:
    group, language, true, then one column per predicted label, plus ``n``)."""
    rows = []
    for (group, language), part in answers.filter(pl.col("group").is_not_null()).group_by(
        "group", "language", maintain_order=True
    ):
        counts = np.asarray(classification_metrics(part["true"].to_list(), part["answer"].to_list(),
                                                   labels)["confusion"], dtype=float)
        norm = row_normalise(counts)
        for i, lab in enumerate(labels):
            rows.append({"group": group, "language": language, "true": lab, "n": int(counts[i].sum()),
                         **{p: float(norm[i, j]) for j, p in enumerate(labels)}})
    if not rows:
        return pl.DataFrame(schema={"group": pl.Utf8, "language": pl.Utf8, "true": pl.Utf8, "n": pl.Int64,
                                    **dict.fromkeys(labels, pl.Float64)})
    # a stable sort keeps the true-label rows of each matrix in label order
    return pl.DataFrame(rows).sort("group", "language", maintain_order=True)


def welch_tests(per_listener: pl.DataFrame, config: CompareConfig = CompareConfig(),
                pooled: pl.DataFrame | None = None) -> pl.DataFrame:
    """Welch t-tests between groups (per language) and between languages (per group),
    and between groups on pooled languages (``pooled``: :func:`pooled_listener_metrics`
    rows, language ``cn+de+en``).

    Columns: comparison, metric, group_a, group_b, language_a, language_b, n_a, n_b,
    mean_a, mean_b, sd_a, sd_b, t, df, p, df_student, p_adj, correction, significant.
    ``t`` is ``a`` minus ``b``; ``df`` is Welch-Satterthwaite; ``p`` is the uncorrected
    two-sided p (what the paper prints) and ``p_adj`` the corrected one (``correction``
    over the whole table); ``df_student`` is ``n_a + n_b - 2``, the df the paper prints
    (``t(10)``). Untestable pairs (n < 2 or no variance) have nan and are left out of the
    correction.
    """
    metrics = list(config.metrics) or metric_names(config.labels)
    pl_g = per_listener.filter(pl.col("group").is_not_null())
    groups = sorted(set(pl_g["group"].to_list()))
    langs = sorted(set(pl_g["language"].to_list()))
    pooled_g = (pooled.filter(pl.col("group").is_not_null())
                if pooled is not None and pooled.height else None)
    rows = []

    def values(group: str, lang: str, metric: str) -> np.ndarray:
        sel = pl_g.filter((pl.col("group") == group) & (pl.col("language") == lang))
        return sel[metric].to_numpy().astype(float)

    for metric in metrics:
        for lang in langs:
            for ga, gb in combinations(groups, 2):
                a, b = values(ga, lang, metric), values(gb, lang, metric)
                if a.size and b.size:
                    rows.append({"comparison": "between_groups", "metric": metric, "group_a": ga,
                                 "group_b": gb, "language_a": lang, "language_b": lang,
                                 **welch_test(a, b)})
        for group in groups:
            for la, lb in combinations(langs, 2):
                a, b = values(group, la, metric), values(group, lb, metric)
                if a.size and b.size:
                    rows.append({"comparison": "between_languages", "metric": metric, "group_a": group,
                                 "group_b": group, "language_a": la, "language_b": lb,
                                 **welch_test(a, b)})
        if pooled_g is not None:
            for pool in sorted(set(pooled_g["language"].to_list())):
                sel = pooled_g.filter(pl.col("language") == pool)
                for ga, gb in combinations(sorted(set(sel["group"].to_list())), 2):
                    a = sel.filter(pl.col("group") == ga)[metric].to_numpy().astype(float)
                    b = sel.filter(pl.col("group") == gb)[metric].to_numpy().astype(float)
                    rows.append({"comparison": "between_groups", "metric": metric, "group_a": ga,
                                 "group_b": gb, "language_a": pool, "language_b": pool,
                                 **welch_test(a, b)})
    if not rows:
        return pl.DataFrame()
    frame = pl.DataFrame(rows)
    adj = adjust_pvalues(frame["p"].to_numpy(), config.correction)
    return frame.with_columns(
        (pl.col("n_a") + pl.col("n_b") - 2).cast(pl.Int64).alias("df_student"),
        pl.Series("p_adj", adj), pl.lit(config.correction).alias("correction"),
        pl.Series("significant", [bool(x < config.alpha) if not np.isnan(x) else False for x in adj]),
        pl.col("n_a").cast(pl.Int64), pl.col("n_b").cast(pl.Int64),
    )


def _model_language(model: str, config: CompareConfig, languages: set[str]) -> str | None:
    if model in config.model_languages:
        return config.model_languages[model]
    try:
        from featstore.models import MODELS

        lang = getattr(MODELS.get(model), "language", None)
        if lang:
            return str(lang)
    except ImportError:
        pass
    suffix = model.rsplit("-", 1)[-1].lower()
    return suffix if suffix in languages else None


def match_predictions(
    predictions: pl.DataFrame, key: pl.DataFrame, config: CompareConfig = CompareConfig()
) -> tuple[pl.DataFrame, dict]:
    """Model predictions for exactly the stimuli in ``key`` (corpus + utt_id).

    Returns
    -------
    (matched, report): matched has variant, model, model_language, setting, stimulus,
    corpus, utt_id, language, true, pred; report lists filters, per-variant coverage,
    label mismatches, duplicates and unpaired models.

    Notes
    -----
    A stimulus predicted by several folds of one variant (PAVOQUE's test sets overlap)
    gets the arg-max of the mean ``prob_<label>`` columns when they are all present, else
    the prediction of the lowest fold; the report gives the number of such rows and the
    rule. Filter with ``prediction_filters={"fold": "0"}`` to use one fold only.
    """
    need = [c for c in ("utt_id", "pred", "model", "setting") if c not in predictions.columns]
    if need:
        raise CompareError(f"predictions lack column(s) {need}")
    preds = predictions
    for col, value in config.prediction_filters.items():
        if col not in preds.columns:
            raise CompareError(f"prediction filter {col}={value}: no column {col!r}")
        preds = preds.filter(pl.col(col).cast(pl.Utf8) == str(value))
    corpus_col = next((c for c in ("test_corpus", "corpus") if c in preds.columns), None)
    vcols = [c for c in VARIANT_COLUMNS if c in preds.columns]
    prob_cols = [f"prob_{c}" for c in config.labels]
    has_probs = all(c in preds.columns for c in prob_cols)
    keep = [*vcols, "utt_id", "pred", *([corpus_col] if corpus_col else []),
            *[c for c in ("true", "fold") if c in preds.columns], *(prob_cols if has_probs else [])]
    preds = preds.select(keep).with_columns(pl.col("utt_id").cast(pl.Utf8))
    if preds["pred"].dtype.is_integer():
        preds = preds.with_columns(pl.col("pred").map_elements(lambda i: config.labels[i], return_dtype=pl.Utf8))
    if "true" in preds.columns and preds["true"].dtype.is_integer():
        preds = preds.with_columns(pl.col("true").map_elements(lambda i: config.labels[i], return_dtype=pl.Utf8))
    k = key.select("stimulus", "corpus", "utt_id", "language", pl.col("emotion").alias("key_true"))
    on = ["utt_id"]
    if corpus_col:
        preds = preds.rename({corpus_col: "corpus"}) if corpus_col != "corpus" else preds
        on = ["corpus", "utt_id"]
    matched = preds.join(k, on=on, how="inner")
    matched = matched.with_columns(
        pl.concat_str([pl.col(c).cast(pl.Utf8).fill_null("") for c in vcols], separator="|").alias("variant")
    )
    languages = set(key["language"].to_list())
    report: dict = {"filters": dict(config.prediction_filters), "n_rows_in": predictions.height,
                    "variants": [], "label_mismatches": 0, "duplicates": 0, "unpaired_models": []}
    if "true" in matched.columns:
        bad = matched.filter(pl.col("true") != pl.col("key_true"))
        report["label_mismatches"] = bad.height
        matched = matched.drop("true")
    matched, report["duplicates"], report["duplicate_rule"] = _one_per_stimulus(
        matched, prob_cols if has_probs else [], config.labels)
    lang_of = {m: _model_language(m, config, languages) for m in set(matched["model"].to_list())}
    report["unpaired_models"] = sorted(m for m, lang in lang_of.items() if lang is None)
    matched = matched.with_columns(
        pl.col("model").replace_strict(lang_of, default=None, return_dtype=pl.Utf8).alias("model_language")
    ).rename({"key_true": "true"})
    for (variant,), part in matched.group_by("variant", maintain_order=True):
        report["variants"].append({"variant": variant, "n_matched": part.height,
                                   "n_stimuli": key.height})
    cols = ["variant", "model", "model_language", "setting", "stimulus", "corpus", "utt_id",
            "language", "true", "pred", *[c for c in vcols if c not in ("model", "setting")]]
    return matched.select(cols), report


def _one_per_stimulus(matched: pl.DataFrame, prob_cols: list[str],
                      labels: Sequence[str]) -> tuple[pl.DataFrame, int, str]:
    n_dup = matched.height - matched.select("variant", "stimulus").n_unique()
    if "fold" in matched.columns:
        matched = matched.sort("fold", maintain_order=True)
    if not n_dup:
        return matched, 0, "none"
    if not prob_cols:
        kept = matched.unique(subset=["variant", "stimulus"], keep="first", maintain_order=True)
        return kept, n_dup, "prediction of the lowest fold kept"
    others = [c for c in matched.columns if c not in (*prob_cols, "variant", "stimulus")]
    agg = matched.group_by("variant", "stimulus", maintain_order=True).agg(
        *[pl.col(c).first() for c in others], *[pl.col(c).mean() for c in prob_cols],
        pl.len().alias("_n"),
    )
    mean_pred = pl.concat_list(prob_cols).list.arg_max().replace_strict(
        dict(enumerate(labels)), return_dtype=pl.Utf8)
    agg = agg.with_columns(pl.when(pl.col("_n") > 1).then(mean_pred).otherwise(pl.col("pred")).alias("pred"))
    return agg.drop("_n"), n_dup, "arg-max of the mean probabilities over folds"


def model_metrics(matched: pl.DataFrame, labels: Sequence[str] = CANONICAL_EMOTIONS) -> pl.DataFrame:
    """Metrics of each model variant per test language on the matched stimuli."""
    rows = []
    for (variant, model, mlang, setting, language), part in matched.group_by(
        "variant", "model", "model_language", "setting", "language", maintain_order=True
    ):
        rows.append({"variant": variant, "model": model, "model_language": mlang, "setting": setting,
                     "language": language, **_metrics_row(part["true"].to_list(),
                                                           part["pred"].to_list(), labels)})
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def pair_humans_models(summary: pl.DataFrame, models: pl.DataFrame, config: CompareConfig) -> pl.DataFrame:
    """One row per (group, language) cell and paired model variant (variant null when
    no model fits): group, language, human_setting, model_setting, variant, human_ua,
    model_ua."""
    rows = []
    for r in summary.iter_rows(named=True):
        hs = config.human_setting(r["group"], r["language"])
        ms = MODEL_SETTING[hs]
        cands = models.filter(
            (pl.col("model_language") == config.group_language(r["group"]))
            & (pl.col("setting") == ms) & (pl.col("language") == r["language"])
        ) if models.height else models
        base = {"group": r["group"], "language": r["language"], "human_setting": hs,
                "model_setting": ms, "human_ua": r["mean"]}
        if not cands.height:
            rows.append({**base, "variant": None, "model": None, "model_ua": None})
        for c in cands.iter_rows(named=True):
            rows.append({**base, "variant": c["variant"], "model": c["model"], "model_ua": c["ua"]})
    schema = {"group": pl.Utf8, "language": pl.Utf8, "human_setting": pl.Utf8, "model_setting": pl.Utf8,
              "human_ua": pl.Float64, "variant": pl.Utf8, "model": pl.Utf8, "model_ua": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def table3(confusions: pl.DataFrame, models: pl.DataFrame, pairs: pl.DataFrame,
           labels: Sequence[str] = CANONICAL_EMOTIONS) -> pl.DataFrame:
    """Table III in long form: one panel per human cell and per paired model, each
    with 4 rows (true label) and one column per predicted label (row-normalised).

    Columns: panel, who (``human``/``model``), group, language, setting, variant, true,
    and the label columns.
    """
    rows = []
    for p in pairs.unique(subset=["group", "language"], keep="first", maintain_order=True).iter_rows(named=True):
        human = confusions.filter((pl.col("group") == p["group"]) & (pl.col("language") == p["language"]))
        title = f"Human: {p['group'].upper()} ({p['human_setting']} on {p['language'].upper()})"
        by_true = {h["true"]: h for h in human.iter_rows(named=True)}
        for h in (by_true[lab] for lab in labels if lab in by_true):
            rows.append({"panel": title, "who": "human", "group": p["group"], "language": p["language"],
                         "setting": p["human_setting"], "variant": None, "true": h["true"],
                         **{lab: h[lab] for lab in labels}})
        for v in pairs.filter((pl.col("group") == p["group"]) & (pl.col("language") == p["language"])
                              & pl.col("variant").is_not_null()).iter_rows(named=True):
            m = models.filter((pl.col("variant") == v["variant"]) & (pl.col("language") == p["language"]))
            if not m.height:
                continue
            norm = row_normalise(json.loads(m["confusion"][0]))
            mtitle = (f"Model: {v['model']} {v['model_setting']} (on {p['language'].upper()})"
                      f" [{v['variant']}]")
            for i, lab in enumerate(labels):
                rows.append({"panel": mtitle, "who": "model", "group": p["group"], "language": p["language"],
                             "setting": v["model_setting"], "variant": v["variant"], "true": lab,
                             **{c: float(norm[i, j]) for j, c in enumerate(labels)}})
    schema = {"panel": pl.Utf8, "who": pl.Utf8, "group": pl.Utf8, "language": pl.Utf8, "setting": pl.Utf8,
              "variant": pl.Utf8, "true": pl.Utf8, **dict.fromkeys(labels, pl.Float64)}
    return pl.DataFrame(rows, schema=schema)


def compare(
    answers: pl.DataFrame,
    predictions: pl.DataFrame | None = None,
    config: CompareConfig = CompareConfig(),
    key: pl.DataFrame | None = None,
) -> CompareResult:
    """Every table of the human-model comparison.

    Parameters
    ----------
    answers : tidy answers (:func:`probes.human.ingest.ingest`)
    predictions : model predictions (utt_id, pred, model, setting, + optional columns)
    key : the stimuli heard; default: the distinct stimuli of ``answers``
    """
    if answers.is_empty():
        raise CompareError("no answers to compare")
    key_langs = set(key["language"].to_list()) if key is not None else set()
    languages = sorted(set(answers["language"].to_list()) | key_langs)
    mapping, notes = resolved_group_languages(answers, languages, config)
    found = set(answers["true"].drop_nulls().to_list()) | set(answers["answer"].drop_nulls().to_list())
    extra = sorted(found - set(config.labels))
    config = dataclasses.replace(config, group_languages=mapping, labels=(*config.labels, *extra))
    labels = config.labels
    per = listener_metrics(answers, labels)
    summary = group_summary(per, "ua")
    langs = order_languages(answers["language"].to_list())
    t2 = table2(summary, langs)
    conf = group_confusions(answers, labels)
    present = set(langs)
    pools = [p for p in config.pooled_languages if set(p) <= present]
    pooled_parts = [pooled_listener_metrics(answers, p, labels) for p in pools]
    pooled = (pl.concat([f for f in pooled_parts if f.height], how="diagonal_relaxed")
              if any(f.height for f in pooled_parts) else pl.DataFrame())
    tests = welch_tests(per, config, pooled)
    if key is None:
        key = answers.select("stimulus", "corpus", "utt_id", "language",
                             pl.col("true").alias("emotion")).unique("stimulus", maintain_order=True)
    report: dict = {"n_listeners": per["listener"].n_unique(), "group_languages": mapping,
                    "group_language_notes": notes,
                    "labels": list(labels), "labels_added_from_answers": extra,
                    # the true categories of each language: UA is their mean recall (TJ: fewer)
                    "categories": {lang: [c for c in labels if c in set(
                        answers.filter(pl.col("language") == lang)["true"].to_list())] for lang in langs},
                    "pooled_languages": [pool_name(p) for p in pools],
                    "pooled_languages_skipped": [
                        {"pool": pool_name(p), "missing": sorted(set(p) - present)}
                        for p in config.pooled_languages if p not in pools],
                    "listeners_without_group": sorted(set(
                        per.filter(pl.col("group").is_null())["listener"].to_list()))}
    mm = pl.DataFrame()
    if predictions is not None and predictions.height:
        matched, report["models"] = match_predictions(predictions, key, config)
        mm = model_metrics(matched, labels)
    pairs = pair_humans_models(summary, mm, config)
    t3 = table3(conf, mm, pairs, labels)
    return CompareResult(per, summary, t2, conf, tests, mm, t3, pairs, report, pooled, tuple(labels))
