"""Fine-tuning on every SSL family: LoRA / BA / WG on each family's attention and
feed-forward modules all get gradients, and the frozen prefix read from a cache (or from the
cached front end) gives exactly what running the whole encoder gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featstore.forward import encoder_states, front_end, hidden_states, prepare_inputs
from featstore.models.registry import FAMILIES
from featstore.models.testing import build_tiny_model, tiny_config
from finetune.encoder import run_layers, states_from_waves
from finetune.model import PeftModelConfig, SERModel
from finetune.tuners import is_adapter_name

# (family, front-end norm): HuBERT base / large, data2vec-audio, wav2vec 2.0 large (XLS-R, MMS), WavLM base
VARIANTS = [("hubert", "group"), ("hubert", "layer"), ("data2vec-audio", None), ("wav2vec2", "layer"),
            ("wavlm", "group")]
IDS = ["hubert-base", "hubert-large", "data2vec-audio", "xlsr", "wavlm-base"]


def _encoder(family: str, norm: str | None) -> torch.nn.Module:
    return build_tiny_model(family, "model", tiny_config(family, norm, num_hidden_layers=3, mask_time_prob=0.0))


def _waves(seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(np.float32) for n in (4000, 5600, 7000)]


@pytest.mark.parametrize("scope", ["every-layer", "target-layer"])
@pytest.mark.parametrize("family,norm", VARIANTS, ids=IDS)
def test_every_adapter_gets_a_gradient(family, norm, scope):
    model = SERModel(_encoder(family, norm), PeftModelConfig(layer=2, strategy="lora+ba+wg", scope=scope), True)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():  # off their init (LoRA B = 0 would hide A's gradient at step 0)
        for name, p in trainable.items():
            p.add_(0.05 * torch.randn_like(p))
            if name.endswith("ba_down.bias"):
                p.add_(1.0)  # 2 bottleneck units: keep their ReLUs alive on random data
    adapters = [n for n in trainable if n.startswith("encoder.")]
    assert adapters and all(is_adapter_name(n) for n in adapters)
    spec = FAMILIES[family]
    for i in model.config.adapted_layers:
        for target in spec.lora_targets:  # the family's attention and feed-forward projections
            module, proj = target.rsplit(".", 1)  # (BA wraps the feed-forward: ...base_layer.<proj>)
            assert any(f"layers.{i}." in n and f"{module}." in n and f"{proj}.lora_A" in n for n in adapters), target
        assert any(f"layers.{i}." in n and f"{spec.feed_forward}.ba_up" in n for n in adapters), i
        assert any(f"layers.{i}.wg_gate" in n for n in adapters), i
    assert len(model.encoder.encoder.layers) == 2  # layers above k dropped
    model.train(True)
    logits = model.forward_waves(_waves())
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    for name, p in trainable.items():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, f"{family}/{scope}: {name}"
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


@pytest.mark.parametrize("family,norm", VARIANTS, ids=IDS)
def test_frozen_prefix_and_cached_front_end_equal_the_whole_encoder(family, norm):
    encoder = _encoder(family, norm)
    waves = _waves(2)
    stable = bool(getattr(encoder.config, "do_stable_layer_norm", False))
    with torch.no_grad():
        full, mask = hidden_states(encoder, prepare_inputs(waves, True))
        features, _ = front_end(encoder, prepare_inputs(waves, True))  # what a front-end cache holds
        from_front = encoder_states(encoder, features, mask)
        m = mask[..., None]
        for j, h in enumerate(from_front):
            assert ((h - full[j]) * m).abs().max() <= 1e-5
        for start in (0, 1, 2):  # frozen prefix: hidden state `start` read from the cache
            out = run_layers(encoder, full[start], mask, start, 3, final_norm=stable)
            assert ((out - full[3]) * m).abs().max() <= 1e-4, start
        h1, mask1 = states_from_waves(encoder, waves, True, 1)
        assert torch.equal(mask1, mask) and ((h1 - full[1]) * m).abs().max() <= 1e-5
    # the fine-tuned model fed the cached state gives the logits of the raw clips
    model = SERModel(encoder, PeftModelConfig(layer=3, strategy="lora+ba+wg", scope="target-layer"), True)
    assert model.final_norm == stable
    with torch.no_grad():
        assert torch.allclose(model(full[2], mask), model.forward_waves(waves), atol=1e-5)
