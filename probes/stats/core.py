"""The vectorised numerics: unit counts, speaker-level bootstrap, sign-flip tests, Holm.

Everything is a matrix product over *units* (speakers, or utterances where a corpus has
too few speakers). UA is the mean over classes of ``correct_c / n_c``; a resample is a
vector of unit weights (how often each unit was drawn), so the per-resample class counts
of every layer are one product ``weights (R, U) @ counts (U, L * C)``. No Python loop
runs over resamples.

A paired test of ``UA_a - UA_b`` on the same test utterances swaps the two systems'
answers unit by unit. Since both share the true labels, the class sizes ``n_c`` never
change, and the difference is a sum of per-unit contributions
``d_u = mean_c (correct_a[u, c] - correct_b[u, c]) / n_c``; swapping unit ``u`` flips the
sign of ``d_u``. The null distribution is ``signs (R, U) @ d (U, K)`` for K comparisons at
once; with ``2 ** U <= n_resamples`` every sign pattern is enumerated (an exact test).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

CORRECTIONS: tuple[str, ...] = ("holm", "bonferroni")
"""Multiple-comparison corrections (family-wise error rate): Holm's step-down (default)
or Bonferroni."""


def stream_seed(seed: int, *names: str) -> list[int]:
    """A seed sequence for ``np.random.default_rng`` from the root ``seed`` and names (a
    test corpus, a setting...): the same names always draw the same resamples."""
    return [int(seed), *(zlib.crc32(str(n).encode("utf-8")) for n in names)]


def unit_class_counts(
    correct: np.ndarray, labels: np.ndarray, unit_of: np.ndarray, n_units: int, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit, per-class counts.

    Parameters
    ----------
    correct : ``(L, N)`` bool, whether system (layer) ``l`` got utterance ``n`` right
    labels : ``(N,)`` int class index of each utterance
    unit_of : ``(N,)`` int unit index (0 .. n_units-1) of each utterance

    Returns
    -------
    ``(hits (U, L, C) float64, totals (U, C) float64)``: correct answers and utterances
    per unit and class.
    """
    correct = np.asarray(correct, dtype=np.float64)
    n_sys = correct.shape[0]
    cell = unit_of.astype(np.int64) * n_classes + labels.astype(np.int64)  # (N,)
    size = n_units * n_classes
    flat = (np.arange(n_sys)[:, None] * size + cell[None, :]).ravel()
    hits = np.bincount(flat, weights=correct.ravel(), minlength=n_sys * size).reshape(n_sys, n_units, n_classes)
    totals = np.bincount(cell, minlength=size).reshape(n_units, n_classes).astype(np.float64)
    return hits.transpose(1, 0, 2).copy(), totals


def ua_from_counts(hits: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """UA (fraction) from class counts: ``hits (..., L, C)`` and ``totals (..., C)``; classes
    with no utterance are left out, as in :func:`probes.metrics.classification_metrics`."""
    present = totals > 0
    recall = np.divide(hits, totals[..., None, :], out=np.zeros_like(hits), where=present[..., None, :])
    return recall.sum(-1) / np.maximum(present.sum(-1), 1)[..., None]


def resample_weights(n_units: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(R, U)`` float64: how often each unit is drawn in each of ``n_resamples``
    bootstrap resamples of ``n_units`` units with replacement."""
    draws = rng.integers(0, n_units, size=(n_resamples, n_units))
    flat = (draws + np.arange(n_resamples)[:, None] * n_units).ravel()
    return np.bincount(flat, minlength=n_resamples * n_units).reshape(n_resamples, n_units).astype(np.float64)


def bootstrap_ua(hits: np.ndarray, totals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """UA of every resample and system: ``(R, L)`` from ``hits (U, L, C)``,
    ``totals (U, C)`` and unit ``weights (R, U)``."""
    n_units, n_sys, n_classes = hits.shape
    boot_hits = (weights @ hits.reshape(n_units, n_sys * n_classes)).reshape(-1, n_sys, n_classes)
    boot_totals = weights @ totals
    return ua_from_counts(boot_hits, boot_totals)


def percentile_interval(samples: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` percentile interval at level ``1 - alpha`` over axis 0 (the
    percentile bootstrap, as ``scipy.stats.bootstrap(method='percentile')``)."""
    lo, hi = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return lo, hi


def contributions(hits_a: np.ndarray, hits_b: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Per-unit contributions ``d (U, K)`` to ``UA_a - UA_b`` (their sum is the difference)
    from ``hits_a``/``hits_b (U, K, C)`` and the shared ``totals (U, C)``."""
    n_c = totals.sum(0)
    present = n_c > 0
    scale = np.divide(1.0, n_c, out=np.zeros_like(n_c), where=present) / max(int(present.sum()), 1)
    return ((hits_a - hits_b) * scale).sum(-1)


def sign_matrix(n_units: int, n_resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """``(signs (R, U) of +-1, exact)``: every sign pattern when ``2 ** n_units <=
    n_resamples`` (``exact=True``), else ``n_resamples`` random ones."""
    if n_units <= 20 and 2 ** n_units <= n_resamples:
        codes = np.arange(2 ** n_units)[:, None] >> np.arange(n_units)[None, :]
        return (codes & 1) * 2.0 - 1.0, True
    return rng.integers(0, 2, size=(n_resamples, n_units)) * 2.0 - 1.0, False


def sign_flip_test(d: np.ndarray, signs: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided paired sign-flip test of ``sum_u d[u, k] = 0`` for each column ``k``.

    The p-value follows ``scipy.stats.permutation_test``: ``2 * min(p_less, p_greater)``
    (at most 1), with ``(count + 1) / (R + 1)`` for random sign patterns and
    ``count / R`` when every pattern is enumerated.

    Returns
    -------
    ``(observed (K,), p (K,))``
    """
    d = np.asarray(d, dtype=np.float64)
    observed = d.sum(0)
    null = signs @ d  # (R, K)
    gamma = 1e-12 + 1e-9 * np.abs(observed)
    plus = 0 if exact else 1
    greater = ((null >= observed - gamma).sum(0) + plus) / (null.shape[0] + plus)
    less = ((null <= observed + gamma).sum(0) + plus) / (null.shape[0] + plus)
    return observed, np.minimum(1.0, 2 * np.minimum(greater, less))


def smallest_p(n_patterns: int, exact: bool) -> float:
    """The smallest two-sided p :func:`sign_flip_test` can return with ``n_patterns`` sign
    patterns: ``2 / R`` when exact (the observed pattern and its mirror), else ``2 / (R + 1)``.
    With U speakers and an exact test that is ``2 / 2**U`` (5 speakers: 0.0625)."""
    return min(1.0, 2.0 / (n_patterns if exact else n_patterns + 1))


def adjust_p(p: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Family-wise adjusted p-values: Holm's step-down or Bonferroni (NaN stays NaN and
    does not count in the family)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    vals = p[ok]
    if method == "bonferroni":
        adj = np.minimum(1.0, vals * m)
    elif method == "holm":
        order = np.argsort(vals, kind="stable")
        stepped = np.maximum.accumulate(vals[order] * (m - np.arange(m)))
        adj = np.empty_like(vals)
        adj[order] = np.minimum(1.0, stepped)
    else:
        raise ValueError(f"unknown correction {method!r}; choose from {list(CORRECTIONS)}")
    out[ok] = adj
    return out
