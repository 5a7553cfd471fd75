"""Whisper's exact forward: transformers' own encoder as the reference, 30 s windows,
cropping to 50 frames per second, long clips, batched = one clip at a time, padding effect."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor

from featstore import forward
from featstore import forward_whisper as fw
from featstore.models.whisper import tiny_whisper_encoder


@pytest.fixture(scope="module")
def enc():
    return tiny_whisper_encoder(seed=2)


def _tone(n: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.standard_normal(n)
    return torch.as_tensor(wave.astype(np.float32))


def test_frame_counts_are_50_per_second():
    assert [fw.frame_count(n) for n in (1, 320, 321, 16000, 8123, 480000, 480001)] == [1, 1, 2, 50, 26, 1500, 1501]
    assert forward.frame_counts(tiny_whisper_encoder().config, [16000, 40000]).tolist() == [50, 125]
    assert fw.window_bounds(1_000_000) == [(0, 480000), (480000, 960000), (960000, 1_000_000)]


def test_states_equal_transformers_encoder_on_the_padded_window(enc):
    """Independent reference: a fresh WhisperFeatureExtractor (30 s padding) and transformers'
    WhisperEncoder.forward with output_hidden_states, cropped to the clip's frames."""
    wave = _tone(27_777, seed=1)
    states, mask = forward.hidden_states(enc, [wave])
    n = -(-27_777 // 320)
    assert states.shape == (3, 1, n, 32) and int(mask.sum()) == n
    mel = WhisperFeatureExtractor(feature_size=80)(wave.numpy(), sampling_rate=16000, return_tensors="pt")
    assert mel["input_features"].shape == (1, 80, 3000)
    with torch.no_grad():
        ref = enc.encoder(mel["input_features"], output_hidden_states=True)
    assert len(ref.hidden_states) == 3
    for i, h in enumerate(ref.hidden_states):
        torch.testing.assert_close(states[i, 0], h[0, :n], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(states[-1, 0], ref.last_hidden_state[0, :n], atol=1e-5, rtol=1e-5)


def test_long_clip_is_windows_concatenated(enc):
    wave = _tone(480_000 + 24_000, seed=2)  # 31.5 s: a full window and 1.5 s
    states, mask = forward.hidden_states(enc, [wave])
    assert states.shape[2] == 1500 + 75 and bool(mask.all())
    first, _ = forward.hidden_states(enc, [wave[:480_000]])
    second, _ = forward.hidden_states(enc, [wave[480_000:]])
    torch.testing.assert_close(states[:, 0], torch.cat([first[:, 0], second[:, 0]], dim=1), atol=1e-5, rtol=1e-5)


def test_batched_equals_one_clip_at_a_time(enc):
    waves = [_tone(n, seed=n) for n in (8_123, 16_000, 500_000, 400)]
    states, mask = forward.hidden_states(enc, waves)
    assert mask.sum(1).tolist() == [26, 50, 1563, 2]
    assert states.shape[2] == 1563
    for b, wave in enumerate(waves):
        alone, m1 = forward.hidden_states(enc, [wave])
        n = int(m1.sum())
        assert float((states[:, b, :n] - alone[:, 0]).abs().max()) <= 1e-4
        assert not bool(mask[b, n:].any())
    mean, std = forward.masked_mean_std(states, mask)
    torch.testing.assert_close(mean[:, 0], states[:, 0, :26].mean(1), atol=1e-5, rtol=1e-5)


def test_front_end_and_encoder_states_compose_to_hidden_states(enc):
    waves = [_tone(n, seed=n) for n in (9_000, 20_000)]
    features, mask = forward.front_end(enc, waves)
    assert features.shape == (2, 1500, 32) and mask.sum(1).tolist() == [29, 63]
    full = forward.encoder_states(enc, features, mask)
    states, _ = forward.hidden_states(enc, waves)
    for i in range(3):
        torch.testing.assert_close(full[i][:, :63], states[i], atol=1e-6, rtol=1e-6)
    # from hidden state 1 of the whole windows, layer 2 gives the same numbers
    upper = forward.encoder_states(enc, full[1], mask, start_layer=1)
    torch.testing.assert_close(upper[-1], full[-1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="whole windows of 1500 frames"):
        forward.encoder_states(enc, features[:, :63], mask[:, :63])


def test_padding_effect_is_measured_layer_by_layer(enc):
    wave = _tone(48_000, seed=5)
    alone = fw.unpadded_states(enc, wave)
    assert alone.shape == (3, 150, 32)
    rows = fw.padding_effect(enc, wave)
    assert [r["layer"] for r in rows] == [0, 1, 2] and rows[0]["n_frames"] == 150
    # state 0 is local (two 3-wide convolutions): only the last frame sees past the clip ...
    padded, _ = forward.hidden_states(enc, [wave])
    torch.testing.assert_close(padded[0, 0, :149], alone[0, :149], atol=1e-5, rtol=1e-5)
    # ... while attention over the padding changes every frame of the layers above
    diff = (padded[1:, 0] - alone[1:]).abs().amax(-1)
    assert bool((diff > 1e-4).all())
    assert rows[2]["max_abs_diff"] > rows[0]["max_abs_diff"] > 0
    assert all(0.0 < r["mean_cosine"] <= 1.0 for r in rows)
