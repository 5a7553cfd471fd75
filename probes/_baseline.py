"""The reference trainer: one head at a time with a plain per-minibatch loop, the way the
paper's code trains (``nn.Sequential``, a ``DataLoader``, the default AdamW).

Used by the benchmark as the "before" figure and as an independent check of the stacked
trainer: it draws the same initialisation and the same shuffles from the head's generator
(one ``torch.randperm(n, generator=...)`` per epoch, as the stacked trainer; torch's
``RandomSampler`` would draw a second, empty-sliced permutation per epoch), so both reach
the same heads up to float rounding.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from probes._stacked import HeadTask, TrainedHead, head_generator, init_params, standardisation
from probes.config import ProbeConfig
from probes.heads import HEADS


def train_plain(
    features: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    task: HeadTask,
    config: ProbeConfig,
    n_classes: int = 4,
) -> TrainedHead:
    """Train one head alone with a per-minibatch loop.

    Parameters
    ----------
    features : ``(S, N, D)`` pooled features; the head uses slot ``task.slot``
    labels : ``(N,)`` class indices
    task, config : as for :func:`probes._stacked.train_stacked`
    """
    feats = torch.as_tensor(np.asarray(features, dtype=np.float32))[task.slot]
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    mean = scale = None
    if config.standardize:
        mean, scale = standardisation(feats, task.train_rows)
        feats = (feats - mean) / scale
    gen = head_generator(config.seed, task.layer, task.fold)
    layers: list[nn.Module] = []
    widths = HEADS[config.head].widths(feats.shape[-1], n_classes)
    for i, (w, b) in enumerate(init_params(widths, gen)):
        lin = nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(w.t())
            lin.bias.copy_(b)
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, eps=config.eps, weight_decay=config.weight_decay)
    tr, va = torch.as_tensor(task.train_rows), torch.as_tensor(task.valid_rows)
    loader = DataLoader(TensorDataset(feats[tr], y[tr]), batch_size=config.batch_size,
                        sampler=_EpochPermutation(len(tr), gen))
    x_valid, y_valid = feats[va], y[va]
    loss_fn = nn.CrossEntropyLoss()
    best_acc, best_loss, best_epoch, wait, epochs = -1.0, float("inf"), 0, 0, 0
    best_state = copy.deepcopy(model.state_dict())
    for epoch in range(1, config.max_epochs + 1):
        epochs = epoch
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_valid)
            v_loss = float(loss_fn(logits, y_valid))
            v_acc = float((logits.argmax(-1) == y_valid).double().mean())
        if v_acc > best_acc:
            best_acc, best_epoch = v_acc, epoch
            best_state = copy.deepcopy(model.state_dict())
        if v_loss < best_loss:
            best_loss, wait = v_loss, 0
        else:
            wait += 1
            if wait >= config.patience:
                break
    keys = [k for k, m in model.named_children() if isinstance(m, nn.Linear)]
    return TrainedHead(
        layer=task.layer, fold=task.fold,
        weights=[best_state[f"{k}.weight"].t().contiguous() for k in keys],
        biases=[best_state[f"{k}.bias"].clone() for k in keys],
        mean=mean, scale=scale, epochs=epochs, best_epoch=best_epoch,
        best_val_loss=best_loss, best_val_acc=best_acc,
    )


class _EpochPermutation(Sampler[int]):
    """A fresh permutation of ``range(n)`` from ``generator`` at every epoch."""

    def __init__(self, n: int, generator: torch.Generator) -> None:
        self.n, self.generator = n, generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self):  # noqa: ANN204 - an iterator of ints, as torch's samplers
        return iter(torch.randperm(self.n, generator=self.generator).tolist())
