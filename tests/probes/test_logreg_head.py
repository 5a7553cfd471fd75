"""The logreg head against scikit-learn's own pipeline (standardise, then multinomial LR)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from probes._logreg import fit_logreg
from probes._stacked import HeadTask
from probes.config import ProbeConfig


def test_logreg_matches_sklearn_pipeline():
    rng = np.random.default_rng(1)
    n, dim = 160, 12
    y = np.arange(n) % 4
    x = (rng.standard_normal((2, n, dim)) * rng.uniform(0.5, 5, dim) + 3).astype(np.float32)
    x[1] += 1.5 * rng.standard_normal((4, dim)).astype(np.float32)[y]
    perm = rng.permutation(n)
    tasks = [HeadTask(slot=s, layer=s, fold=0, train_rows=perm[:120], valid_rows=perm[120:140]) for s in range(2)]
    heads = fit_logreg(x, y, tasks, ProbeConfig(head="logreg", logreg_c=0.5))
    for task, head in zip(tasks, heads, strict=True):
        ref = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=200))
        ref.fit(x[task.slot][task.train_rows].astype(np.float64), y[task.train_rows])
        test = x[task.slot][perm[140:]]
        np.testing.assert_array_equal(head.predict(test), ref.predict(test.astype(np.float64)))
        np.testing.assert_allclose(head.predict_proba(test), ref.predict_proba(test.astype(np.float64)), atol=1e-4)
        valid_acc = ref.score(x[task.slot][task.valid_rows].astype(np.float64), y[task.valid_rows])
        assert head.best_val_acc == pytest.approx(valid_acc)
        assert head.epochs >= 1


def test_logreg_with_a_missing_class_never_predicts_it():
    rng = np.random.default_rng(2)
    y = np.arange(60) % 3  # no "sad" (index 3) at all
    x = rng.standard_normal((1, 60, 5)).astype(np.float32) + np.eye(5, dtype=np.float32)[y] * 3
    task = HeadTask(slot=0, layer=0, fold=0, train_rows=np.arange(40), valid_rows=np.arange(40, 60))
    head = fit_logreg(x, y, [task], ProbeConfig(head="logreg"))[0]
    proba = head.predict_proba(x[0])
    assert proba.shape == (60, 4)
    assert np.all(head.predict(x[0]) != 3) and np.allclose(proba.sum(1), 1, atol=1e-5)


def test_logreg_with_two_classes_matches_sklearn():
    # sklearn keeps one coefficient row for two classes: p(second) = sigmoid(z)
    rng = np.random.default_rng(3)
    y = np.where(np.arange(80) % 2 == 0, 1, 3)  # happy and sad only
    x = rng.standard_normal((1, 80, 6)).astype(np.float32) + (y[:, None] == 3).astype(np.float32)
    task = HeadTask(slot=0, layer=0, fold=0, train_rows=np.arange(60), valid_rows=np.arange(60, 80))
    head = fit_logreg(x, y, [task], ProbeConfig(head="logreg"))[0]
    ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(x[0, :60].astype(np.float64), y[:60])
    proba = head.predict_proba(x[0])
    np.testing.assert_allclose(proba[:, [1, 3]], ref.predict_proba(x[0].astype(np.float64)), atol=1e-4)
    assert np.all(proba[:, [0, 2]] < 1e-6)
    np.testing.assert_array_equal(head.predict(x[0]), ref.predict(x[0].astype(np.float64)))
