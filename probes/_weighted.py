"""The weighted-sum trainer: SUPERB's featurizer under the paper's head, stacked over folds.

A weighted-sum probe reads every hidden state: its input is ``sum_l a_l x_l`` with
``a = softmax(theta)``, one learned logit per hidden state (``theta`` starts at 0, equal
weights, as SUPERB's featurizer), and the paper's head on top. ``theta`` is trained jointly
with the head by the same AdamW step (``logit_scale`` multiplies its learning rate), early stopping and best-accuracy snapshot as the
per-layer heads (:func:`probes._stacked.train_group`); the weighted probes of all folds of
a condition train as one stack. With ``frozen`` weights (e.g. one-hot on layer ``k``) the
mix is fixed and not trained: seeded like the layer-``k`` head, the probe then follows the
layer-``k`` head's trajectory exactly (the oracle test).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from probes._stacked import HeadTask, TrainedHead, standardisation, train_group
from probes.config import ProbeConfig
from probes.heads import HEADS

WEIGHTED_SEED_LAYER = 1_000_003
"""The "layer" a weighted probe's generator is seeded with (``(seed, this, fold)``): no real
hidden state has it, so the weighted probe draws apart from every per-layer head."""


@dataclass(frozen=True)
class WeightedTask:
    """One weighted-sum probe to train.

    Attributes
    ----------
    fold : fold number (reporting and seeding)
    train_rows, valid_rows : row indices (into axis 1 of the features)
    seed_layer : the layer its generator is seeded with (default :data:`WEIGHTED_SEED_LAYER`)
    frozen : fixed mixing weights ``(S,)`` (sum 1; not trained); ``None``: learned
    """

    fold: int
    train_rows: np.ndarray
    valid_rows: np.ndarray
    seed_layer: int = WEIGHTED_SEED_LAYER
    frozen: np.ndarray | None = None


@dataclass
class WeightedHead:
    """A trained weighted-sum probe at its best-validation-accuracy epoch.

    Attributes
    ----------
    head : the head on the mixed features (its ``layer`` is -1, its inputs raw)
    layer_weights : ``(S,)`` float64 mixing weights (softmax of the learned logits; sum 1)
    mean, scale : ``(S, 1, D)`` per-slot standardisation applied before mixing (``None``: raw)
    """

    head: TrainedHead
    layer_weights: np.ndarray
    mean: torch.Tensor | None = None
    scale: torch.Tensor | None = None

    @property
    def fold(self) -> int:
        """Fold number."""
        return self.head.fold

    def mix(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Mixed features ``(n, D)`` float32 of ``features`` ``(S, n, D)``."""
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        if self.mean is not None:
            x = (x - self.mean) / self.scale
        a = torch.as_tensor(self.layer_weights, dtype=torch.float32)
        return torch.einsum("s,snd->nd", a, x)

    def predict_proba(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` for features ``(S, n, D)``."""
        return self.head.predict_proba(self.mix(features))


class MixInputs:
    """Input source of :func:`probes._stacked.train_group`: head ``h``'s input is the
    ``softmax(theta_h)``-weighted sum of every slot (or its ``frozen`` weights)."""

    def __init__(self, feats: torch.Tensor, tasks: Sequence[WeightedTask], config: ProbeConfig,
                 logit_scale: float = 1.0) -> None:
        self.logit_scale = float(logit_scale)
        n_slots, self.n_utts, self.dim = feats.shape
        self.flat = feats.reshape(-1, self.dim)
        self.offsets = torch.arange(n_slots) * self.n_utts
        frozen = [t.frozen is not None for t in tasks]
        if any(frozen) and not all(frozen):
            raise ValueError("weighted probes with frozen and learned weights cannot train in one stack")
        if all(frozen):
            fixed = np.stack([np.asarray(t.frozen, dtype=np.float32) for t in tasks])
            if fixed.shape[1] != n_slots or not np.allclose(fixed.sum(1), 1.0):
                raise ValueError(f"frozen layer weights must be {n_slots} values summing to 1")
            self.fixed: torch.Tensor | None = torch.as_tensor(fixed)
            self.params: list[torch.nn.Parameter] = []
        else:
            self.fixed = None
            self.params = [torch.nn.Parameter(torch.zeros(len(tasks), n_slots))]
        self.mean = self.scale = None
        if config.standardize:
            stats = [[standardisation(feats[s], t.train_rows) for s in range(n_slots)] for t in tasks]
            self.mean = torch.stack([torch.stack([m for m, _ in per]) for per in stats]).unsqueeze(2)
            self.scale = torch.stack([torch.stack([s for _, s in per]) for per in stats]).unsqueeze(2)
        self.stats = (self.mean, self.scale)
        valid_rows = torch.as_tensor(np.stack([np.asarray(t.valid_rows, dtype=np.int64) for t in tasks]))
        self.g_valid = self._gather(valid_rows)

    def _gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Every slot's features of ``rows`` ``(H, n)``: ``(H, S, n * D)``, standardised."""
        n_heads, n = rows.shape
        index = rows[:, None, :] + self.offsets[None, :, None]
        g = self.flat.index_select(0, index.reshape(-1)).view(n_heads, -1, n, self.dim)
        if self.mean is not None:
            g = (g - self.mean) / self.scale
        return g.view(n_heads, -1, n * self.dim)

    def _mix(self, g: torch.Tensor) -> torch.Tensor:
        a = self.fixed if self.fixed is not None else torch.softmax(self.logit_scale * self.params[0], dim=1)
        return torch.bmm(a.unsqueeze(1), g).view(g.shape[0], -1, self.dim)

    def epoch_index(self, rows: torch.Tensor) -> torch.Tensor:
        """The epoch's shuffled rows ``(H, n_train)`` (mixed per minibatch)."""
        return rows

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """Mixed inputs ``(H, B, D)`` of the minibatch rows ``index`` ``(H, B)``."""
        return self._mix(self._gather(index))

    def valid(self) -> torch.Tensor:
        """Mixed validation inputs ``(H, n_valid, D)`` under the current weights."""
        return self._mix(self.g_valid)

    def keep(self, idx: torch.Tensor, params: list[torch.nn.Parameter]) -> None:
        """Keep only the heads at positions ``idx`` (``params``: this source's, compacted)."""
        self.g_valid = self.g_valid[idx]
        if self.fixed is not None:
            self.fixed = self.fixed[idx]
        if self.mean is not None:
            self.mean, self.scale = self.mean[idx], self.scale[idx]
        self.params = params

    def head_standardisation(self, h: int) -> tuple[None, None]:
        """The head reads mixed features, already standardised per slot."""
        return None, None


def train_weighted(
    features: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    tasks: Sequence[WeightedTask],
    config: ProbeConfig,
    n_classes: int = 4,
    logit_scale: float = 1.0,
) -> list[WeightedHead]:
    """Train one weighted-sum probe per task (all tasks with equal part sizes as one stack,
    ``config.max_stack`` at a time), with the paper's protocol of ``config``.

    Parameters
    ----------
    features : ``(S, N, D)`` float32 pooled features of the ``S`` hidden states mixed
    labels : ``(N,)`` class indices
    tasks : the probes (one per fold)
    config : protocol (head, AdamW, epochs, batch size, patience, seed, standardize)
    logit_scale : the weights are ``softmax(logit_scale * theta)``: AdamW moves ``theta``
        about ``lr`` a step whatever its gradient's size, so this multiplies the weights'
        learning rate (1: SUPERB's featurizer, the head's learning rate)

    Returns
    -------
    list of :class:`WeightedHead`, in the order of ``tasks``.
    """
    spec = HEADS[config.head]
    if spec.kind != "sgd":
        raise ValueError(f"head {config.head!r} is not trained by gradient descent; weighted-sum probes need "
                         "an mlp or linear head")
    feats = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    widths = spec.widths(feats.shape[-1], n_classes)
    groups: dict[tuple[int, int, bool], list[int]] = {}
    for i, task in enumerate(tasks):
        if len(task.train_rows) == 0 or len(task.valid_rows) == 0:
            raise ValueError(f"weighted probe of fold {task.fold}: empty training or validation part")
        groups.setdefault((len(task.train_rows), len(task.valid_rows), task.frozen is None), []).append(i)
    out: list[WeightedHead | None] = [None] * len(tasks)
    for members in groups.values():
        for start in range(0, len(members), config.max_stack):
            chunk = [tasks[i] for i in members[start:start + config.max_stack]]
            source = MixInputs(feats, chunk, config, logit_scale)
            heads = train_group(
                y, [HeadTask(slot=-1, layer=-1, fold=t.fold, train_rows=t.train_rows, valid_rows=t.valid_rows)
                    for t in chunk], widths, config, source, seed_layers=[t.seed_layer for t in chunk])
            for pos, (i, task, head) in enumerate(zip(members[start:start + config.max_stack], chunk, heads,
                                                      strict=True)):
                if task.frozen is not None:
                    a = np.asarray(task.frozen, dtype=np.float64)
                else:
                    a = torch.softmax(logit_scale * head.extra[0].double(), dim=0).numpy()
                mean = None if source.stats[0] is None else source.stats[0][pos]
                scale = None if source.stats[1] is None else source.stats[1][pos]
                out[i] = WeightedHead(head=head, layer_weights=a, mean=mean, scale=scale)
    return out  # type: ignore[return-value]
