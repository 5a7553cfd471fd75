"""Adapter methods: structure, frozen base, gradients on both families, WavLM attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from finetune_testkit import FAMILIES, tiny_encoder
from transformers.models.wavlm.modeling_wavlm import WavLMAttention

from featstore.forward import front_end, prepare_inputs
from finetune.model import PeftModelConfig, SERModel
from finetune.tuners import STRATEGIES, AdapterConfig, apply_strategy, is_adapter_name, parse_strategy
from finetune.tuners.lora.layer import ModularWavLMAttention


def _waves(seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(np.float32) for n in (4000, 5600, 7000)]


def test_parse_strategy_orders_and_rejects():
    assert parse_strategy("wg+lora") == ("lora", "wg")
    with pytest.raises(ValueError):
        parse_strategy("lora+dora")
    with pytest.raises(ValueError):
        parse_strategy("ba+ba")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("scope", ["every-layer", "target-layer"])
def test_every_trainable_parameter_gets_a_gradient(family, strategy, scope):
    model = SERModel(tiny_encoder(family), PeftModelConfig(layer=2, strategy=strategy, scope=scope), True)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    # zero-initialised LoRA B would hide the A gradient at step 0: move every adapter
    # parameter off its init so that each one's connection to the loss shows
    with torch.no_grad():
        for name, p in trainable.items():
            p.add_(0.05 * torch.randn_like(p))
            if name.endswith("ba_down.bias"):
                # with 2 bottleneck units (32 / 16) both ReLUs can be dead on random data
                p.add_(1.0)
    methods = parse_strategy(strategy)
    prefixes = {f"{m}_" for m in methods}
    adapter_names = [n for n in trainable if n.startswith("encoder.")]
    assert adapter_names and all(is_adapter_name(n) for n in adapter_names)
    for m in prefixes:  # every method of the strategy is present ...
        assert any(m in n for n in adapter_names), m
    for m in {"lora_", "ba_", "wg_"} - prefixes:  # ... and no other
        assert not any(m in n for n in adapter_names), m
    # LoRA on q/k/v/out and both feed-forward projections of each adapted layer
    if "lora" in methods:
        for i in model.config.adapted_layers:
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense", "output_dense"):
                assert any(f"layers.{i}." in n and f"{proj}.lora_A" in n for n in adapter_names), (i, proj)
        others = [n for n in adapter_names if "lora_" in n and not any(
            f"layers.{i}." in n for i in model.config.adapted_layers)]
        assert not others
    model.train(True)
    logits = model.forward_waves(_waves())
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    for name, p in trainable.items():
        assert p.grad is not None, f"{family}/{strategy}: {name} got no gradient"
        assert float(p.grad.abs().sum()) > 0, f"{family}/{strategy}: {name} got a zero gradient"
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(not is_adapter_name(n) for n in frozen)


def test_bottleneck_sizes_follow_reduction_16():
    enc = tiny_encoder("wav2vec2", hidden_size=64, num_attention_heads=4)
    apply_strategy(enc, "ba", AdapterConfig(layers=(0,)))
    ff = enc.encoder.layers[0].feed_forward
    assert tuple(ff.ba_down.weight.shape) == (4, 64) and tuple(ff.ba_up.weight.shape) == (64, 4)


def test_bottleneck_is_parallel_to_the_feed_forward():
    enc = tiny_encoder("wav2vec2")
    x = torch.randn(2, 5, 32)
    ff = enc.encoder.layers[0].feed_forward
    expected_ffn = ff(x)
    apply_strategy(enc, "ba", AdapterConfig(layers=(0,)))
    new = enc.encoder.layers[0].feed_forward
    manual = expected_ffn + new.ba_up(torch.relu(new.ba_down(expected_ffn)))
    torch.testing.assert_close(new(x), manual)


def test_gate_scales_the_layer_input():
    enc = tiny_encoder("wav2vec2")
    layer = enc.encoder.layers[1]
    x = torch.randn(2, 6, 32)
    gate_logits = torch.randn(32)
    expected = layer(x * torch.sigmoid(gate_logits))
    apply_strategy(enc, "wg", AdapterConfig(layers=(1,)))
    with torch.no_grad():
        enc.encoder.layers[1].wg_gate.copy_(gate_logits)
    torch.testing.assert_close(enc.encoder.layers[1](x), expected)


@pytest.mark.parametrize("padded", [False, True])
def test_modular_wavlm_attention_equals_the_original(padded):
    enc = tiny_encoder("wavlm")
    waves = prepare_inputs(_waves(), True)
    features, mask = front_end(enc, waves)
    if not padded:
        features, mask = features[:1, : int(mask[0].sum())], mask[:1, : int(mask[0].sum())]
    h = features.clone()
    attention = enc.encoder.layers[0].attention
    assert type(attention) is WavLMAttention
    with torch.no_grad():
        ref, _, bias = attention(h, attention_mask=mask)
        attention.__class__ = ModularWavLMAttention
        out, _, bias2 = attention(h, attention_mask=mask)
    real = mask[..., None].expand_as(out)
    torch.testing.assert_close(out[real], ref[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bias, bias2)


def test_lora_at_init_leaves_wavlm_states_unchanged():
    """LoRA with B = 0 (its init) plus the modular attention: the same states as the base."""
    from finetune.encoder import run_layers

    plain = tiny_encoder("wavlm")
    model = SERModel(tiny_encoder("wavlm"), PeftModelConfig(layer=3, strategy="lora"), True)
    assert isinstance(model.encoder.encoder.layers[0].attention, ModularWavLMAttention)
    h, mask = model.input_states(_waves())
    with torch.no_grad():
        want = run_layers(plain, h, mask, 0, 3)
        got = run_layers(model.encoder, h, mask, 0, 3)
    torch.testing.assert_close(got[mask], want[mask], atol=1e-5, rtol=1e-5)


def test_lora_on_the_original_wavlm_attention_gets_no_gradient():
    """The pitfall the modular attention fixes (checkpoints.md): without it, LoRA on q/k/v
    of WavLM is bypassed by the fused attention call."""
    from peft import LoraConfig, inject_adapter_in_model

    enc = tiny_encoder("wavlm")
    inject_adapter_in_model(LoraConfig(r=2, target_modules=["encoder.layers.0.attention.q_proj"]), enc)
    q = enc.encoder.layers[0].attention.q_proj
    with torch.no_grad():
        q.lora_B["default"].weight.normal_()
    # peft froze the base weights, so let the input carry the graph
    x = torch.randn(1, 8, 32, requires_grad=True)
    out, _ = enc.encoder.layers[0](x)
    out.sum().backward()
    grad = q.lora_A["default"].weight.grad
    assert grad is None or float(grad.abs().sum()) == 0.0


@pytest.mark.parametrize("family", FAMILIES)
def test_run_layers_matches_transformers_hidden_states(family):
    """One clip at a time, the model's states equal transformers' own output_hidden_states."""
    enc = tiny_encoder(family)
    from finetune.encoder import run_layers

    wave = prepare_inputs(_waves()[:1], True)[0]
    with torch.no_grad():
        ref = enc(wave[None], output_hidden_states=True).hidden_states
        model = SERModel(tiny_encoder(family), PeftModelConfig(layer=2, strategy="lora"), True)
        h0, mask = model.input_states([wave.numpy()])
        torch.testing.assert_close(h0, ref[0], atol=1e-5, rtol=1e-5)
        h2 = run_layers(model.encoder, h0, mask, 0, 2)
        torch.testing.assert_close(h2, ref[2], atol=1e-5, rtol=1e-5)
        h1 = run_layers(model.encoder, ref[1], mask, 1, 2)
        torch.testing.assert_close(h1, ref[2], atol=1e-5, rtol=1e-5)


def test_heads_are_the_probes_heads():
    from finetune.heads import HEADS, make_head

    assert HEADS == ("mlp", "linear")
    mlp = make_head("mlp", 768, 4)
    linear_shapes = [tuple(m.weight.shape) for m in mlp if isinstance(m, torch.nn.Linear)]
    assert linear_shapes == [(128, 768), (16, 128), (4, 16)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in mlp) == 2
    assert [tuple(m.weight.shape) for m in make_head("linear", 768, 4)] == [(4, 768)]
    with pytest.raises(ValueError):
        make_head("logreg", 768, 4)
