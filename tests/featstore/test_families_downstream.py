"""Downstream of every family, unchanged: ``featstore extract`` of a tiny model of each family
(compared with transformers' own forward, clip by clip), and the layer-wise probes over the
25 hidden states of a multilingual (XLS-R-sized) model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from extract_testkit import write_clips

from featstore.audio import load_row
from featstore.cache import open_cache
from featstore.extract import ExtractConfig, extract
from featstore.manifest import save_manifest
from featstore.models.configs import ENCODER_CLASSES
from featstore.models.testing import save_tiny_model
from featstore.paths import manifest_path

# HuBERT base (group norm, post-norm), data2vec-audio, wav2vec 2.0 large / XLS-R (layer
# norm, pre-norm), WavLM base (group norm, post-norm)
VARIANTS = [("hubert", "group"), ("data2vec-audio", None), ("wav2vec2", "layer"), ("wavlm", "group")]


@pytest.mark.parametrize("family,norm", VARIANTS, ids=["hubert", "data2vec-audio", "xlsr", "wavlm-base"])
def test_extract_each_family_equals_transformers_clip_by_clip(tmp_path, family, norm):
    root = tmp_path / "cache"
    folder = save_tiny_model(tmp_path / "models" / f"tiny-{family}", family, "model", feat_extract_norm=norm,
                             language="en")
    manifest = write_clips(tmp_path / "wav", 6, seed=3)
    save_manifest(manifest, manifest_path("toy", root))
    path = extract(ExtractConfig(model=str(folder), corpus="toy", cache_root=root, dtype="float32",
                                 progress=False, frames=True))
    reference = ENCODER_CLASSES[family].from_pretrained(str(folder)).eval()  # transformers reads the folder
    stable = bool(getattr(reference.config, "do_stable_layer_norm", False))
    with open_cache(path) as cache, torch.no_grad():
        assert cache.n_hidden_states == 3 and cache.dim == 32
        assert cache.provenance["model_family"] == family
        assert cache.utt_ids == manifest["utt_id"].to_list()
        for i, row in enumerate(manifest.to_dicts()):
            wave = torch.as_tensor(load_row(row))
            if norm != "group":  # layer-norm front ends take normalised input (do_normalize)
                wave = (wave - wave.mean()) / torch.sqrt(wave.var(unbiased=False) + 1e-7)
            out = reference(wave[None], output_hidden_states=True)
            ref = list(out.hidden_states)
            if stable:  # the model's real output is after the final layer norm
                ref[-1] = out.last_hidden_state
            ref_frames = np.stack([h[0].numpy() for h in ref])
            np.testing.assert_allclose(cache.frames(row["utt_id"]), ref_frames, atol=1e-4)
            np.testing.assert_allclose(cache.pooled_all()[:, i], ref_frames.mean(axis=1), atol=1e-4)


@pytest.mark.slow
def test_probes_over_25_hidden_states_of_a_multilingual_model(tmp_path):
    from probes.config import LayerwiseConfig, ProbeConfig
    from probes.layerwise import run_layerwise_full
    from probes.synthetic import write_synthetic_study

    strength = np.zeros(25)
    strength[20] = 1.5  # only hidden state 20 carries the emotion
    write_synthetic_study(tmp_path, models={"xlsr-300m": "mul"}, corpora={"esd": "cn"}, n_utts=80, n_layers=25,
                          dim=8, strength=strength, shared=0.7)
    run = run_layerwise_full(LayerwiseConfig(cache_root=tmp_path, run_name="xlsr", models=("xlsr-300m",),
                                             corpora=("esd",), probe=ProbeConfig(lr=3e-3, max_epochs=20, patience=5)))
    # a multilingual model has no "own" language: every corpus is a transfer setting
    assert set(run.results["setting"]) == {"trans"}
    assert sorted(set(run.results["layer"])) == list(range(25))
    assert run.best["xlsr-300m"] == {"trans": 20}
