"""Training with early stopping, and two-stage training.

AdamW over the adapters and the head; the validation loss decides when to stop (no decrease
for ``patience`` epochs) and the validation accuracy which epoch's weights are kept.
Repeatable on CPU: batches come from a seeded ``numpy`` generator and dropout from a
seeded torch generator scoped to the run (``torch.random.fork_rng``), never a global seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from probes.metrics import classification_metrics

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
TEXT_BATCH_SIZE = 16
"""The paper's PEFT batch size (the authors' code uses 1)."""
SCHEDULES: tuple[str, ...] = ("converge", "authors")


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule (defaults: the paper's PEFT runs)."""

    lr: float = field(default=1e-4, metadata={"help": "AdamW learning rate", "gt": 0})
    eps: float = field(default=1e-8, metadata={"help": "AdamW epsilon", "gt": 0})
    weight_decay: float = field(default=1e-5, metadata={"help": "AdamW weight decay", "min": 0})
    batch_size: int | None = field(default=None, metadata={
        "help": "clips per optimiser step (before accumulation); unset: the protocol's (text 16, authors 1)",
        "min": 1})
    max_epochs: int = field(default=100, metadata={"help": "epochs per stage at most", "min": 1})
    patience: int = field(default=10, metadata={"help": "epochs without a lower validation loss before stopping",
                                                "min": 1})
    accumulate: int = field(default=1, metadata={"help": "batches whose gradients add up before a step", "min": 1})
    seed: int = field(default=0, metadata={"help": "seed of batch order and dropout", "min": 0})
    precision: str = field(default="auto", metadata={
        "help": "auto (bf16/fp16 on CUDA, fp32 on CPU), fp32, bf16, fp16", "choices": PRECISIONS})
    gradient_checkpointing: bool = field(default=True, metadata={"help": "recompute layers in backward (CUDA only)"})
    equal_loss_resets_patience: bool | None = field(default=None, metadata={
        "help": "a validation loss equal to the lowest also resets patience (<=, the authors' code) instead of "
                "only a lower one (<); unset: the protocol's (text <, authors <=)"})

    def __post_init__(self) -> None:
        check_fields(self)  # every field's rules (types, bounds, choices) in its metadata

    def resolved(self, batch_size: int = TEXT_BATCH_SIZE, equal_loss_resets_patience: bool = False) -> TrainConfig:
        """This config with its unset (None) fields filled by the given protocol defaults."""
        return dataclasses.replace(
            self, batch_size=batch_size if self.batch_size is None else self.batch_size,
            equal_loss_resets_patience=(equal_loss_resets_patience if self.equal_loss_resets_patience is None
                                        else self.equal_loss_resets_patience))


@dataclass
class FitResult:
    """What one stage of training returns.

    ``best_state`` holds the adapter and head weights of the epoch with the best validation
    accuracy; ``log`` one dict per epoch; ``seen_utt_ids`` every training clip used.
    ``kept_run_epoch`` counts epochs over the whole run (both stages, 1-based) and
    ``kept_stage`` names the stage the kept weights come from; ``switch_epoch`` is the run
    epoch stage 2 began at (two-stage runs; None otherwise or if stage 2 never ran).
    """

    best_state: dict[str, torch.Tensor]
    best_valid_acc: float
    best_valid_loss: float
    best_epoch: int
    epochs: int
    log: list[dict] = field(default_factory=list)
    seen_utt_ids: set[str] = field(default_factory=set)
    kept_run_epoch: int = 0
    kept_stage: str = ""
    switch_epoch: int | None = None


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


def _valid_corpus(clips: ClipSet) -> str:
    # ClipSet names are "corpus/part/foldN"; the log records the corpus
    return clips.name.split("/")[0] if clips.name else ""


def _improved(loss: float, lowest: float, config: TrainConfig) -> bool:
    return loss <= lowest if config.equal_loss_resets_patience else loss < lowest


def _mark_kept(rows: list[dict], kept_run_epoch: int) -> None:
    for r in rows:
        r["kept"] = r["run_epoch"] == kept_run_epoch


def _setup(model: SERModel, config: TrainConfig) -> tuple[torch.device, torch.dtype | None,
                                                           torch.amp.GradScaler | None, list]:
    device = next(model.parameters()).device
    dtype = autocast_dtype(config, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    model.use_checkpointing = config.gradient_checkpointing and device.type == "cuda"
    return device, dtype, scaler, ([device] if device.type == "cuda" else [])


def _epoch(model: SERModel, train: ClipSet, valid: ClipSet, optimizer: torch.optim.Optimizer, config: TrainConfig,
           rng: np.random.Generator, dtype: torch.dtype | None, scaler: torch.amp.GradScaler | None,
           result: FitResult, stage: str, epoch: int, run_epoch: int) -> dict:
    """Train one epoch and validate; returns the epoch's log row."""
    start = time.perf_counter()
    train_loss, train_acc = train_epoch(model, train, optimizer, config, rng, dtype, scaler, result)
    valid_loss, probs = evaluate(model, valid, config.batch_size, config)
    valid_acc = float(np.mean(probs.argmax(1) == valid.labels))
    valid_ua = float(classification_metrics(valid.labels, probs.argmax(1))["ua"]) if len(valid.labels) else float("nan")
    return {"stage": stage, "epoch": epoch, "run_epoch": run_epoch, "valid_corpus": _valid_corpus(valid),
            "train_loss": train_loss, "train_acc": train_acc, "valid_loss": valid_loss, "valid_acc": valid_acc,
            "valid_ua": valid_ua, "seconds": time.perf_counter() - start, "kept": False}


def fit(
    model: SERModel,
    train: ClipSet,
    valid: ClipSet,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer | None = None,
    stage: str = "train",
    on_epoch: Callable[[dict], None] | None = None,
    epoch_offset: int = 0,
) -> FitResult:
    """Train until the validation loss has not decreased for ``config.patience`` epochs
    (or ``max_epochs``), then load the best-validation-accuracy weights into ``model``.

    Parameters
    ----------
    model : :class:`SERModel` (adapters and head trainable)
    train, valid : clip sets
    config : :class:`TrainConfig` (unset fields: the text protocol's values)
    optimizer : reuse an optimiser (two-stage training); default a fresh AdamW
    stage : name written in the log rows
    on_epoch : called with each epoch's log row (progress display)
    epoch_offset : epochs already run before this stage (the log's ``run_epoch``)
    """
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(f"stage {stage!r}: empty training ({len(train)}) or validation ({len(valid)}) set")
    config = config.resolved()
    optimizer = optimizer or make_optimizer(model, config)
    device, dtype, scaler, fork_devices = _setup(model, config)
    rng = np.random.default_rng([config.seed, _stage_number(stage)])
    result = FitResult({}, -1.0, math.inf, 0, 0, kept_stage=stage)
    lowest, waited = math.inf, 0
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(config.seed)
        for epoch in range(1, config.max_epochs + 1):
            row = _epoch(model, train, valid, optimizer, config, rng, dtype, scaler, result, stage, epoch,
                         epoch_offset + epoch)
            result.log.append(row)
            result.epochs = epoch
            if on_epoch is not None:
                on_epoch(row)
            if row["valid_acc"] > result.best_valid_acc:
                result.best_valid_acc, result.best_epoch = row["valid_acc"], epoch
                result.best_state = model.trainable_state_dict()
            if _improved(row["valid_loss"], lowest, config):
                lowest, waited = row["valid_loss"], 0
            else:
                waited += 1
                if waited >= config.patience:
                    break
    result.best_valid_loss = lowest
    result.kept_run_epoch = epoch_offset + result.best_epoch
    _mark_kept(result.log, result.kept_run_epoch)
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
    schedule: str = "converge",
) -> tuple[FitResult, FitResult]:
    """Two-stage training: stage 1 on the source language, stage 2 on the target language,
    one optimiser throughout. Returns both stages' results; the second holds the kept
    weights (``best_state``, ``kept_run_epoch``, ``kept_stage``) and ``switch_epoch``.

    ``schedule``:

    - ``converge`` (the paper's text): stage 1 until early stopping; stage 2 from stage 1's
      best weights with fresh patience, fresh best accuracy and up to ``max_epochs`` more;
      the kept model is stage 2's best.
    - ``authors`` (``runner_various_peft.py``): one budget of ``max_epochs``; stage 2 begins
      at the top of the epoch after stage 1's early stop, or at epoch ``max_epochs // 2``,
      from the *last* weights; only the lowest loss and patience are reset; the run ends at
      the next trigger (stage 2's early stop, or epoch ``max_epochs // 2`` again) or after
      ``max_epochs``; the kept model has the best validation accuracy of *both* stages.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown two-stage schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    if schedule == "authors":
        return _fit_two_stage_authors(model, source_train, source_valid, target_train, target_valid, config,
                                      on_epoch)
    optimizer = make_optimizer(model, config.resolved())
    first = fit(model, source_train, source_valid, config, optimizer, "stage1", on_epoch)
    second = fit(model, target_train, target_valid, config, optimizer, "stage2", on_epoch, epoch_offset=first.epochs)
    second.switch_epoch = first.epochs + 1
    _mark_kept(first.log, second.kept_run_epoch)
    return first, second


def _fit_two_stage_authors(model: SERModel, source_train: ClipSet, source_valid: ClipSet, target_train: ClipSet,
                           target_valid: ClipSet, config: TrainConfig,
                           on_epoch: Callable[[dict], None] | None) -> tuple[FitResult, FitResult]:
    for name, clips in (("stage-1 training", source_train), ("stage-1 validation", source_valid),
                        ("stage-2 training", target_train), ("stage-2 validation", target_valid)):
        if len(clips) == 0:
            raise ValueError(f"empty {name} set")
    config = config.resolved()
    optimizer = make_optimizer(model, config)
    device, dtype, scaler, fork_devices = _setup(model, config)
    results = {1: FitResult({}, -1.0, math.inf, 0, 0, kept_stage="stage1"),
               2: FitResult({}, -1.0, math.inf, 0, 0, kept_stage="stage2")}
    data = {1: (source_train, source_valid), 2: (target_train, target_valid)}
    rngs = {k: np.random.default_rng([config.seed, _stage_number(f"stage{k}")]) for k in (1, 2)}
    best_acc, best_state, kept, kept_stage, best_stage_epoch = -1.0, {}, 0, "stage1", 0
    stage, stage_epoch, switch = 1, 0, None
    lowest, waited, early = math.inf, 0, False
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(config.seed)
        for run_epoch in range(1, config.max_epochs + 1):
            # the authors' check at the top of each epoch (runner_various_peft.py:229):
            # early stop or epoch num_epochs // 2 switches to stage 2; a second trigger ends
            if early or run_epoch == config.max_epochs // 2:
                if stage == 2:
                    break
                stage, stage_epoch, switch = 2, 0, run_epoch
                lowest, waited, early = math.inf, 0, False  # best accuracy is NOT reset
            stage_epoch += 1
            train, valid = data[stage]
            result = results[stage]
            row = _epoch(model, train, valid, optimizer, config, rngs[stage], dtype, scaler, result,
                         f"stage{stage}", stage_epoch, run_epoch)
            result.log.append(row)
            result.epochs = stage_epoch
            result.best_valid_loss = min(result.best_valid_loss, row["valid_loss"])
            if on_epoch is not None:
                on_epoch(row)
            if row["valid_acc"] > best_acc:
                best_acc, kept, kept_stage, best_stage_epoch = row["valid_acc"], run_epoch, f"stage{stage}", stage_epoch
                best_state = model.trainable_state_dict()
            if _improved(row["valid_loss"], lowest, config):
                lowest, waited = row["valid_loss"], 0
            else:
                waited += 1
                early = waited >= config.patience
    first, second = results[1], results[2]
    second.best_state, second.best_valid_acc, second.best_epoch = best_state, best_acc, best_stage_epoch
    second.kept_run_epoch, second.kept_stage, second.switch_epoch = kept, kept_stage, switch
    for r in (first, second):
        _mark_kept(r.log, kept)
    model.load_trainable_state_dict(best_state)
    model.train(False)
    return first, second
