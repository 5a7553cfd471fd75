"""The stacked trainer: every head ends as if trained alone (same seed), and as the plain
one-head loop of the paper's code (an independent implementation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probes._baseline import train_plain
from probes._stacked import HeadTask, head_generator, init_params, train_stacked
from probes.config import ProbeConfig

N_CLASSES = 4


def _data(n_layers=3, n=120, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % N_CLASSES
    x = rng.standard_normal((n_layers, n, dim)).astype(np.float32)
    means = rng.standard_normal((N_CLASSES, dim)).astype(np.float32)
    for layer in range(n_layers):
        x[layer] += layer * 0.7 * means[y]  # layer 0 carries nothing, later layers more
    return x, y


def _tasks(x, n_folds=2, n_train=80, n_valid=20):
    n = x.shape[1]
    tasks = []
    for fold in range(n_folds):
        perm = np.random.default_rng(100 + fold).permutation(n)
        tasks += [HeadTask(slot=s, layer=s, fold=fold, train_rows=perm[:n_train],
                           valid_rows=perm[n_train:n_train + n_valid]) for s in range(x.shape[0])]
    return tasks


def _max_diff(a, b):
    return max(float((p - q).abs().max()) for p, q in zip(a.weights + a.biases, b.weights + b.biases, strict=True))


@pytest.mark.parametrize("head", ["mlp", "linear"])
@pytest.mark.parametrize("standardize", [False, True])
def test_stacked_heads_equal_single_runs(head, standardize):
    x, y = _data()
    tasks = _tasks(x)
    config = ProbeConfig(head=head, lr=3e-3, max_epochs=25, patience=3, batch_size=16, standardize=standardize,
                         max_stack=4)  # 6 heads: stacks of 4 and 2
    stacked = train_stacked(x, y, tasks, config)
    epochs = set()
    for task, got in zip(tasks, stacked, strict=True):
        alone = train_stacked(x, y, [task], config)[0]
        assert (got.layer, got.fold) == (task.layer, task.fold)
        assert _max_diff(got, alone) < 1e-5
        assert got.epochs == alone.epochs and got.best_epoch == alone.best_epoch
        np.testing.assert_array_equal(got.predict(x[task.slot]), alone.predict(x[task.slot]))
        epochs.add(got.epochs)
    # heads stopped at different epochs, so cutting stopped heads out of the stack was exercised
    assert len(epochs) > 1


def test_stacked_heads_equal_plain_loop():
    """The nn.Sequential + default AdamW per-minibatch loop reaches the same heads."""
    x, y = _data()
    tasks = _tasks(x)
    config = ProbeConfig(lr=3e-3, max_epochs=20, patience=4)
    for task, got in zip(tasks, train_stacked(x, y, tasks, config), strict=True):
        plain = train_plain(x, y, task, config)
        assert _max_diff(got, plain) < 1e-5
        assert (got.epochs, got.best_epoch) == (plain.epochs, plain.best_epoch)
        np.testing.assert_array_equal(got.predict(x[task.slot]), plain.predict(x[task.slot]))


def test_best_state_is_reported_validation_accuracy_and_stopping_respects_patience():
    x, y = _data()
    tasks = _tasks(x, n_folds=1)
    config = ProbeConfig(lr=3e-3, max_epochs=30, patience=2)
    for task, head in zip(tasks, train_stacked(x, y, tasks, config), strict=True):
        acc = float(np.mean(head.predict(x[task.slot][task.valid_rows]) == y[task.valid_rows]))
        assert acc == pytest.approx(head.best_val_acc)
        assert 1 <= head.best_epoch <= head.epochs <= config.max_epochs
        logits = head.logits(x[task.slot][task.valid_rows])
        loss = float(torch.nn.functional.cross_entropy(logits, torch.as_tensor(y[task.valid_rows])))
        assert loss >= head.best_val_loss - 1e-6  # the minimum over epochs is a lower bound


def test_heads_of_unequal_part_sizes_train_in_separate_groups():
    x, y = _data()
    small = HeadTask(slot=1, layer=1, fold=7, train_rows=np.arange(50), valid_rows=np.arange(50, 70))
    tasks = [*_tasks(x, n_folds=1), small]
    config = ProbeConfig(lr=3e-3, max_epochs=5, patience=5)
    heads = train_stacked(x, y, tasks, config)
    assert _max_diff(heads[-1], train_stacked(x, y, [small], config)[0]) < 1e-5


def test_generators_are_per_head_and_reproducible():
    a = torch.rand(5, generator=head_generator(0, 3, 1))
    assert torch.equal(a, torch.rand(5, generator=head_generator(0, 3, 1)))
    assert not torch.equal(a, torch.rand(5, generator=head_generator(0, 3, 2)))
    assert not torch.equal(a, torch.rand(5, generator=head_generator(1, 3, 1)))
    (w, b), = init_params((16, 4), head_generator(0, 0, 0))
    assert w.shape == (16, 4) and b.shape == (4,)
    assert float(w.abs().max()) <= 1 / np.sqrt(16)


def test_empty_parts_are_refused():
    x, y = _data()
    bad = HeadTask(slot=0, layer=0, fold=0, train_rows=np.arange(10), valid_rows=np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="empty"):
        train_stacked(x, y, [bad], ProbeConfig(max_epochs=1))


def test_stacks_are_split_evenly():
    from probes._stacked import stack_chunks

    sizes = [len(range(65)[part]) for part in stack_chunks(65, 16)]
    assert sizes == [13, 13, 13, 13, 13]
    for n, cap in [(1, 16), (16, 16), (17, 16), (6, 4), (100, 7)]:
        parts = stack_chunks(n, cap)
        covered = [i for part in parts for i in range(n)[part]]
        lengths = [len(range(n)[part]) for part in parts]
        assert covered == list(range(n)) and max(lengths) <= cap and max(lengths) - min(lengths) <= 1
        assert len(parts) == -(-n // cap)


def test_standardised_once_or_per_minibatch_the_heads_are_the_same(monkeypatch):
    import probes._stacked as stacked

    x, y = _data()
    tasks = _tasks(x)
    config = ProbeConfig(lr=3e-3, max_epochs=12, patience=3, batch_size=16, standardize=True)
    once = train_stacked(x, y, tasks, config)
    monkeypatch.setattr(stacked, "PRESTANDARDISE_BYTES", 0)  # too big to copy: standardise each minibatch
    per_batch = train_stacked(x, y, tasks, config)
    for a, b in zip(once, per_batch, strict=True):
        assert _max_diff(a, b) == 0.0 and (a.epochs, a.best_epoch) == (b.epochs, b.best_epoch)


@pytest.mark.parametrize("widths", [(24, 128, 16, N_CLASSES), (24, N_CLASSES)])
@pytest.mark.parametrize("batch", [32, 7])
def test_gradients_by_hand_equal_autograd(widths, batch):
    """backprop's gradients are autograd's of the trainer's loss (summed mean cross-entropies)."""
    from probes._stacked import _forward, _head_losses, backprop, bind_grads

    g = torch.Generator().manual_seed(3)
    n_heads, n_layers = 5, len(widths) - 1
    params = [torch.nn.Parameter(torch.randn(n_heads, o, i, generator=g) / i ** 0.5)
              for i, o in zip(widths[:-1], widths[1:], strict=True)]
    params += [torch.nn.Parameter(torch.randn(n_heads, 1, o, generator=g) * 0.1) for o in widths[1:]]
    x = torch.randn(n_heads, batch, widths[0], generator=g)
    target = torch.randint(0, N_CLASSES, (n_heads, batch), generator=g)
    _head_losses(_forward(params[:n_layers], params[n_layers:], x), target).sum().backward()
    expected = [p.grad.clone() for p in params]
    grads = bind_grads(params)
    assert all(p.grad is b for p, b in zip(params, grads, strict=True))
    backprop(params[:n_layers], params[n_layers:], x, target, grads)
    for got, want in zip(grads, expected, strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert float(expected[0].abs().max()) > 0  # a real gradient was compared
