"""CUDA smoke test: the GPU path of extraction and fine-tuning runs and agrees with the
CPU. Skipped where no CUDA device is present (CI has none); run on a GPU node with
``python -m pytest -m gpu``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from extract_testkit import tiny_model, write_clips

from featstore.cache import open_cache
from featstore.extract import ExtractConfig, run_extraction
from featstore.forward import hidden_states, prepare_inputs

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("family", ["wav2vec2", "wavlm"])
def test_cuda_forward_equals_cpu(family):
    model = tiny_model(family)
    rng = np.random.default_rng(0)
    waves = prepare_inputs([rng.standard_normal(n).astype(np.float32) for n in (3000, 8000, 16000)], True)
    with torch.no_grad():
        cpu_states, cpu_mask = hidden_states(model.encoder, waves)
        gpu_enc = model.encoder.to("cuda")
        gpu_states, gpu_mask = hidden_states(gpu_enc, [w.to("cuda") for w in waves])
    assert torch.equal(cpu_mask, gpu_mask.cpu())
    diff = (cpu_states - gpu_states.float().cpu()).abs()[:, cpu_mask].max().item()
    assert diff <= 1e-3


def test_cuda_extraction_matches_cpu(tmp_path):
    manifest = write_clips(tmp_path / "wav", 8, seed=3)
    model = tiny_model("wav2vec2")
    base = dict(model="tiny", corpus="toy", cache_root=tmp_path / "cache", progress=False, dtype="float32")
    cpu = run_extraction(ExtractConfig(**base, device="cpu", out=tmp_path / "cpu.h5"), model, manifest)
    gpu = run_extraction(ExtractConfig(**base, device="cuda", out=tmp_path / "gpu.h5"), model, manifest)
    assert not gpu.failed
    with open_cache(cpu.path) as c, open_cache(gpu.path) as g:
        assert c.utt_ids == g.utt_ids
        # the transformer runs under bf16 autocast on CUDA: agreement to bf16 precision
        assert np.abs(c.pooled_all() - g.pooled_all()).max() <= 5e-2


def test_cuda_adapters_get_gradients():
    from finetune.model import PeftModelConfig, SERModel

    model = tiny_model("wav2vec2")
    probe = SERModel(model.encoder, PeftModelConfig(layer=2, strategy="lora+ba+wg"), True).to("cuda")
    rng = np.random.default_rng(1)
    waves = [torch.from_numpy(rng.standard_normal(n).astype(np.float32)).to("cuda") for n in (4000, 6000)]
    probe.train()
    logits = probe.forward_waves(waves)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1], device="cuda")).backward()
    grads = [p.grad for n, p in probe.named_parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
