"""Early stopping and the two two-stage schedules on validation curves built for the test.

The validation is stubbed (``finetune.train.evaluate`` returns a scripted loss and
accuracy per epoch), so each test knows the exact epoch at which patience runs out, the
switch epoch, the kept epoch and the total budget, and fails if the schedule differs. The
stub also snapshots the weights at every validation, so "stage 2 starts from the best vs
the last stage-1 weights" is checked on the weights themselves.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from finetune_testkit import pitch_clips, tiny_encoder, wave_set

import finetune.train as train_mod
from finetune.model import PeftModelConfig, SERModel
from finetune.train import TrainConfig, fit, fit_two_stage


class Script:
    """Scripted validation: epoch i (counted over all calls) returns ``losses[i]`` and an
    accuracy of ``accs[i]``; records the validation set's name and the weights."""

    def __init__(self, losses: list[float], accs: list[float]) -> None:
        self.losses, self.accs = losses, accs
        self.calls: list[str] = []
        self.weights: list[dict[str, torch.Tensor]] = []

    def __call__(self, model, clips, batch_size=16, precision=None):
        i = len(self.calls)
        self.calls.append(clips.name)
        self.weights.append(model.trainable_state_dict())
        n = len(clips)
        right = int(round(self.accs[i] * n))
        probs = np.zeros((n, model.config.n_classes))
        pred = np.where(np.arange(n) < right, clips.labels, (clips.labels + 1) % model.config.n_classes)
        probs[np.arange(n), pred] = 1.0
        return self.losses[i], probs


def _model() -> SERModel:
    return SERModel(tiny_encoder("wav2vec2"), PeftModelConfig(layer=1, strategy="wg"), True)


def _set(name: str, seed: int):
    ids, waves, labels = pitch_clips(2, seed, prefix=name)
    return wave_set(ids, waves, labels, f"{name}/valid/fold0")


def _config(**kw) -> TrainConfig:
    return TrainConfig(**({"lr": 1e-2, "batch_size": 4, "max_epochs": 20, "patience": 3, "seed": 0} | kw))


def test_patience_stops_at_the_exact_epoch(monkeypatch):
    # lowest loss at epoch 4; epochs 5, 6, 7 do not go below it -> patience 3 ends after epoch 7
    losses = [3.0, 2.0, 2.5, 1.5, 1.6, 1.5, 1.7] + [0.1] * 10
    script = Script(losses, [0.25] * 17)
    monkeypatch.setattr(train_mod, "evaluate", script)
    result = fit(_model(), _set("a", 1), _set("a", 1), _config(patience=3))
    assert result.epochs == 7 and len(script.calls) == 7
    assert [r["epoch"] for r in result.log] == list(range(1, 8))
    assert result.best_valid_loss == 1.5


@pytest.mark.parametrize("equal_resets, stop", [(False, 4), (True, 8)])
def test_an_equal_loss_resets_patience_only_under_the_authors_rule(monkeypatch, equal_resets, stop):
    # epochs 3-6 repeat the lowest loss: with < they count as no improvement (stop after 2 + 2),
    # with <= they reset patience until epochs 7 and 8 go above it
    losses = [3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.5, 2.5] + [2.5] * 10
    script = Script(losses, [0.25] * 18)
    monkeypatch.setattr(train_mod, "evaluate", script)
    result = fit(_model(), _set("a", 1), _set("a", 1), _config(patience=2, equal_loss_resets_patience=equal_resets))
    assert result.epochs == stop


def test_authors_schedule_switches_after_early_stop_and_keeps_a_stage1_epoch(monkeypatch):
    # stage 1: lowest loss at epoch 2, epochs 3-5 above -> early stop after 5, switch at the top of 6;
    # stage 2 (patience reset): lowest at run epoch 7, 8-10 above -> ends after epoch 10 (budget 30,
    # so the max_epochs // 2 rule, epoch 15, does not come first)
    losses = [3.0, 2.0, 2.5, 2.6, 2.7] + [1.5, 1.4, 1.6, 1.7, 1.8] + [0.1] * 10
    accs = [0.25, 0.75, 0.5, 1.0, 0.25] + [0.5, 0.75, 0.5, 0.25, 0.5] + [1.0] * 10
    script = Script(losses, accs)
    monkeypatch.setattr(train_mod, "evaluate", script)
    model = _model()
    first, second = fit_two_stage(model, _set("src", 1), _set("src", 1), _set("tgt", 2), _set("tgt", 2),
                                  _config(max_epochs=30), schedule="authors")
    log = first.log + second.log
    assert [r["run_epoch"] for r in log] == list(range(1, 11))
    assert [r["stage"] for r in log] == ["stage1"] * 5 + ["stage2"] * 5
    assert second.switch_epoch == 6 and first.epochs == 5 and second.epochs == 5
    # the best accuracy is never reset: the kept epoch is stage 1's epoch 4 (acc 1.0)
    assert second.kept_run_epoch == 4 and second.kept_stage == "stage1"
    assert [r["run_epoch"] for r in log if r["kept"]] == [4]
    for k, v in script.weights[3].items():
        torch.testing.assert_close(model.trainable_state_dict()[k], v)


def test_authors_schedule_switches_at_half_the_budget_and_spends_the_budget(monkeypatch):
    losses = [10.0 - i for i in range(8)]  # always lower: no early stop
    script = Script(losses, [0.25] * 8)
    monkeypatch.setattr(train_mod, "evaluate", script)
    first, second = fit_two_stage(_model(), _set("src", 1), _set("tgt", 2), _set("tgt", 2), _set("tgt", 2),
                                  _config(max_epochs=8), schedule="authors")
    assert second.switch_epoch == 4  # max_epochs // 2
    assert [r["stage"] for r in first.log + second.log] == ["stage1"] * 3 + ["stage2"] * 5
    assert len(script.calls) == 8  # total budget: max_epochs over both stages


def test_authors_schedule_ends_at_the_second_trigger(monkeypatch):
    # stage 1 stops early (switch at 4); stage 2 reaches epoch max_epochs // 2 = 10 -> the run ends there
    losses = [3.0, 3.5, 3.6] + [2.0 - 0.1 * i for i in range(20)]
    script = Script(losses, [0.25] * 23)
    monkeypatch.setattr(train_mod, "evaluate", script)
    first, second = fit_two_stage(_model(), _set("src", 1), _set("tgt", 2), _set("tgt", 2), _set("tgt", 2),
                                  _config(patience=2), schedule="authors")
    assert second.switch_epoch == 4 and first.epochs == 3
    assert [r["run_epoch"] for r in second.log][-1] == 9  # epoch 10 never trains


@pytest.mark.parametrize("schedule", ["converge", "authors"])
def test_stage2_starts_from_best_or_last_weights(monkeypatch, schedule):
    # stage 1: best accuracy at epoch 2, last epoch 4 (patience 2 after the lowest loss at epoch 2)
    losses = [3.0, 2.0, 2.5, 2.6] + [1.0, 1.1, 1.2] + [1.0] * 20
    accs = [0.25, 1.0, 0.5, 0.25] + [0.5] * 23
    script = Script(losses, accs)
    monkeypatch.setattr(train_mod, "evaluate", script)
    starts = []
    real_epoch = train_mod.train_epoch

    def spy(model, clips, *args, **kwargs):
        if clips.name.startswith("tgt") and not starts:
            starts.append(model.trainable_state_dict())
        return real_epoch(model, clips, *args, **kwargs)

    monkeypatch.setattr(train_mod, "train_epoch", spy)
    first, second = fit_two_stage(_model(), _set("src", 1), _set("src", 1), _set("tgt", 2), _set("tgt", 2),
                                  _config(patience=2), schedule=schedule)
    assert first.epochs == 4 and second.switch_epoch == 5
    want = script.weights[1] if schedule == "converge" else script.weights[3]  # best vs last of stage 1
    other = script.weights[3] if schedule == "converge" else script.weights[1]
    for k, v in want.items():
        torch.testing.assert_close(starts[0][k], v)
    assert any(not torch.equal(starts[0][k], other[k]) for k in other)
    # stage 2 validates on its own set here (each stage's validation set is what it is given)
    assert script.calls[:4] == ["src/valid/fold0"] * 4 and set(script.calls[4:]) == {"tgt/valid/fold0"}
