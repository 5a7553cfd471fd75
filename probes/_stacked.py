"""The stacked trainer: every (layer, fold) head of a condition trained as one model.

Each head's weights are a slice of stacked tensors (``(H, in, out)``) and one training step
runs all heads with batched matrix products (``torch.bmm``). The loss is the sum of the
heads' own mean cross-entropies, so a head's gradient is the one it would get alone, and
AdamW updates each weight from its own gradient and its own moments: a stacked head follows
the trajectory of a head trained alone. What would couple heads is kept per head: the
initialisation and the shuffle order come from the head's own ``torch.Generator`` (seeded
from ``(seed, layer, fold)``); early stopping, best-accuracy snapshots and epochs run are
tracked per head. A stopped head is cut out of the stack, with its AdamW moments sliced
alongside, so it stops costing time and nothing (not even weight decay) moves it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from featstore.malloc import keep_freed_memory
from probes.config import ProbeConfig
from probes.heads import HEADS


@dataclass(frozen=True)
class HeadTask:
    """One head to train.

    Attributes
    ----------
    slot : index of the head's features along axis 0 of the feature tensor
    layer : hidden-state index (reporting and seeding)
    fold : fold number (reporting and seeding)
    train_rows, valid_rows : row indices (into axis 1 of the features) of the training and
        validation parts
    """

    slot: int
    layer: int
    fold: int
    train_rows: np.ndarray
    valid_rows: np.ndarray


@dataclass
class TrainedHead:
    """A trained head at its best-validation-accuracy epoch.

    Attributes
    ----------
    layer, fold : what it was trained on
    weights : per layer of the head, a ``(in, out)`` float32 tensor
    biases : per layer, a ``(out,)`` tensor
    mean, scale : ``(D,)`` standardisation applied to inputs first (``None``: raw features)
    epochs : epochs run (iterations for ``logreg``)
    best_epoch : epoch of the kept state (1-based)
    best_val_loss : lowest validation cross-entropy seen (the early-stopping criterion)
    best_val_acc : validation accuracy of the kept state
    extra : best state of the input source's own parameters (empty for per-layer heads;
        a weighted sum's layer logits, :mod:`probes._weighted`)
    """

    layer: int
    fold: int
    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    mean: torch.Tensor | None
    scale: torch.Tensor | None
    epochs: int
    best_epoch: int
    best_val_loss: float
    best_val_acc: float
    extra: list[torch.Tensor] = field(default_factory=list)

    def logits(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Logits ``(n, n_classes)`` for features ``(n, D)``."""
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        if self.mean is not None:
            x = (x - self.mean) / self.scale
        with torch.no_grad():
            for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
                x = torch.addmm(b, x, w)
                if i < len(self.weights) - 1:
                    x = torch.relu(x)
        return x

    def predict_proba(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` float32."""
        return torch.softmax(self.logits(features), dim=-1).numpy()

    def predict(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """Class indices ``(n,)`` int64."""
        return self.logits(features).argmax(-1).numpy().astype(np.int64)


def head_generator(seed: int, layer: int, fold: int) -> torch.Generator:
    """The head's own generator, seeded from ``(seed, layer, fold)`` (same head, same draws)."""
    state = np.random.SeedSequence([int(seed), int(layer), int(fold)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


def init_params(widths: Sequence[int], generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``nn.Linear``'s default init, U(-1/sqrt(in), 1/sqrt(in)), drawn from ``generator``.

    Returns per layer ``(W (in, out), b (out,))``; W first, then b, layer by layer.
    """
    out = []
    for d_in, d_out in zip(widths[:-1], widths[1:], strict=True):
        bound = 1.0 / np.sqrt(d_in)
        w = (torch.rand(d_out, d_in, generator=generator) * 2 - 1) * bound
        b = (torch.rand(d_out, generator=generator) * 2 - 1) * bound
        out.append((w.t().contiguous(), b))
    return out


def make_optimizer(params: Sequence[torch.nn.Parameter], config: ProbeConfig) -> torch.optim.Optimizer:
    """AdamW with the fused kernel where this torch has it (the optimiser, not the
    arithmetic, dominates small probes), else the foreach one."""
    kwargs = {"lr": config.lr, "eps": config.eps, "weight_decay": config.weight_decay}
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, foreach=True, **kwargs)


def standardisation(features: torch.Tensor, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and scale ``(D,)`` of ``features[rows]`` (population std; 1 where constant)."""
    part = features[torch.as_tensor(rows)].double()
    mean = part.mean(0)
    scale = part.std(0, unbiased=False)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return mean.float(), scale.float()


def train_stacked(
    features: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    tasks: Sequence[HeadTask],
    config: ProbeConfig,
    n_classes: int = 4,
) -> list[TrainedHead]:
    """Train every head of ``tasks`` with AdamW, stacked, as if each were trained alone.

    Parameters
    ----------
    features : ``(S, N, D)`` float32 pooled features (``S`` slots, e.g. layers)
    labels : ``(N,)`` class indices in ``0 .. n_classes-1``
    tasks : the heads; heads whose training and validation parts have the same sizes train
        together, ``config.max_stack`` at a time
    config : protocol (head widths, AdamW, epochs, batch size, patience, seed)

    Returns
    -------
    list of :class:`TrainedHead`, in the order of ``tasks``.
    """
    spec = HEADS[config.head]
    if spec.kind != "sgd":
        raise ValueError(f"head {config.head!r} is not trained by gradient descent")
    # contiguous once here: the cache's (layer, utterance, dim) arrays come as a transposed view,
    # and every group's (S * N, D) view would otherwise copy the whole array again
    feats = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    widths = spec.widths(feats.shape[-1], n_classes)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, task in enumerate(tasks):
        if len(task.train_rows) == 0 or len(task.valid_rows) == 0:
            raise ValueError(f"layer {task.layer} fold {task.fold}: empty training or validation part")
        groups.setdefault((len(task.train_rows), len(task.valid_rows)), []).append(i)
    out: list[TrainedHead | None] = [None] * len(tasks)
    for members in groups.values():
        # a small stack keeps its weights, gradients and AdamW moments in the core's share of
        # the cache (ProbeConfig.max_stack; the results are the same whatever the stacking);
        # heads reading the same slot stack together, so a stack's gathers share one block
        members = sorted(members, key=lambda i: tasks[i].slot)
        for part in stack_chunks(len(members), config.max_stack):
            chunk = members[part]
            for i, head in zip(chunk, _train_group(feats, y, [tasks[i] for i in chunk], widths, config), strict=True):
                out[i] = head
    return out  # type: ignore[return-value]


def stack_chunks(n_heads: int, max_stack: int) -> list[slice]:
    """``n_heads`` split into the fewest stacks of at most ``max_stack``, of sizes that
    differ by at most one (65 heads, 16 at most: five stacks of 13, not 16, 16, 16, 16
    and a lone head paying a whole stack's per-step cost)."""
    if n_heads <= 0:
        return []
    n_stacks = -(-n_heads // max_stack)
    bounds = [round(k * n_heads / n_stacks) for k in range(n_stacks + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


class _StackedLinear(torch.autograd.Function):
    """``x @ w.transpose(1, 2) + b`` for a stack of weights ``w (H, out, in)`` (``nn.Linear``'s
    layout) and biases ``b (H, 1, out)``. The weight gradient is computed as ``dy^T x``, which
    lands in the weight's own layout; autograd's ``bmm`` would compute ``x^T dy``, about 25 %
    slower for the first layer's (32 x 768)^T (32 x 128) products on CPU (one thread, 16
    heads, the 2-core AMD EPYC VM), and then copy it into the weight's layout."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, w)
        return torch.bmm(x, w.transpose(1, 2)).add_(b)  # faster than baddbmm with a broadcast bias

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        return (torch.bmm(dy, w) if need_x else None,  # no input gradient for the features themselves
                torch.bmm(dy.transpose(1, 2), x) if need_w else None,
                dy.sum(1, keepdim=True) if need_b else None)


def _forward(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        x = _StackedLinear.apply(x, w, b)
        if i < len(weights) - 1:
            x = torch.relu(x)
    return x


def bind_grads(params: Sequence[torch.nn.Parameter]) -> list[torch.Tensor]:
    """A gradient buffer per parameter, set as its ``.grad`` (AdamW reads it there) and
    overwritten by every :func:`backprop`."""
    grads = [torch.zeros_like(p) for p in params]
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    return grads


def backprop(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], x: torch.Tensor,
             target: torch.Tensor, grads: Sequence[torch.Tensor]) -> None:
    """The gradients of the summed heads' mean cross-entropies (what autograd gives for
    ``_head_losses(_forward(...)).sum()``), computed by hand into ``grads`` (the weights',
    then the biases'): the same products as :class:`_StackedLinear`, without the autograd
    graph, its bookkeeping and a new gradient tensor every step (about 15 % of a 13-head
    step on CPU). ``x`` ``(H, B, D)`` must not need a gradient."""
    n_layers = len(weights)
    with torch.no_grad():
        acts = [x]  # each layer's input (after the previous ReLU)
        h = x
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            h = torch.bmm(h, w.transpose(1, 2)).add_(b)
            if i < n_layers - 1:
                h = h.clamp_min_(0)
            acts.append(h)
        # d(mean over B of -log softmax[target]) / d logits = (softmax - one_hot) / B
        share = 1.0 / h.shape[1]
        dy = torch.log_softmax(h, -1).exp_().mul_(share)
        dy.scatter_add_(2, target.unsqueeze(-1), torch.full((*target.shape, 1), -share, dtype=dy.dtype))
        for i in reversed(range(n_layers)):
            torch.bmm(dy.transpose(1, 2), acts[i], out=grads[i])  # dy^T x, in the weight's layout
            torch.sum(dy, 1, keepdim=True, out=grads[n_layers + i])
            if i > 0:
                dy = torch.bmm(dy, weights[i]).mul_(acts[i] > 0)


def _head_losses(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    n_heads, n, n_classes = logits.shape
    per = F.cross_entropy(logits.reshape(-1, n_classes), target.reshape(-1), reduction="none")
    return per.view(n_heads, n).mean(1)


PRESTANDARDISE_BYTES = 1 << 30
"""Largest copy of a stack's standardised features :class:`SlotInputs` makes (16 heads of
2,000 utterances x 768 dims: 98 MB); beyond it each minibatch is standardised as it is gathered."""


class SlotInputs:
    """Inputs of per-layer heads: head ``h`` reads the features of its own slot.

    An input source gives :func:`train_group` each head's minibatch ``(H, B, D)`` and
    validation inputs; other sources (:mod:`probes._weighted`) mix several slots and
    bring parameters of their own (``params``), trained with the heads.
    """

    def __init__(self, feats: torch.Tensor, tasks: Sequence[HeadTask], config: ProbeConfig) -> None:
        self.slots = torch.tensor([t.slot for t in tasks])
        self.n_utts = feats.shape[1]
        self.params: list[torch.nn.Parameter] = []
        self.stats = None
        self.mean = self.scale = None
        if config.standardize:
            self.stats = [standardisation(feats[t.slot], t.train_rows) for t in tasks]
            self.mean = torch.stack([m for m, _ in self.stats]).unsqueeze(1)
            self.scale = torch.stack([s for _, s in self.stats]).unsqueeze(1)
        valid_rows = torch.as_tensor(np.stack([np.asarray(t.valid_rows, dtype=np.int64) for t in tasks]))
        self.x_valid = self._standardise(feats[self.slots[:, None], valid_rows])
        # each head's standardised features once, when they fit PRESTANDARDISE_BYTES: a
        # minibatch is then one gather (the same floats as standardising each minibatch)
        own = self.mean is not None and len(tasks) * feats[0].numel() * 4 <= PRESTANDARDISE_BYTES
        self.flat = (feats[self.slots].sub_(self.mean).div_(self.scale) if own else feats).reshape(-1, feats.shape[-1])
        self.base = (torch.arange(len(tasks)) if own else self.slots) * self.n_utts  # first row of each head's block
        self.standardised = own

    def _standardise(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.mean is None else (x - self.mean) / self.scale

    def epoch_index(self, rows: torch.Tensor) -> torch.Tensor:
        """The epoch's shuffled rows ``(H, n_train)`` as rows of the flat ``(., D)`` view."""
        return rows + self.base[:, None]

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """Inputs ``(H, B, D)`` of a minibatch (``index``: a slice of :meth:`epoch_index`)."""
        # index_select on a 2-D view gathers about twice as fast as 3-D fancy indexing
        x = self.flat.index_select(0, index.reshape(-1)).view(index.shape[0], index.shape[1], -1)
        return x if self.standardised else self._standardise(x)

    def valid(self) -> torch.Tensor:
        """Validation inputs ``(H, n_valid, D)``."""
        return self.x_valid

    def keep(self, idx: torch.Tensor, params: list[torch.nn.Parameter]) -> None:
        """Keep only the heads at positions ``idx``; ``params`` are this source's
        parameters after compaction."""
        self.slots, self.base, self.x_valid = self.slots[idx], self.base[idx], self.x_valid[idx]
        if self.mean is not None:
            self.mean, self.scale = self.mean[idx], self.scale[idx]
        self.params = params

    def head_standardisation(self, h: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """What :class:`TrainedHead` applies to its inputs first (head ``h`` of the group)."""
        return (None, None) if self.stats is None else self.stats[h]


def _train_group(
    feats: torch.Tensor, y: torch.Tensor, tasks: Sequence[HeadTask], widths: Sequence[int], config: ProbeConfig
) -> list[TrainedHead]:
    return train_group(y, tasks, widths, config, SlotInputs(feats, tasks, config))


def train_group(
    y: torch.Tensor,
    tasks: Sequence[HeadTask],
    widths: Sequence[int],
    config: ProbeConfig,
    source: SlotInputs,
    seed_layers: Sequence[int] | None = None,
) -> list[TrainedHead]:
    """Train the heads of ``tasks`` (equal part sizes) as one stack on ``source``'s inputs.

    ``seed_layers`` (default: each task's layer) is the layer each head's generator is
    seeded with. Returns one :class:`TrainedHead` per task; its ``extra`` holds the best
    state of ``source.params`` (e.g. a weighted sum's layer logits).
    """
    n_heads, n_layers = len(tasks), len(widths) - 1
    seed_layers = [t.layer for t in tasks] if seed_layers is None else list(seed_layers)
    gens = [head_generator(config.seed, k, t.fold) for k, t in zip(seed_layers, tasks, strict=True)]
    inits = [init_params(widths, g) for g in gens]
    # stacked as (H, out, in), nn.Linear's layout (:class:`_StackedLinear`); heads report (in, out)
    weights = [torch.nn.Parameter(torch.stack([p[k][0].t() for p in inits])) for k in range(n_layers)]
    biases = [torch.nn.Parameter(torch.stack([p[k][1] for p in inits]).unsqueeze(1)) for k in range(n_layers)]
    train_rows = torch.as_tensor(np.stack([np.asarray(t.train_rows, dtype=np.int64) for t in tasks]))
    valid_rows = torch.as_tensor(np.stack([np.asarray(t.valid_rows, dtype=np.int64) for t in tasks]))
    y_valid = y[valid_rows]

    active = list(range(n_heads))  # original head index of each position in the stack
    best_acc = [-1.0] * n_heads
    best_loss = [float("inf")] * n_heads
    best_epoch = [0] * n_heads
    epochs = [0] * n_heads
    wait = [0] * n_heads
    best_state: list[list[torch.Tensor]] = [[] for _ in range(n_heads)]
    params = [*weights, *biases, *source.params]
    keep_freed_memory()  # the same blocks every step: reuse them instead of faulting pages in again
    opt = make_optimizer(params, config)
    # without parameters of the source's own (per-layer heads, frozen mixes) the gradients are
    # computed by hand into buffers AdamW reads (:func:`backprop`); a learned mix needs autograd
    by_hand = not source.params
    grads = bind_grads(params) if by_hand else []
    n_train = train_rows.shape[1]
    for epoch in range(1, config.max_epochs + 1):
        perms = torch.stack([torch.randperm(n_train, generator=gens[h]) for h in active])
        rows = torch.gather(train_rows, 1, perms)
        index = source.epoch_index(rows)
        y_epoch = y[rows]  # the epoch's labels in its order, gathered once
        for start in range(0, n_train, config.batch_size):
            x = source.batch(index[:, start:start + config.batch_size])
            target = y_epoch[:, start:start + config.batch_size]
            if by_hand:
                backprop(weights, biases, x, target, grads)
            else:
                loss = _head_losses(_forward(weights, biases, x), target).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
            opt.step()
        with torch.no_grad():
            logits = _forward(weights, biases, source.valid())
            v_loss = _head_losses(logits, y_valid).tolist()
            v_acc = (logits.argmax(-1) == y_valid).double().mean(1).tolist()
        keep = []
        for pos, h in enumerate(active):
            epochs[h] = epoch
            if v_acc[pos] > best_acc[h]:  # strict: ties keep the earliest epoch
                best_acc[h], best_epoch[h] = v_acc[pos], epoch
                best_state[h] = [p.detach()[pos].clone() for p in params]
            if v_loss[pos] < best_loss[h]:
                best_loss[h], wait[h] = v_loss[pos], 0
            else:
                wait[h] += 1
            if wait[h] < config.patience:
                keep.append(pos)
        if not keep:
            break
        if len(keep) < len(active):
            idx = torch.tensor(keep)
            params, opt = _compact(params, opt, idx, config)
            weights, biases = params[:n_layers], params[n_layers:2 * n_layers]
            source.keep(idx, params[2 * n_layers:])
            grads = bind_grads(params) if by_hand else []
            train_rows, y_valid = train_rows[idx], y_valid[idx]
            active = [active[p] for p in keep]

    out = []
    for h, task in enumerate(tasks):
        state = best_state[h]
        mean, scale = source.head_standardisation(h)
        out.append(TrainedHead(
            layer=task.layer, fold=task.fold,
            weights=[w.t().contiguous() for w in state[:n_layers]],
            biases=[b.squeeze(0) for b in state[n_layers:2 * n_layers]],
            mean=mean, scale=scale,
            epochs=epochs[h], best_epoch=best_epoch[h],
            best_val_loss=best_loss[h], best_val_acc=best_acc[h],
            extra=state[2 * n_layers:],
        ))
    return out


def _compact(
    params: list[torch.nn.Parameter], opt: torch.optim.Optimizer, keep: torch.Tensor, config: ProbeConfig
) -> tuple[list[torch.nn.Parameter], torch.optim.Optimizer]:
    """Cut stopped heads out of the stack, carrying the AdamW moments of the others."""
    n_before = params[0].shape[0]
    new_params = [torch.nn.Parameter(p.detach()[keep].clone()) for p in params]
    new_opt = make_optimizer(new_params, config)
    for old, new in zip(params, new_params, strict=True):
        state = opt.state.get(old)
        if not state:
            continue
        new_opt.state[new] = {
            k: (v[keep].clone() if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == n_before else
                (v.clone() if torch.is_tensor(v) else v))
            for k, v in state.items()
        }
    return new_params, new_opt
