"""Welch's t-test and p-value corrections against SciPy and brute-force computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from probes.human.stats import adjust_pvalues, welch_df, welch_test


def _satterthwaite(a, b):
    # written out from the textbook formula, independently of the module
    na, nb = len(a), len(b)
    va = sum((x - sum(a) / na) ** 2 for x in a) / (na - 1)
    vb = sum((x - sum(b) / nb) ** 2 for x in b) / (nb - 1)
    return (va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_matches_scipy_and_formula(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.6, 0.1, size=6).tolist()
    b = rng.normal(0.8, 0.2, size=int(rng.integers(3, 9))).tolist()
    res = welch_test(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert res["t"] == pytest.approx(ref.statistic, rel=1e-12)
    assert res["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert res["df"] == pytest.approx(_satterthwaite(a, b), rel=1e-10)
    assert welch_df(a, b) == pytest.approx(_satterthwaite(a, b), rel=1e-10)
    # p recomputed from t and df with the t distribution
    assert res["p"] == pytest.approx(2 * stats.t.sf(abs(res["t"]), res["df"]), rel=1e-9)
    assert res["mean_a"] == pytest.approx(np.mean(a)) and res["n_b"] == len(b)


def test_equal_variances_six_per_group_give_ten_df():
    # the paper's t(10) with six listeners per group: equal variances, equal sizes -> df = 10
    a = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    b = [x + 0.35 for x in a]
    res = welch_test(a, b)
    assert res["df"] == pytest.approx(10.0)
    assert res["t"] < 0


def test_untestable_samples_give_nan():
    assert math.isnan(welch_test([0.5], [0.1, 0.2])["t"])
    assert math.isnan(welch_test([0.5, 0.5], [0.5, 0.5])["p"])


def _holm_brute(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    for k, i in enumerate(order):
        out[i] = min(1.0, max((m - j) * p[order[j]] for j in range(k + 1)))
    return out


def _bh_brute(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    for k, i in enumerate(order):
        out[i] = min(1.0, min(p[order[j]] * m / (j + 1) for j in range(k, m)))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_corrections_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.2, size=9)
    p[3] = p[5]  # a tie
    p = p.tolist()
    assert np.allclose(adjust_pvalues(p, "holm"), _holm_brute(p))
    assert np.allclose(adjust_pvalues(p, "fdr_bh"), _bh_brute(p))
    assert np.allclose(adjust_pvalues(p, "bonferroni"), [min(1.0, x * 9) for x in p])
    assert np.allclose(adjust_pvalues(p, "none"), p)


def test_corrections_skip_nan_and_reject_unknown():
    p = [0.01, float("nan"), 0.04]
    adj = adjust_pvalues(p, "bonferroni")
    assert math.isnan(adj[1]) and adj[0] == pytest.approx(0.02) and adj[2] == pytest.approx(0.08)
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_pvalues(p, "sidak")
