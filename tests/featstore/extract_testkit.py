"""Helpers shared by the cache/extraction tests: tiny models, short wav clips, manifests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from transformers import Wav2Vec2Config, Wav2Vec2Model, WavLMConfig, WavLMModel

from featstore.manifest import make_manifest

TINY = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
    hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
)


@dataclass
class TinyLoaded:
    """The attributes of ``featstore.models.LoadedModel`` that extraction reads."""

    encoder: torch.nn.Module
    family: str
    alias: str = "tiny"
    source: str = "test"
    language: str = "en"
    do_normalize: bool = True
    sample_rate_hz: int = 16000
    fingerprint: str = ""
    extras: dict = field(default_factory=dict)

    @property
    def config(self) -> object:
        return self.encoder.config

    @property
    def n_hidden_states(self) -> int:
        return self.encoder.config.num_hidden_layers + 1

    @property
    def hidden_size(self) -> int:
        return self.encoder.config.hidden_size


def tiny_model(family: str = "wav2vec2", seed: int = 0) -> TinyLoaded:
    """A tiny random model: group-norm wav2vec 2.0 or layer-norm (pre-norm) WavLM."""
    torch.manual_seed(seed)
    if family == "wav2vec2":
        enc = Wav2Vec2Model(Wav2Vec2Config(**TINY, feat_extract_norm="group", do_stable_layer_norm=False))
    else:
        enc = WavLMModel(WavLMConfig(**TINY, feat_extract_norm="layer", do_stable_layer_norm=True,
                                     num_buckets=32, max_bucket_distance=64))
    with torch.no_grad():  # random init leaves norms at identity; perturb so they matter
        for p in enc.parameters():
            p.add_(0.05 * torch.randn_like(p))
    blob = b"".join(p.detach().numpy().tobytes() for p in enc.parameters())
    return TinyLoaded(enc.eval(), family, alias=f"tiny-{family}", fingerprint=hashlib.sha256(blob).hexdigest()[:16])


def write_clips(folder: Path, n: int, seed: int = 0, corpus: str = "toy", min_s: float = 0.1, max_s: float = 0.9,
                sample_rate_hz: int = 16000, bad: dict[int, str] | None = None):
    """``n`` short noisy tone clips as wav files, and their manifest (polars)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        dur = float(rng.uniform(min_s, max_s))
        t = np.arange(int(dur * sample_rate_hz)) / sample_rate_hz
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.standard_normal(t.size)
        path = folder / f"u{i:03d}.wav"
        if bad and i in bad:
            if bad[i] == "missing":
                pass
            elif bad[i] == "garbage":
                path.write_bytes(b"RIFF not really a wav file")
            elif bad[i] == "silent":
                sf.write(path, np.zeros_like(wave), sample_rate_hz)
        else:
            sf.write(path, wave.astype(np.float32), sample_rate_hz)
        rows.append({"utt_id": f"u{i:03d}", "corpus": corpus, "language": "en", "speaker": f"s{i % 3}",
                     "emotion": ["angry", "happy", "neutral", "sad"][i % 4], "label": "x", "path": str(path),
                     "duration": len(t) / sample_rate_hz, "sample_rate": sample_rate_hz})
    return make_manifest(rows)
