"""Training with early stopping, and two-stage training.

AdamW over the adapters and the head; the validation loss decides when to stop (no decrease
for ``patience`` epochs) and the validation accuracy which epoch's weights are kept.
Repeatable on CPU: batches come from a seeded ``numpy`` generator and dropout from a
seeded torch generator scoped to the run (``torch.random.fork_rng``), never a global seed.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from featstore.configs import check_fields
from finetune.data import ClipSet, batch_inputs, length_sorted_batches
from finetune.model import SERModel

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule (defaults: the paper's PEFT runs)."""

    lr: float = field(default=1e-4, metadata={"help": "AdamW learning rate", "gt": 0})
    eps: float = field(default=1e-8, metadata={"help": "AdamW epsilon", "gt": 0})
    weight_decay: float = field(default=1e-5, metadata={"help": "AdamW weight decay", "min": 0})
    batch_size: int = field(default=16, metadata={"help": "clips per optimiser step (before accumulation)", "min": 1})
    max_epochs: int = field(default=100, metadata={"help": "epochs per stage at most", "min": 1})
    patience: int = field(default=10, metadata={"help": "epochs without a lower validation loss before stopping",
                                                "min": 1})
    accumulate: int = field(default=1, metadata={"help": "batches whose gradients add up before a step", "min": 1})
    seed: int = field(default=0, metadata={"help": "seed of batch order and dropout", "min": 0})
    precision: str = field(default="auto", metadata={
        "help": "auto (bf16/fp16 on CUDA, fp32 on CPU), fp32, bf16, fp16", "choices": PRECISIONS})
    gradient_checkpointing: bool = field(default=True, metadata={"help": "recompute layers in backward (CUDA only)"})

    def __post_init__(self) -> None:
        check_fields(self)  # every field's rules (types, bounds, choices) in its metadata


@dataclass
class FitResult:
    """What one stage of training returns.

    ``best_state`` holds the adapter and head weights of the epoch with the best validation
    accuracy; ``log`` one dict per epoch; ``seen_utt_ids`` every training clip used.
    """

    best_state: dict[str, torch.Tensor]
    best_valid_acc: float
    best_valid_loss: float
    best_epoch: int
    epochs: int
    log: list[dict] = field(default_factory=list)
    seen_utt_ids: set[str] = field(default_factory=set)


def make_optimizer(model: SERModel, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=config.lr, eps=config.eps, weight_decay=config.weight_decay)


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None = full float32). Mixed precision only on CUDA."""
    if device.type != "cuda" or config.precision == "fp32":
        return None
    if config.precision == "bf16" or (config.precision == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


@contextlib.contextmanager
def _autocast(dtype: torch.dtype | None, device: torch.device) -> Iterator[None]:
    if dtype is None:
        yield
    else:
        with torch.autocast(device_type=device.type, dtype=dtype):
            yield


def evaluate(model: SERModel, clips: ClipSet, batch_size: int = 16,
             precision: TrainConfig | None = None) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and class probabilities (N, n_classes), rows in ``clips`` order."""
    device = next(model.parameters()).device
    dtype = autocast_dtype(precision or TrainConfig(), device)
    was_training = model.training
    model.train(False)
    probs = np.zeros((len(clips), model.config.n_classes), dtype=np.float64)
    total = 0.0
    with torch.no_grad(), _autocast(dtype, device):
        for idx in length_sorted_batches(clips.lengths, batch_size, None):
            h, mask = batch_inputs(model, clips, idx)
            logits = model(h, mask).float()
            y = torch.as_tensor(clips.labels[idx], device=device)
            total += float(F.cross_entropy(logits, y, reduction="sum"))
            probs[idx] = torch.softmax(logits, dim=-1).cpu().numpy()
    model.train(was_training)
    return total / max(len(clips), 1), probs


def fit(
    model: SERModel,
    train: ClipSet,
    valid: ClipSet,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer | None = None,
    stage: str = "train",
    on_epoch: Callable[[dict], None] | None = None,
) -> FitResult:
    """Train until the validation loss has not decreased for ``config.patience`` epochs
    (or ``max_epochs``), then load the best-validation-accuracy weights into ``model``.

    Parameters
    ----------
    model : :class:`SERModel` (adapters and head trainable)
    train, valid : clip sets
    config : :class:`TrainConfig`
    optimizer : reuse an optimiser (two-stage training); default a fresh AdamW
    stage : name written in the log rows
    on_epoch : called with each epoch's log row (progress display)
    """
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(f"stage {stage!r}: empty training ({len(train)}) or validation ({len(valid)}) set")
    device = next(model.parameters()).device
    optimizer = optimizer or make_optimizer(model, config)
    dtype = autocast_dtype(config, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    model.use_checkpointing = config.gradient_checkpointing and device.type == "cuda"
    rng = np.random.default_rng([config.seed, _stage_number(stage)])
    result = FitResult({}, -1.0, math.inf, 0, 0)
    lowest, waited = math.inf, 0
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(config.seed)
        for epoch in range(1, config.max_epochs + 1):
            start = time.perf_counter()
            train_loss, train_acc = train_epoch(model, train, optimizer, config, rng, dtype, scaler, result)
            valid_loss, probs = evaluate(model, valid, config.batch_size, config)
            valid_acc = float(np.mean(probs.argmax(1) == valid.labels))
            row = {"stage": stage, "epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                   "valid_loss": valid_loss, "valid_acc": valid_acc, "seconds": time.perf_counter() - start}
            result.log.append(row)
            result.epochs = epoch
            if on_epoch is not None:
                on_epoch(row)
            if valid_acc > result.best_valid_acc:
                result.best_valid_acc, result.best_epoch = valid_acc, epoch
                result.best_state = model.trainable_state_dict()
            if valid_loss < lowest:
                lowest, waited = valid_loss, 0
            else:
                waited += 1
                if waited >= config.patience:
                    break
    result.best_valid_loss = lowest
    model.load_trainable_state_dict(result.best_state)
    model.train(False)
    return result


def train_epoch(model: SERModel, clips: ClipSet, optimizer: torch.optim.Optimizer, config: TrainConfig,
                rng: np.random.Generator, dtype: torch.dtype | None, scaler: torch.amp.GradScaler | None,
                result: FitResult) -> tuple[float, float]:
    """One pass over ``clips`` in length-sorted batches drawn from ``rng``; returns the
    mean training loss and accuracy (training clips are added to ``result.seen_utt_ids``)."""
    device = next(model.parameters()).device
    model.train(True)
    batches = length_sorted_batches(clips.lengths, config.batch_size, rng)
    total, correct = 0.0, 0
    optimizer.zero_grad(set_to_none=True)
    for b, idx in enumerate(batches):
        y = torch.as_tensor(clips.labels[idx], device=device)
        result.seen_utt_ids.update(clips.utt_ids[i] for i in idx)
        with _autocast(dtype, device):
            h, mask = batch_inputs(model, clips, idx)
            logits = model(h, mask).float()
        loss = F.cross_entropy(logits, y)
        total += float(loss.detach()) * len(idx)
        correct += int((logits.argmax(1) == y).sum())
        scaled = loss / config.accumulate
        (scaler.scale(scaled) if scaler is not None else scaled).backward()
        if (b + 1) % config.accumulate == 0 or b + 1 == len(batches):
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    model.train(False)
    return total / len(clips), correct / len(clips)


def _stage_number(stage: str) -> int:
    # a stable integer per stage name, so each stage draws its own batch order
    return sum(ord(c) * (i + 1) for i, c in enumerate(stage)) % (2**31)


def fit_two_stage(
    model: SERModel,
    source_train: ClipSet,
    source_valid: ClipSet,
    target_train: ClipSet,
    target_valid: ClipSet,
    config: TrainConfig,
    on_epoch: Callable[[dict], None] | None = None,
) -> tuple[FitResult, FitResult]:
    """Stage 1 on the source language until early stopping; stage 2 from stage 1's best
    weights on the target language with fresh patience (same optimiser state). Returns both
    stages' results; ``model`` ends with stage 2's best-validation-accuracy weights."""
    optimizer = make_optimizer(model, config)
    first = fit(model, source_train, source_valid, config, optimizer, "stage1", on_epoch)
    second = fit(model, target_train, target_valid, config, optimizer, "stage2", on_epoch)
    return first, second
