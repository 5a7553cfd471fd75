"""Welch's t-test against a computation from means and variances; p-value corrections
against brute force."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats

from probes.human.stats import adjust_pvalues, welch_df, welch_test


def _welch_by_hand(a, b):
    """Welch's test written out from the two samples' means and unbiased variances
    (``statistics``, not numpy or the module): t = (ma - mb) / sqrt(va/na + vb/nb),
    df = (va/na + vb/nb)^2 / ((va/na)^2/(na-1) + (vb/nb)^2/(nb-1)), p = 2 P(T_df > |t|)."""
    na, nb = len(a), len(b)
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    sa, sb = statistics.variance(a) / na, statistics.variance(b) / nb
    t = (ma - mb) / math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / (sa**2 / (na - 1) + sb**2 / (nb - 1))
    return t, df, 2 * stats.t.sf(abs(t), df)


WELCH_CASES = [
    # unequal sizes and variances (the df is far from na + nb - 2)
    ([0.61, 0.55, 0.72, 0.58, 0.66, 0.70], [0.91, 0.40, 0.95, 0.30, 0.88]),
    # a tight small group against a spread large one
    ([0.50, 0.52, 0.51], [0.20, 0.90, 0.35, 0.75, 0.60, 0.10, 0.95, 0.45, 0.55]),
    # equal sizes, very different variances
    ([0.80, 0.81, 0.79, 0.80, 0.82, 0.78], [0.40, 0.95, 0.62, 0.15, 0.88, 0.51]),
    # two values each (the smallest testable samples), b above a
    ([0.1, 0.3], [0.6, 1.0]),
]


@pytest.mark.parametrize(("a", "b"), WELCH_CASES)
def test_welch_t_df_p_from_means_and_variances(a, b):
    res = welch_test(a, b)
    t, df, p = _welch_by_hand(a, b)
    assert res["t"] == pytest.approx(t, rel=1e-10)
    assert res["df"] == pytest.approx(df, rel=1e-10)
    assert res["p"] == pytest.approx(p, rel=1e-8)
    assert welch_df(a, b) == pytest.approx(df, rel=1e-10)
    assert (res["n_a"], res["n_b"]) == (len(a), len(b))
    assert res["mean_a"] == pytest.approx(statistics.fmean(a))
    assert res["sd_b"] == pytest.approx(statistics.stdev(b))


def test_welch_is_not_students_test():
    # Student's pooled-variance test gives another t, df and p on unequal groups: a
    # welch_test that fell back to it would fail here
    a, b = WELCH_CASES[1]
    res = welch_test(a, b)
    na, nb = len(a), len(b)
    pooled = ((na - 1) * statistics.variance(a) + (nb - 1) * statistics.variance(b)) / (na + nb - 2)
    t_student = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(pooled * (1 / na + 1 / nb))
    assert res["df"] < na + nb - 2 - 1
    assert abs(res["t"] - t_student) > 0.1
    assert res["t"] == pytest.approx(_welch_by_hand(a, b)[0], rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_on_random_samples_of_unequal_size(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.6, 0.1, size=6).tolist()
    b = rng.normal(0.8, 0.2, size=int(rng.integers(3, 9))).tolist()
    res = welch_test(a, b)
    t, df, p = _welch_by_hand(a, b)
    assert (res["t"], res["df"]) == (pytest.approx(t, rel=1e-10), pytest.approx(df, rel=1e-10))
    assert res["p"] == pytest.approx(p, rel=1e-8)


def test_equal_variances_six_per_group_give_ten_df():
    # the paper's t(10) with six listeners per group: equal variances, equal sizes -> df = 10
    a = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    b = [x + 0.35 for x in a]
    res = welch_test(a, b)
    assert res["df"] == pytest.approx(10.0)
    assert res["t"] == pytest.approx(_welch_by_hand(a, b)[0], rel=1e-10)
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
