"""The statistics tables of a layer-wise run (every rate a fraction 0-1).

- ``layer_ci``: UA of the pooled test predictions per (model, setting, train corpus, test
  corpus, layer) with its bootstrap percentile interval (``ua``, ``ua_lo``, ``ua_hi``).
- ``layer_tests``: each layer against the best layer of its condition (``scope =
  condition``) and of its (model, setting) averaged over the setting's conditions
  (``scope = setting``, corpora ``*``): ``diff = ua_best - ua`` with its paired interval,
  the sign-flip ``p``, ``p_adj`` corrected over the family "every other layer vs the best
  layer" of that condition, and ``in_best_set`` (the best layer and every layer not
  significantly worse).
- ``pair_tests``: two conditions tested on the very same utterances (another model, or
  another setting) at each layer: ``diff = ua_a - ua_b``, paired interval, ``p``, and
  ``p_adj`` over the layers of the pair.
- ``gaps``: per model and (native, foreign) corpus pair, ``mono_minus_cross``,
  ``trans_minus_mono`` and ``trans_minus_cross`` per layer; paired (same utterances: sign
  flips, joint resamples) or, when the test sets differ, independent bootstraps (``p``
  empty).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from probes.stats.config import StatsConfig
from probes.stats.core import (
    adjust_p,
    bootstrap_ua,
    contributions,
    percentile_interval,
    resample_weights,
    sign_flip_test,
    sign_matrix,
    smallest_p,
    stream_seed,
    ua_from_counts,
)
from probes.stats.units import KEY, ConditionArrays

PROVENANCE: tuple[str, ...] = (
    "model_fingerprint", "manifest_fingerprint", "test_manifest_fingerprint", "cache_fingerprint",
    "test_cache_fingerprint", "fold_scheme", "test_fold_scheme", "seed", "config_json",
)
"""Provenance columns copied from the results table onto each statistics row."""
GAPS: dict[str, tuple[str, str]] = {
    "mono_minus_cross": ("mono", "cross"),
    "trans_minus_mono": ("trans", "mono"),
    "trans_minus_cross": ("trans", "cross"),
}
"""Gap name -> (setting a, setting b): the gap is ``ua_a - ua_b`` at each layer."""


@dataclass
class StatsTables:
    """The four tables and the best-layer sets ``{model: {setting: [layers]}}``."""

    layer_ci: pl.DataFrame
    layer_tests: pl.DataFrame
    pair_tests: pl.DataFrame
    gaps: pl.DataFrame
    best_sets: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def frames(self) -> dict[str, pl.DataFrame]:
        """Table name -> frame (``best_set_table``: one row per scope, the short view)."""
        return {"layer_ci": self.layer_ci, "layer_tests": self.layer_tests, "pair_tests": self.pair_tests,
                "gaps": self.gaps, "best_set_table": best_set_table(self.layer_tests)}


def best_set_table(layer_tests: pl.DataFrame) -> pl.DataFrame:
    """One row per scope (setting, then condition): the best layer, its UA, the best-layer
    set (``best_set``, layers separated by spaces) and its smallest layer k >= 1."""
    if layer_tests.is_empty():
        return layer_tests
    keys = ["scope", *KEY]
    in_set = pl.col("layer").filter(pl.col("in_best_set")).sort()
    return (layer_tests.group_by(keys, maintain_order=True)
            .agg(pl.col("best_layer").first(), pl.col("ua_best").first(),
                 in_set.cast(pl.Utf8).str.join(" ").alias("best_set"),
                 pl.col("layer").filter(pl.col("in_best_set") & (pl.col("layer") >= 1)).min().alias("smallest_in_set"),
                 pl.len().alias("n_layers"), pl.col("correction").first(), pl.col("alpha").first(),
                 pl.col("stats_seed").first(), pl.col("n_resamples").first(),
                 *[pl.col(c).first() for c in ("model_fingerprint", "seed") if c in layer_tests.columns])
            .sort(pl.col("scope") == "condition", *KEY))


class _Engine:
    """Point UA, bootstrap UA and sign patterns per condition, shared by every table."""

    def __init__(self, conds: Sequence[ConditionArrays], config: StatsConfig) -> None:
        self.config = config
        self.conds = {c.key: c for c in conds}
        self.point: dict[tuple, np.ndarray] = {}
        self.boot: dict[tuple, np.ndarray] = {}
        weights: dict[tuple, np.ndarray] = {}
        for c in conds:
            hits, totals = c.counts
            self.point[c.key] = ua_from_counts(hits.sum(0), totals.sum(0))
            wkey = (c.key[3], c.unit, tuple(c.units))
            if wkey not in weights:  # one resample set per test set: conditions on it are paired
                rng = np.random.default_rng(stream_seed(config.seed, "bootstrap", c.key[3]))
                weights[wkey] = resample_weights(len(c.units), config.n_resamples, rng)
            self.boot[c.key] = bootstrap_ua(hits, totals, weights[wkey])

    def signs(self, n_units: int, *names: str) -> tuple[np.ndarray, bool]:
        rng = np.random.default_rng(stream_seed(self.config.seed, "signs", *names))
        return sign_matrix(n_units, self.config.n_resamples, rng)

    def interval(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return percentile_interval(samples, self.config.alpha)


def _stats_columns(config: StatsConfig) -> dict[str, object]:
    return {"stats_seed": config.seed, "n_resamples": config.n_resamples, "alpha": config.alpha,
            "correction": config.correction, "stats_config_json": config.to_json()}


def _layer_ci(eng: _Engine) -> list[dict]:
    rows = []
    for key, c in eng.conds.items():
        lo, hi = eng.interval(eng.boot[key])
        for i, layer in enumerate(c.layers):
            rows.append({**dict(zip(KEY, key, strict=True)), "layer": int(layer), "ua": float(eng.point[key][i]),
                         "ua_lo": float(lo[i]), "ua_hi": float(hi[i]), "n_utts": int(c.utt_ids.size),
                         "n_units": len(c.units), "unit": c.unit})
    return rows


def _versus_best(eng: _Engine, keys: Sequence[tuple], scope_key: dict[str, str], names: Sequence[str]) -> list[dict]:
    """Every layer against the best one, pooling the conditions ``keys`` (UA averaged over
    them; their units flipped and resampled independently)."""
    conds = [eng.conds[k] for k in keys]
    layers = conds[0].layers
    if any(not np.array_equal(c.layers, layers) for c in conds):
        return []
    point = np.mean([eng.point[k] for k in keys], axis=0)
    boot = np.mean([eng.boot[k] for k in keys], axis=0)
    best = int(np.argmax(point))  # ties: the lowest layer
    d = np.concatenate([contributions(c.counts[0][:, [best]], c.counts[0], c.counts[1]) for c in conds]) / len(conds)
    signs, exact = eng.signs(d.shape[0], *names)
    _, p = sign_flip_test(d, signs, exact)
    p[best] = np.nan  # the best layer is not tested against itself
    p_adj = adjust_p(p, eng.config.correction)
    lo, hi = eng.interval(boot[:, [best]] - boot)
    rows = []
    for i, layer in enumerate(layers):
        in_set = i == best or bool(p_adj[i] >= eng.config.alpha)
        rows.append({**scope_key, "layer": int(layer), "best_layer": int(layers[best]), "ua": float(point[i]),
                     "ua_best": float(point[best]), "diff": float(point[best] - point[i]), "diff_lo": float(lo[i]),
                     "diff_hi": float(hi[i]), "p": float(p[i]), "p_adj": float(p_adj[i]), "in_best_set": in_set,
                     "exact": exact, "min_p": smallest_p(signs.shape[0], exact), "n_conditions": len(conds),
                     "n_units": int(d.shape[0]),
                     "family": f"{len(layers) - 1} layers vs the best layer"})
    return rows


def _layer_tests(eng: _Engine) -> list[dict]:
    rows = []
    for key in eng.conds:
        rows += _versus_best(eng, [key], {**dict(zip(KEY, key, strict=True)), "scope": "condition"}, [key[3]])
    groups: dict[tuple[str, str], list[tuple]] = {}
    for key in eng.conds:
        groups.setdefault((key[0], key[1]), []).append(key)
    for (model, setting), keys in groups.items():
        scope = {"model": model, "setting": setting, "train_corpus": "*", "test_corpus": "*", "scope": "setting"}
        rows += _versus_best(eng, keys, scope, [model, setting])
    return rows


def compare(eng: _Engine, key_a: tuple, key_b: tuple) -> list[dict]:
    """``ua_a - ua_b`` per layer: paired (sign flips and joint resamples) when both were
    tested on the same utterances, else independent bootstraps and no ``p``."""
    a, b = eng.conds[key_a], eng.conds[key_b]
    layers = np.intersect1d(a.layers, b.layers)
    ia, ib = np.searchsorted(a.layers, layers), np.searchsorted(b.layers, layers)
    diff = eng.point[key_a][ia] - eng.point[key_b][ib]
    lo, hi = eng.interval(eng.boot[key_a][:, ia] - eng.boot[key_b][:, ib])
    paired = a.same_utterances(b) and a.units == b.units
    p, min_p = np.full(layers.size, np.nan), np.nan
    if paired:
        d = contributions(a.counts[0][:, ia], b.counts[0][:, ib], a.counts[1])
        signs, exact = eng.signs(d.shape[0], a.key[3])
        _, p = sign_flip_test(d, signs, exact)
        min_p = smallest_p(signs.shape[0], exact)
    p_adj = adjust_p(p, eng.config.correction)
    return [{"layer": int(layer), "ua_a": float(eng.point[key_a][ia[i]]), "ua_b": float(eng.point[key_b][ib[i]]),
             "diff": float(diff[i]), "diff_lo": float(lo[i]), "diff_hi": float(hi[i]), "p": float(p[i]),
             "p_adj": float(p_adj[i]), "min_p": min_p, "paired": paired, "unit_a": a.unit, "unit_b": b.unit,
             "family": f"{layers.size} layers of this comparison"}
            for i, layer in enumerate(layers)]


def _side(key: tuple, suffix: str) -> dict[str, str]:
    return {f"{k}_{suffix}": v for k, v in zip(KEY, key, strict=True)}


def _pair_tests(eng: _Engine) -> list[dict]:
    keys = sorted(eng.conds)
    rows = []
    for i, ka in enumerate(keys):
        for kb in keys[i + 1:]:
            if eng.conds[ka].same_utterances(eng.conds[kb]):
                rows += [{**_side(ka, "a"), **_side(kb, "b"), **r} for r in compare(eng, ka, kb)]
    return rows


def _gaps(eng: _Engine) -> list[dict]:
    rows = []
    for model in sorted({k[0] for k in eng.conds}):
        mono = {k[2]: k for k in eng.conds if k[0] == model and k[1] == "mono"}
        trans = {k[3]: k for k in eng.conds if k[0] == model and k[1] == "trans"}
        for cross in sorted(k for k in eng.conds if k[0] == model and k[1] == "cross"):
            native, foreign = cross[2], cross[3]
            by_setting = {"mono": mono.get(native), "cross": cross, "trans": trans.get(foreign)}
            for gap, (sa, sb) in GAPS.items():
                ka, kb = by_setting[sa], by_setting[sb]
                if ka is None or kb is None:
                    continue
                base = {"model": model, "gap": gap, "native_corpus": native, "foreign_corpus": foreign}
                rows += [{**base, **_side(ka, "a"), **_side(kb, "b"), **r} for r in compare(eng, ka, kb)]
    return rows


def _frame(rows: list[dict], prov: pl.DataFrame | None, config: StatsConfig, sides: Sequence[str] = ("",)) -> pl.DataFrame:
    frame = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
    if frame.is_empty():
        return frame
    if prov is not None and not prov.is_empty():
        for side in sides:
            if side == "":
                frame = frame.join(prov, on=list(KEY), how="left")
            else:
                cols = {c: f"{c}_{side}" for c in prov.columns}
                frame = frame.join(prov.rename(cols), on=[f"{k}_{side}" for k in KEY], how="left")
    return frame.with_columns(**{k: pl.lit(v) for k, v in _stats_columns(config).items()})


def provenance_of(results: pl.DataFrame) -> pl.DataFrame:
    """One provenance row per condition from a results table (its first fold's row)."""
    cols = [c for c in PROVENANCE if c in results.columns]
    return results.select(*KEY, *cols).unique(subset=list(KEY), keep="first", maintain_order=True)


def compute_stats(
    conds: Sequence[ConditionArrays], config: StatsConfig, results: pl.DataFrame | None = None
) -> StatsTables:
    """Every statistics table from the conditions' arrays (:func:`probes.stats.units.
    condition_arrays`); ``results`` (the run's results table) supplies the provenance."""
    eng = _Engine(conds, config)
    prov = provenance_of(results) if results is not None else None
    tests = _frame(_layer_tests(eng), None, config)
    if prov is not None and not tests.is_empty():
        # setting-scope rows (corpora '*') keep the model's fingerprint and the seed
        per_model = prov.group_by("model", maintain_order=True).first().drop("setting", "train_corpus", "test_corpus")
        cond = tests.filter(pl.col("scope") == "condition").join(prov, on=list(KEY), how="left")
        sett = tests.filter(pl.col("scope") == "setting").join(per_model, on="model", how="left")
        tests = pl.concat([cond, sett], how="diagonal_relaxed")
    best_sets: dict[str, dict[str, list[int]]] = {}
    if not tests.is_empty():
        for row in tests.filter((pl.col("scope") == "setting") & pl.col("in_best_set")).iter_rows(named=True):
            best_sets.setdefault(row["model"], {}).setdefault(row["setting"], []).append(int(row["layer"]))
    return StatsTables(
        layer_ci=_frame(_layer_ci(eng), prov, config),
        layer_tests=tests,
        pair_tests=_frame(_pair_tests(eng), prov, config, ("a", "b")),
        gaps=_frame(_gaps(eng), prov, config, ("a", "b")),
        best_sets={m: {s: sorted(v) for s, v in per.items()} for m, per in best_sets.items()},
    )
