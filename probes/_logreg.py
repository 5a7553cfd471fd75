"""The ``logreg`` head: multinomial logistic regression (L-BFGS) on standardised features.

One fit per (layer, fold), closed-form enough to run the whole paper grid in seconds. The
fitted model is returned as a one-layer :class:`~probes._stacked.TrainedHead` (weights
``coef_.T``, standardisation folded in as ``mean``/``scale``), so prediction and scoring
share one code path with the AdamW heads.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from probes._stacked import HeadTask, TrainedHead, standardisation
from probes.config import ProbeConfig


def fit_logreg(
    features: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    tasks: Sequence[HeadTask],
    config: ProbeConfig,
    n_classes: int = 4,
) -> list[TrainedHead]:
    """Fit one logistic regression per task.

    Parameters
    ----------
    features : ``(S, N, D)`` pooled features
    labels : ``(N,)`` class indices
    tasks : heads to fit (the validation part is only scored, L-BFGS needs no stopping)
    config : ``logreg_c`` (inverse L2 strength), ``logreg_max_iter``

    Returns
    -------
    list of :class:`TrainedHead` in the order of ``tasks``; ``epochs`` holds L-BFGS
    iterations and ``best_val_loss`` / ``best_val_acc`` the validation figures.
    """
    feats = torch.as_tensor(np.asarray(features, dtype=np.float32))
    y = np.asarray(labels, dtype=np.int64)
    out = []
    for task in tasks:
        mean, scale = standardisation(feats[task.slot], task.train_rows)
        x = ((feats[task.slot][torch.as_tensor(task.train_rows)] - mean) / scale).numpy().astype(np.float64)
        clf = LogisticRegression(C=config.logreg_c, max_iter=config.logreg_max_iter, solver="lbfgs")
        with warnings.catch_warnings():
            # a capped L-BFGS is the documented quick-look behaviour, not an error
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x, y[task.train_rows])
        w, b = _full_weights(clf, feats.shape[-1], n_classes)
        head = TrainedHead(
            layer=task.layer, fold=task.fold, weights=[w], biases=[b], mean=mean, scale=scale,
            epochs=int(np.max(clf.n_iter_)), best_epoch=int(np.max(clf.n_iter_)),
            best_val_loss=float("nan"), best_val_acc=float("nan"),
        )
        logits = head.logits(feats[task.slot][torch.as_tensor(task.valid_rows)])
        yv = torch.as_tensor(y[task.valid_rows])
        head.best_val_loss = float(torch.nn.functional.cross_entropy(logits, yv))
        head.best_val_acc = float((logits.argmax(-1) == yv).double().mean())
        out.append(head)
    return out


def _full_weights(clf: LogisticRegression, dim: int, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(D, n_classes)`` weights and ``(n_classes,)`` bias, also when the training part
    lacks classes (absent classes get a logit that never wins)."""
    classes = [int(c) for c in clf.classes_]
    w = np.zeros((dim, n_classes), dtype=np.float32)
    b = np.full(n_classes, -1e9, dtype=np.float32)
    if len(classes) == 2:  # sklearn keeps one row: p(classes[1]) = sigmoid(z)
        b[classes[0]] = 0.0
        w[:, classes[1]] = clf.coef_[0]
        b[classes[1]] = clf.intercept_[0]
    else:
        for row, c in enumerate(classes):
            w[:, c] = clf.coef_[row]
            b[c] = clf.intercept_[row]
    return torch.from_numpy(w), torch.from_numpy(b)
