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
    prec, rec, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0.0
    )
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
    out["confusion"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return out


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
