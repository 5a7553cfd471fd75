"""The exact batched forward pass: batched == one clip at a time == transformers' own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2Model, WavLMConfig, WavLMModel

from featstore.forward import (
    encoder_states,
    frame_counts,
    front_end,
    hidden_states,
    masked_mean_std,
    prepare_inputs,
)

TINY = dict(
    hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
    conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
    hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
)


def _model(family: str, norm: str, stable: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    if family == "wav2vec2":
        cfg = Wav2Vec2Config(**TINY, feat_extract_norm=norm, do_stable_layer_norm=stable, conv_bias=norm == "layer")
        model = Wav2Vec2Model(cfg)
    else:
        cfg = WavLMConfig(**TINY, feat_extract_norm=norm, do_stable_layer_norm=stable, num_buckets=32, max_bucket_distance=64)
        model = WavLMModel(cfg)
    # random init leaves some norms at identity: perturb every parameter so the test sees them
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


CASES = [("wav2vec2", "group", False), ("wav2vec2", "layer", True), ("wavlm", "layer", True), ("wavlm", "group", False)]


def _clips(seed: int = 0) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    lengths = [16000, 6400, 11025, 3200, 400]
    return prepare_inputs([rng.standard_normal(n).astype(np.float32) * 0.1 for n in lengths], do_normalize=True)


@pytest.mark.parametrize("family,norm,stable", CASES)
def test_single_clip_matches_transformers(family, norm, stable):
    model = _model(family, norm, stable)
    clip = _clips()[0]
    states, mask = hidden_states(model, [clip])
    with torch.no_grad():
        ref = model(clip[None], output_hidden_states=True)
    assert mask.all()
    assert torch.allclose(states[-1, 0], ref.last_hidden_state[0], atol=1e-5)
    assert len(ref.hidden_states) == states.shape[0]
    # transformers 5 records the last layer's raw output for pre-norm models; we keep the
    # model's real output (after the final layer norm) as the last hidden state, like 4.x
    n_check = len(ref.hidden_states) - 1 if stable else len(ref.hidden_states)
    for i in range(n_check):
        assert torch.allclose(states[i, 0], ref.hidden_states[i][0], atol=1e-5), f"hidden state {i}"


@pytest.mark.parametrize("family,norm,stable", CASES)
def test_batched_equals_one_at_a_time(family, norm, stable):
    model = _model(family, norm, stable)
    clips = _clips(1)
    states, mask = hidden_states(model, clips)
    assert mask.sum(1).tolist() == frame_counts(model.config, [len(c) for c in clips]).tolist()
    worst = 0.0
    for b, clip in enumerate(clips):
        alone, _ = hidden_states(model, [clip])
        t = alone.shape[2]
        worst = max(worst, (states[:, b, :t] - alone[:, 0]).abs().max().item())
    assert worst <= 1e-4
    # and the padded path of transformers itself is NOT exact for group norm (why this module exists)
    if norm == "group":
        with torch.no_grad():
            batch = torch.zeros(2, len(clips[0]))
            batch[0], batch[1, : len(clips[1])] = clips[0], clips[1]
            att = torch.zeros(2, len(clips[0]), dtype=torch.long)
            att[0], att[1, : len(clips[1])] = 1, 1
            padded = model(batch, attention_mask=att).last_hidden_state[1, : mask[1].sum()]
        assert (padded - states[-1, 1, : mask[1].sum()]).abs().max() > 1e-2


@pytest.mark.parametrize("family,norm,stable", CASES)
def test_start_from_cached_layer(family, norm, stable):
    model = _model(family, norm, stable)
    clips = _clips(2)[:3]
    with torch.no_grad():
        full, mask = hidden_states(model, clips)
        feats, mask2 = front_end(model, clips)
        assert torch.equal(mask, mask2)
        upper = encoder_states(model, full[1], mask, start_layer=1)
    for j, h in enumerate(upper):
        m = mask[..., None]
        assert torch.allclose((h * m), (full[1 + j] * m), atol=1e-5)


def test_masked_mean_std_matches_numpy():
    model = _model("wav2vec2", "group", False)
    clips = _clips(3)
    with torch.no_grad():
        states, mask = hidden_states(model, clips)
    mean, std = masked_mean_std(states, mask)
    for b in range(len(clips)):
        real = states[:, b, : int(mask[b].sum())].numpy()
        np.testing.assert_allclose(mean[:, b].numpy(), real.mean(axis=1), atol=1e-5)
        np.testing.assert_allclose(std[:, b].numpy(), real.std(axis=1), atol=1e-5)


def test_gradients_flow_when_asked():
    model = _model("wavlm", "layer", True)
    states, mask = hidden_states(model, _clips()[:2], n_layers=2, grad=True)
    states[-1].sum().backward()
    assert model.encoder.layers[0].feed_forward.output_dense.weight.grad is not None
