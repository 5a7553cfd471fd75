"""Utterance-level SER metrics (``../shared/specs/metrics.md``).

UA is the mean per-class recall (balanced accuracy); WA is plain accuracy. Confusion
matrices are row-normalised (row = true label) in the paper's label order A H N S.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from featstore.manifest import CANONICAL_EMOTIONS


def classification_metrics(
    y_true: Sequence[str] | np.ndarray,
    y_pred: Sequence[str] | np.ndarray,
    labels: Sequence[str] = CANONICAL_EMOTIONS,
) -> dict[str, float | list[list[int]]]:
    """UA, WA, macro-F1, per-class precision/recall/F1 and the count confusion matrix.

    Parameters
    ----------
    y_true, y_pred : sequences of label names (or integer indices into ``labels``)
    labels : class order; classes absent from ``y_true`` are left out of UA.

    Returns
    -------
    dict with ``ua``, ``wa``, ``macro_f1``, ``precision_<c>``, ``recall_<c>``, ``f1_<c>``
    for each class ``c`` and ``confusion`` (list of rows of counts, row = true label).
    """
    labels = list(labels)
    y_true = _as_names(y_true, labels)
    y_pred = _as_names(y_pred, labels)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if len(y_true) == 0:
        raise ValueError("no predictions to score")
    counts = _confusion_counts(y_true, y_pred, labels)
    if counts is None:  # a label outside ``labels``: sklearn's rules
        prec, rec, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, zero_division=0.0
        )
        counts = confusion_matrix(y_true, y_pred, labels=labels)
    else:
        prec, rec, f1, support = _prf_from_counts(counts)
    present = support > 0
    out: dict[str, float | list[list[int]]] = {
        "ua": float(rec[present].mean()),
        "wa": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))),
        "macro_f1": float(f1[present].mean()),
    }
    for i, name in enumerate(labels):
        out[f"precision_{name}"] = float(prec[i])
        out[f"recall_{name}"] = float(rec[i])
        out[f"f1_{name}"] = float(f1[i])
    out["confusion"] = counts.tolist()
    return out


def _confusion_counts(y_true: list[str], y_pred: list[str], labels: list[str]) -> np.ndarray | None:
    """Count confusion matrix (row = true label) by ``np.bincount``; ``None`` if a value is
    not in ``labels`` (about 100x faster than sklearn's checks on a few hundred labels)."""
    index = {name: i for i, name in enumerate(labels)}
    t = np.array([index.get(v, -1) for v in y_true], dtype=np.int64)
    p = np.array([index.get(v, -1) for v in y_pred], dtype=np.int64)
    if (t < 0).any() or (p < 0).any():
        return None
    k = len(labels)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _prf_from_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support per class from counts, with sklearn's formulas
    and ``zero_division=0`` (the same floats as ``precision_recall_fscore_support``)."""
    tp = np.diag(counts)
    true_sum, pred_sum = counts.sum(1), counts.sum(0)

    def divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        den = np.asarray(den, dtype=np.float64)
        return np.where(den == 0, 0.0, np.asarray(num, dtype=np.float64) / np.where(den == 0, 1.0, den))

    f1 = divide(2.0 * tp.astype(np.float64), 1.0 * true_sum.astype(np.float64) + pred_sum.astype(np.float64))
    return divide(tp, pred_sum), divide(tp, true_sum), f1, true_sum


def row_normalise(confusion: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Row-normalised confusion matrix (each non-empty row sums to 1)."""
    cm = np.asarray(confusion, dtype=float)
    sums = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, sums, out=np.zeros_like(cm), where=sums > 0)


def _as_names(values: Sequence | np.ndarray, labels: list[str]) -> list[str]:
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return [labels[int(i)] for i in arr]
    return [str(v) for v in arr]
