"""classification_metrics' count path gives sklearn's floats exactly."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from featstore.manifest import CANONICAL_EMOTIONS
from probes.metrics import classification_metrics


def test_counts_path_equals_sklearn_exactly():
    rng = np.random.default_rng(0)
    labels = list(CANONICAL_EMOTIONS)
    for trial in range(300):
        n = int(rng.integers(1, 60))
        k_true, k_pred = int(rng.integers(1, 5)), int(rng.integers(1, 5))  # absent classes, empty columns
        t = [labels[i] for i in rng.integers(0, k_true, n)]
        p = [labels[i] for i in rng.integers(0, k_pred, n)]
        got = classification_metrics(t, p)
        prec, rec, f1, support = precision_recall_fscore_support(t, p, labels=labels, zero_division=0.0)
        present = support > 0
        assert got["ua"] == float(rec[present].mean()), trial
        assert got["macro_f1"] == float(f1[present].mean()), trial
        for i, c in enumerate(labels):
            assert (got[f"precision_{c}"], got[f"recall_{c}"], got[f"f1_{c}"]) == (prec[i], rec[i], f1[i])
        assert got["confusion"] == confusion_matrix(t, p, labels=labels).tolist()
        assert got["wa"] == float(np.mean(np.asarray(t) == np.asarray(p)))


def test_a_label_outside_the_set_keeps_sklearns_rules():
    got = classification_metrics(["angry", "happy", "surprise"], ["angry", "sad", "angry"])
    assert got["confusion"] == confusion_matrix(["angry", "happy", "surprise"], ["angry", "sad", "angry"],
                                                labels=list(CANONICAL_EMOTIONS)).tolist()
    assert got["recall_angry"] == 1.0 and got["precision_angry"] == 0.5
