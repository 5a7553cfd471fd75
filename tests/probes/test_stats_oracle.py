"""Oracles of probes.stats: the speaker bootstrap against scipy.stats.bootstrap, the paired
sign-flip test against scipy.stats.permutation_test, UA against probes.metrics, Holm
against a hand-worked example."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from probes.metrics import classification_metrics
from probes.stats.core import (
    adjust_p,
    bootstrap_ua,
    contributions,
    percentile_interval,
    resample_weights,
    sign_flip_test,
    sign_matrix,
    smallest_p,
    ua_from_counts,
    unit_class_counts,
)

C = 4


def _speaker_data(n_units: int, per_unit: int, seed: int, skill=(0.55, 0.95)):
    """Utterances of ``n_units`` speakers; each system gets a speaker's utterances right
    with a speaker-specific probability (a strong speaker effect)."""
    rng = np.random.default_rng(seed)
    unit_of = np.repeat(np.arange(n_units), per_unit)
    labels = rng.integers(0, C, unit_of.size)
    p_unit = rng.uniform(*skill, n_units)
    correct_a = rng.random(unit_of.size) < p_unit[unit_of]
    correct_b = rng.random(unit_of.size) < np.clip(p_unit[unit_of] - 0.04, 0, 1)
    return unit_of, labels, np.stack([correct_a, correct_b])


def test_ua_from_counts_equals_classification_metrics_even_with_an_absent_class():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 200)  # class 3 never occurs
    pred = np.where(rng.random(200) < 0.7, labels, rng.integers(0, C, 200))
    hits, totals = unit_class_counts((pred == labels)[None], labels, np.zeros(200, dtype=int), 1, C)
    ua = ua_from_counts(hits.sum(0), totals.sum(0))[0]
    assert ua == pytest.approx(classification_metrics(labels, pred)["ua"], abs=1e-12)


def test_speaker_bootstrap_interval_agrees_with_scipy_percentile_bootstrap():
    unit_of, labels, correct = _speaker_data(n_units=12, per_unit=40, seed=3)
    hits, totals = unit_class_counts(correct, labels, unit_of, 12, C)
    weights = resample_weights(12, 5000, np.random.default_rng(7))
    boot = bootstrap_ua(hits, totals, weights)  # (R, 2)
    lo, hi = percentile_interval(boot, 0.05)

    def ua_of_speakers(idx, axis=-1):  # scipy resamples speaker indices: the same unit
        idx = np.moveaxis(np.asarray(idx), axis, -1)
        return ua_from_counts(hits[idx, 0].sum(-2)[..., None, :], totals[idx].sum(-2))[..., 0]

    ref = sps.bootstrap((np.arange(12),), ua_of_speakers, vectorized=True, n_resamples=5000,
                        method="percentile", confidence_level=0.95, rng=np.random.default_rng(11))
    spread = boot[:, 0].std()
    assert abs(lo[0] - ref.confidence_interval.low) < 0.2 * spread
    assert abs(hi[0] - ref.confidence_interval.high) < 0.2 * spread
    # the unit matters: resampling utterances instead ignores the speaker effect and is narrower
    n = unit_of.size
    h_utt, t_utt = unit_class_counts(correct, labels, np.arange(n), n, C)
    narrow = bootstrap_ua(h_utt, t_utt, resample_weights(n, 2000, np.random.default_rng(7)))
    lo_u, hi_u = percentile_interval(narrow, 0.05)
    assert (hi_u[0] - lo_u[0]) < 0.8 * (hi[0] - lo[0])


def _scipy_paired_p(hits, totals, n_resamples, exact):
    """scipy's paired permutation test: sample i of x/y is speaker i of system a/b, the
    statistic sums each side's speakers' counts (a code >= U means system b's counts)."""
    n_units = hits.shape[0]
    table = np.concatenate([hits[:, 0], hits[:, 1]])  # (2U, C)

    def ua(codes):
        return ua_from_counts(table[codes].sum(-2)[..., None, :], totals.sum(0))[..., 0]

    def statistic(x, y, axis=-1):
        return ua(np.moveaxis(x, axis, -1)) - ua(np.moveaxis(y, axis, -1))

    ref = sps.permutation_test((np.arange(n_units), np.arange(n_units) + n_units), statistic,
                               permutation_type="samples", vectorized=True, alternative="two-sided",
                               n_resamples=np.inf if exact else n_resamples, rng=np.random.default_rng(5))
    return ref.statistic, ref.pvalue


@pytest.mark.parametrize("n_units, exact", [(9, True), (16, False)])
def test_sign_flip_p_agrees_with_scipy_paired_permutation_test(n_units, exact):
    unit_of, labels, correct = _speaker_data(n_units=n_units, per_unit=25, seed=n_units)
    hits, totals = unit_class_counts(correct, labels, unit_of, n_units, C)
    d = contributions(hits[:, [0]], hits[:, [1]], totals)
    n_resamples = 1024 if exact else 20000
    signs, is_exact = sign_matrix(n_units, n_resamples, np.random.default_rng(2))
    assert is_exact == exact
    observed, p = sign_flip_test(d, signs, is_exact)
    stat, p_ref = _scipy_paired_p(hits, totals, n_resamples, exact)
    ua = ua_from_counts(hits.sum(0), totals.sum(0))
    assert observed[0] == pytest.approx(ua[0] - ua[1], abs=1e-12) == pytest.approx(stat, abs=1e-12)
    if exact:
        assert p[0] == pytest.approx(p_ref, abs=1e-12)
    else:
        assert 0.01 < p_ref < 0.99  # a case where the p-value is informative
        assert abs(p[0] - p_ref) < 4 * np.sqrt(p_ref * (1 - p_ref) / n_resamples) + 2e-3


def test_a_planted_difference_is_significant_and_a_null_one_is_not():
    rng = np.random.default_rng(0)
    unit_of = np.repeat(np.arange(30), 20)
    labels = rng.integers(0, C, unit_of.size)
    good = rng.random(unit_of.size) < 0.9
    bad = rng.random(unit_of.size) < 0.6
    twin = rng.random(unit_of.size) < 0.9
    hits, totals = unit_class_counts(np.stack([good, bad, twin]), labels, unit_of, 30, C)
    d = contributions(hits[:, [0, 0]], hits[:, [1, 2]], totals)
    _, p = sign_flip_test(d, *sign_matrix(30, 4000, np.random.default_rng(1)))
    assert p[0] < 0.001 < 0.05 < p[1]


def test_holm_and_bonferroni_on_a_hand_worked_family():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    # Holm: sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    np.testing.assert_allclose(adjust_p(p, "holm"), [0.03, 0.06, 0.06, 0.02, np.nan])
    np.testing.assert_allclose(adjust_p(p, "bonferroni"), [0.04, 0.16, 0.12, 0.02, np.nan])
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_p(p, "fdr")


def test_smallest_p_is_reached_by_the_most_extreme_pattern():
    d = np.full((5, 1), 0.01)  # every speaker favours a: only the all-plus and all-minus patterns reach it
    signs, exact = sign_matrix(5, 2000, np.random.default_rng(0))
    _, p = sign_flip_test(d, signs, exact)
    assert exact and p[0] == pytest.approx(smallest_p(signs.shape[0], exact)) == pytest.approx(2 / 32)
