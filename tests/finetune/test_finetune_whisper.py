"""Fine-tuning Whisper's encoder: LoRA / BA / WG on its attention and feed-forward modules,
a gradient for every adapter, and the frozen prefix read from cached (cropped) states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featstore import forward
from featstore.models.whisper import tiny_whisper_encoder
from finetune.encoder import run_layers, states_from_waves
from finetune.model import PeftModelConfig, SERModel
from finetune.tuners import AdapterConfig, apply_strategy, is_adapter_name, parse_strategy
from finetune.tuners.ba import BottleneckFeedForward
from finetune.whisper_encoder import WHISPER_LORA_TARGETS


def _waves(seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (4_000, 9_600, 7_000)]


def _encoder(**kw: object) -> torch.nn.Module:
    return tiny_whisper_encoder(seed=5, encoder_layers=3, **kw)


@pytest.mark.parametrize(("strategy", "scope"), [
    ("lora", "every-layer"), ("ba", "target-layer"), ("wg", "every-layer"), ("lora+ba+wg", "target-layer"),
    ("lora+ba+wg", "every-layer"),
])
def test_every_adapter_gets_a_gradient(strategy, scope):
    model = SERModel(_encoder(), PeftModelConfig(layer=2, strategy=strategy, scope=scope), False)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():  # off the init (LoRA B = 0 would hide A's gradient), live bottleneck units
        for name, p in trainable.items():
            p.add_(0.05 * torch.randn_like(p))
            if name.endswith("ba_down.bias"):
                p.add_(1.0)
    adapters = [n for n in trainable if n.startswith("encoder.")]
    methods = parse_strategy(strategy)
    assert adapters and all(is_adapter_name(n) for n in adapters)
    for m in ("lora", "ba", "wg"):
        assert any(f".{m}_" in n or n.endswith(f".{m}_gate") for n in adapters) == (m in methods), m
    if "lora" in methods:  # q/k/v/out and both feed-forward projections of each adapted layer
        for i in model.config.adapted_layers:
            for target in WHISPER_LORA_TARGETS:
                leaf = target.split(".")[-1]
                assert any(f"layers.{i}." in n and f"{leaf}." in n and "lora_A" in n for n in adapters), (i, target)
    if "ba" in methods:  # the bottleneck sits on the feed-forward's output projection
        for i in model.config.adapted_layers:
            layer = model.encoder.encoder.layers[i]
            assert isinstance(getattr(layer, "base_layer", layer).fc2, BottleneckFeedForward)
    model.train(True)
    logits = model.forward_waves(_waves())
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    for name, p in trainable.items():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, f"{strategy}/{scope}: {name}"
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and not any(is_adapter_name(n) for n in frozen)


def test_bottleneck_is_parallel_to_the_feed_forward():
    enc = _encoder()
    layer = enc.encoder.layers[0]
    x = torch.randn(2, 7, 32)
    ffn = layer.fc2(torch.nn.functional.gelu(layer.fc1(layer.final_layer_norm(x))))
    apply_strategy(enc, "ba", AdapterConfig(layers=(0,)))
    ba = enc.encoder.layers[0].fc2
    manual_ffn = ffn + ba.ba_up(torch.relu(ba.ba_down(ffn)))
    torch.testing.assert_close(ba(torch.nn.functional.gelu(layer.fc1(layer.final_layer_norm(x)))), manual_ffn)


@pytest.mark.parametrize("scope", ["every-layer", "target-layer"])
def test_cached_states_stand_in_for_the_frozen_prefix(scope):
    """What extraction caches (hidden state j cropped to each clip's frames) gives the same
    logits as the model computing its frozen prefix from audio, for start state 0 (the
    cached front end) and j = k - 1 > 0; and a batch equals one clip at a time."""
    model = SERModel(_encoder(), PeftModelConfig(layer=3, strategy="lora+ba+wg", scope=scope), False)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    j = model.config.input_state
    assert j == (0 if scope == "every-layer" else 2)
    waves = _waves(2)
    plain = _encoder()  # extraction's view: the unadapted encoder
    with torch.no_grad():
        states, mask = forward.hidden_states(plain, [torch.as_tensor(w) for w in waves])
        cached = [states[j, b, : int(mask[b].sum())] for b in range(len(waves))]
        h, m = states_from_waves(model.encoder, waves, False, j)
        assert h.shape[1] == max(len(c) for c in cached) == m.shape[1]
        for b, c in enumerate(cached):
            torch.testing.assert_close(h[b, : len(c)], c, atol=1e-5, rtol=1e-5)
        from finetune.data import pad_states

        hc, mc = pad_states([c.numpy() for c in cached], "cpu")
        from_cache = model(hc, mc)
        from_audio = model.forward_waves(waves)
        torch.testing.assert_close(from_cache, from_audio, atol=1e-5, rtol=1e-5)
        one_by_one = torch.cat([model.forward_waves([w]) for w in waves])
        assert float((one_by_one - from_audio).abs().max()) <= 1e-4


def test_run_layers_windows_long_clips_and_masks_padding():
    enc = _encoder()
    rng = np.random.default_rng(3)
    long_wave = (0.1 * rng.standard_normal(480_000 + 9_600)).astype(np.float32)  # 30.6 s: 1530 frames
    short_wave = (0.1 * rng.standard_normal(6_400)).astype(np.float32)          # 20 frames
    with torch.no_grad():
        h, m = states_from_waves(enc, [long_wave, short_wave], False, 0)
        assert h.shape[1] == 1530 and m.sum(1).tolist() == [1530, 20]
        both = run_layers(enc, h, m, 0, 3, final_norm=True)
        alone = run_layers(enc, h[1:, :20], m[1:, :20], 0, 3, final_norm=True)
        torch.testing.assert_close(both[1, :20], alone[0], atol=1e-5, rtol=1e-5)
        assert float(both[1, 20:].abs().max()) == 0.0
        # the long clip's second window (30 frames) does not attend to the first
        tail = run_layers(enc, h[:1, 1500:], m[:1, 1500:], 0, 3, final_norm=True)
        torch.testing.assert_close(both[0, 1500:], tail[0], atol=1e-5, rtol=1e-5)
        # with no window padding (a clip filling its window) layers equal the extraction's states
        full, _ = forward.hidden_states(enc, [torch.as_tensor(long_wave[:480_000])])
        torch.testing.assert_close(run_layers(enc, full[0], torch.ones(1, 1500, dtype=torch.bool), 0, 3,
                                              final_norm=True), full[3], atol=1e-4, rtol=1e-4)
