"""Welch's t-test and multiple-comparison corrections for per-listener metrics.

The paper compares groups of listeners with a two-sided Welch test (unequal variances),
reporting ``t(df)`` and ``p``. ``t`` and ``p`` come from SciPy; the Welch-Satterthwaite
degrees of freedom are computed here (:func:`welch_df`), the same on every SciPy.
``tests/probes/test_human_stats.py`` checks all three against a computation from the two
samples' means and variances. statsmodels is not a dependency, so the corrections
(Holm, Bonferroni, Benjamini-Hochberg) are implemented here and tested against a
brute-force computation.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

CORRECTIONS: tuple[str, ...] = ("holm", "bonferroni", "fdr_bh", "none")


def welch_df(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Welch-Satterthwaite degrees of freedom of two samples (nan when undefined).

    ``df = (va/na + vb/nb)^2 / ((va/na)^2/(na-1) + (vb/nb)^2/(nb-1))`` with ``va``,
    ``vb`` the unbiased sample variances.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.size < 2 or b.size < 2:
        return float("nan")
    sa = a.var(ddof=1) / a.size
    sb = b.var(ddof=1) / b.size
    denom = sa**2 / (a.size - 1) + sb**2 / (b.size - 1)
    if denom == 0:
        return float("nan")
    return float((sa + sb) ** 2 / denom)


def welch_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Two-sided Welch t-test of ``a`` against ``b``.

    Returns
    -------
    dict with ``t``, ``df`` (Welch-Satterthwaite), ``p``, ``n_a``, ``n_b``, ``mean_a``,
    ``mean_b``, ``sd_a``, ``sd_b``. ``t``/``df``/``p`` are nan when a sample has fewer
    than two values or both samples have zero variance (no test is possible).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    out = {
        "n_a": float(a.size), "n_b": float(b.size),
        "mean_a": float(a.mean()) if a.size else float("nan"),
        "mean_b": float(b.mean()) if b.size else float("nan"),
        "sd_a": float(a.std(ddof=1)) if a.size > 1 else float("nan"),
        "sd_b": float(b.std(ddof=1)) if b.size > 1 else float("nan"),
        "t": float("nan"), "df": float("nan"), "p": float("nan"),
    }
    df = welch_df(a, b)
    if np.isnan(df):
        return out
    with warnings.catch_warnings():
        # near-constant samples make SciPy warn about precision; the numbers stand
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_ind(a, b, equal_var=False)
    out["t"] = float(res.statistic)
    out["p"] = float(res.pvalue)
    out["df"] = df
    return out


def adjust_pvalues(p_values: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Family-wise (Holm, Bonferroni) or false-discovery-rate (Benjamini-Hochberg)
    adjusted p-values, capped at 1. ``nan`` entries stay ``nan`` and do not count in the
    family size.

    Parameters
    ----------
    p_values : raw p-values, shape (m,)
    method : one of :data:`CORRECTIONS`
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; choose from {list(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = q.size
    if m == 0 or method == "none":
        out[ok] = q
        return out
    if method == "bonferroni":
        adj = np.minimum(q * m, 1.0)
    elif method == "holm":
        order = np.argsort(q, kind="stable")
        steps = q[order] * (m - np.arange(m))
        adj_sorted = np.minimum(np.maximum.accumulate(steps), 1.0)
        adj = np.empty(m)
        adj[order] = adj_sorted
    else:  # fdr_bh
        order = np.argsort(q, kind="stable")
        steps = q[order] * m / np.arange(1, m + 1)
        adj_sorted = np.minimum(np.minimum.accumulate(steps[::-1])[::-1], 1.0)
        adj = np.empty(m)
        adj[order] = adj_sorted
    out[ok] = adj
    return out
