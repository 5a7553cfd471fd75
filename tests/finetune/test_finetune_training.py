"""Training: loss falls for every strategy, the base stays bit-identical, runs repeat,
two-stage training switches data, cached front end == recomputed front end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from finetune_testkit import FAMILIES, pitch_clips, tiny_encoder, wave_set

from featstore.cache import open_cache, write_cache
from featstore.forward import hidden_states, prepare_inputs
from featstore.manifest import make_manifest
from finetune.data import ClipSet, length_sorted_batches
from finetune.model import PeftModelConfig, SERModel
from finetune.train import TrainConfig, evaluate, fit, fit_two_stage
from finetune.tuners import STRATEGIES, LoraSettings

FAST = TrainConfig(lr=3e-3, batch_size=8, max_epochs=6, patience=10, seed=0)


def _sets(seed: int = 0, n: int = 6, prefix: str = "u"):
    ids, waves, labels = pitch_clips(n, seed, prefix=prefix)
    return wave_set(ids, waves, labels, "train"), ids, waves, labels


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_loss_falls_and_base_weights_stay_identical(family, strategy):
    train, *_ = _sets()
    encoder = tiny_encoder(family)
    model = SERModel(encoder, PeftModelConfig(layer=2, strategy=strategy, head="linear"), True)
    base_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    result = fit(model, train, train, TrainConfig(lr=1e-2, batch_size=8, max_epochs=8, patience=20, seed=0))
    losses = [row["train_loss"] for row in result.log]
    assert losses[-1] < 0.8 * losses[0], losses
    for name, p in model.named_parameters():
        if name in base_before:
            assert torch.equal(p, base_before[name]), f"base weight {name} changed"


def test_length_sorted_batches_cover_everything_and_repeat():
    lengths = np.array([5, 1, 9, 3, 3, 7, 2, 8, 6, 4])
    a = length_sorted_batches(lengths, 3, np.random.default_rng(1))
    b = length_sorted_batches(lengths, 3, np.random.default_rng(1))
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert sorted(np.concatenate(a).tolist()) == list(range(10))
    for batch in a:  # similar lengths together: each batch spans a narrow range
        assert np.ptp(lengths[batch]) <= 3
    plain = length_sorted_batches(lengths, 3, None)
    assert np.concatenate(plain).tolist() == np.argsort(lengths, kind="stable").tolist()


def test_seeded_cpu_runs_repeat_exactly():
    train, *_ = _sets()

    def run() -> list[float]:
        model = SERModel(tiny_encoder("wav2vec2"), PeftModelConfig(layer=2, strategy="lora+ba+wg"), True)
        result = fit(model, train, train, TrainConfig(lr=1e-3, batch_size=8, max_epochs=3, seed=3))
        return [r["train_loss"] for r in result.log] + [float(p.sum()) for p in model.trainable_state_dict().values()]

    assert run() == run()


def test_gradient_accumulation_equals_one_big_batch():
    """Two half batches accumulated give the same update as one full batch (no dropout)."""
    train, *_ = _sets(n=2)  # 8 clips

    def run(batch: int, accumulate: int) -> dict:
        cfg = PeftModelConfig(layer=1, strategy="ba", head="linear")
        model = SERModel(tiny_encoder("wav2vec2", hidden_dropout=0.0, attention_dropout=0.0,
                                      activation_dropout=0.0), cfg, True)
        fit(model, train, train, TrainConfig(lr=1e-3, batch_size=batch, accumulate=accumulate,
                                             max_epochs=1, seed=0))
        return model.trainable_state_dict()

    # same per-batch means only when batches are equal in size: 8 = 2 x 4
    one, acc = run(8, 1), run(4, 2)
    for k in one:
        torch.testing.assert_close(one[k], acc[k], atol=1e-6, rtol=1e-5)


def test_two_stage_switches_data_and_logs_both_stages():
    src_ids, src_waves, src_labels = pitch_clips(3, 1, prefix="src")
    tgt_ids, tgt_waves, tgt_labels = pitch_clips(3, 2, prefix="tgt")
    src = wave_set(src_ids, src_waves, src_labels, "source")
    tgt = wave_set(tgt_ids, tgt_waves, tgt_labels, "target")
    model = SERModel(tiny_encoder("wav2vec2"), PeftModelConfig(layer=2, strategy="lora"), True)
    first, second = fit_two_stage(model, src, src, tgt, tgt, TrainConfig(lr=1e-3, batch_size=4, max_epochs=2))
    assert first.seen_utt_ids == set(src_ids)
    assert second.seen_utt_ids == set(tgt_ids)
    assert {r["stage"] for r in first.log} == {"stage1"} and {r["stage"] for r in second.log} == {"stage2"}
    # the model ends with stage 2's best weights
    for k, v in second.best_state.items():
        torch.testing.assert_close(model.trainable_state_dict()[k], v)


def _cache_for(tmp_path, family: str, ids, waves, state: int) -> str:
    """A float32 frame cache of hidden state ``state`` computed one clip at a time (as an
    extraction would), written with featstore's own writer."""
    encoder = tiny_encoder(family)
    frames, means = [], []
    with torch.no_grad():
        for u in ids:
            states, _ = hidden_states(encoder, prepare_inputs([waves[u]], True))
            frames.append(states[:, 0].numpy())
            means.append(states[:, 0].mean(1).numpy())
    mean = np.stack(means, axis=1)
    manifest = make_manifest([
        {"utt_id": u, "corpus": "synth", "language": "xx", "speaker": "s", "emotion": "angry",
         "label": "a", "path": f"/x/{u}.wav", "duration": len(waves[u]) / 16000, "sample_rate": 16000}
        for u in ids])
    path = tmp_path / f"{family}.h5"
    write_cache(path, ids, mean, mean, {"model_fingerprint": "tiny"}, manifest,
                frames=[f[[0, state]] for f in frames], frame_layers=[0, state], dtype="float32")
    return str(path)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("scope", ["every-layer", "target-layer"])
def test_cached_front_end_training_matches_recomputed(tmp_path, family, scope):
    train, ids, waves, labels = _sets(n=3)
    layer = 3
    cfg = PeftModelConfig(layer=layer, strategy="lora+ba+wg", scope=scope)
    cache = open_cache(_cache_for(tmp_path, family, ids, waves, state=layer - 1))
    cached = ClipSet(list(ids), labels, train.lengths, frames=cache, state=cfg.input_state, name="cached")
    tc = TrainConfig(lr=1e-3, batch_size=4, max_epochs=3, seed=5)
    runs = []
    for clips in (train, cached):
        model = SERModel(tiny_encoder(family), cfg, True)
        result = fit(model, clips, clips, tc)
        _, probs = evaluate(model, clips)
        runs.append((result, model.trainable_state_dict(), probs))
    (r1, w1, p1), (r2, w2, p2) = runs
    for a, b in zip(r1.log, r2.log, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4
        assert abs(a["valid_loss"] - b["valid_loss"]) < 1e-4
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=1e-4, rtol=0)
    np.testing.assert_allclose(p1, p2, atol=1e-4)
    cache.close()


def test_gradient_checkpointing_gives_the_same_gradients():
    """The memory-saving recomputation (used on CUDA) changes no gradient."""
    from finetune.data import batch_inputs

    train, *_ = _sets(n=1)
    grads = []
    for checkpointing in (False, True):
        model = SERModel(tiny_encoder("wavlm", hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0),
                         PeftModelConfig(layer=2, strategy="lora+ba+wg", lora=LoraSettings(dropout=0.0)), True)
        model.train(True)
        model.use_checkpointing = checkpointing
        h, mask = batch_inputs(model, train, np.arange(len(train)))
        torch.nn.functional.cross_entropy(model(h, mask), torch.as_tensor(train.labels)).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5)


def test_bf16_autocast_path_trains():
    """The mixed-precision code path (bf16 autocast, as on GPU) runs and learns; CPU
    autocast stands in for CUDA here."""
    from finetune.train import FitResult, make_optimizer, train_epoch

    train, *_ = _sets()
    model = SERModel(tiny_encoder("wav2vec2"), PeftModelConfig(layer=2, strategy="lora+ba+wg", head="linear"), True)
    tc = TrainConfig(lr=1e-2, batch_size=8)
    opt = make_optimizer(model, tc)
    rng = np.random.default_rng(0)
    sink = FitResult({}, 0.0, 0.0, 0, 0)
    losses = [train_epoch(model, train, opt, tc, rng, torch.bfloat16, None, sink)[0] for _ in range(6)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
