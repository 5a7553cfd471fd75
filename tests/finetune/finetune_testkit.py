"""Shared builders for the finetune tests: tiny encoders of both families and a learnable
synthetic task (each class has its own pitch)."""

from __future__ import annotations

import numpy as np
import torch
from transformers import Wav2Vec2Config, Wav2Vec2Model, WavLMConfig, WavLMModel

from finetune.data import ClipSet

FAMILIES = ("wav2vec2", "wavlm")
TINY = dict(
    hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
    conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
    apply_spec_augment=False, layerdrop=0.0,
)


def tiny_encoder(family: str, seed: int = 0, **overrides: object) -> torch.nn.Module:
    """A random tiny encoder in eval mode (group-norm wav2vec 2.0 or layer-norm WavLM)."""
    torch.manual_seed(seed)
    kw = TINY | overrides
    if family == "wav2vec2":
        model = Wav2Vec2Model(Wav2Vec2Config(feat_extract_norm="group", **kw))
    else:
        model = WavLMModel(WavLMConfig(feat_extract_norm="layer", num_buckets=32, max_bucket_distance=64, **kw))
    return model.eval()


def pitch_clips(n_per_class: int, seed: int, n_classes: int = 4, prefix: str = "u") -> tuple[list[str], dict, np.ndarray]:
    """Clips of 0.25-0.45 s whose class sets the tone's pitch (200, 500, 1200, 3000 Hz)."""
    rng = np.random.default_rng(seed)
    freqs = (200.0, 500.0, 1200.0, 3000.0)
    ids, waves, labels = [], {}, []
    for c in range(n_classes):
        for j in range(n_per_class):
            n = int(rng.integers(4000, 7200))
            t = np.arange(n) / 16000.0
            wave = np.sin(2 * np.pi * freqs[c] * t + rng.uniform(0, 6.3)) + 0.05 * rng.standard_normal(n)
            uid = f"{prefix}{c}_{j}"
            ids.append(uid)
            waves[uid] = wave.astype(np.float32)
            labels.append(c)
    return ids, waves, np.array(labels)


def wave_set(ids: list[str], waves: dict, labels: np.ndarray, name: str = "set") -> ClipSet:
    return ClipSet(list(ids), labels, np.array([len(waves[u]) for u in ids]), waves=waves, name=name)
