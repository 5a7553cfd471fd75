"""Benchmark: time per training epoch with the frozen front end recomputed from audio vs
read from a float32 frame cache (featstore's HDF5 format), for both scopes.

The issue's targets on a base-sized model (12 layers, 768 dims) at k = 6: at least 1.3x
faster for ``every-layer`` (the convolutional front end is skipped) and 3x for
``target-layer`` (layers 1..k-1 are skipped too). Random weights and random clips: speed
does not depend on what the weights are.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from finetune.data import ClipSet
from finetune.model import PeftModelConfig, SERModel
from finetune.train import FitResult, TrainConfig, autocast_dtype, make_optimizer, train_epoch

TARGETS: dict[str, float] = {"every-layer": 1.3, "target-layer": 3.0}
"""The issue's speed-up targets (cached vs recomputed), for a base-sized model at k = 6."""


@dataclass(frozen=True)
class BenchConfig:
    """What to time."""

    family: str = field(default="wav2vec2", metadata={"help": "a model family: wav2vec2, wavlm, hubert, data2vec-audio"})
    size: str = field(default="base", metadata={"help": "base (12 x 768) or tiny"})
    layer: int = field(default=6, metadata={"help": "k"})
    strategy: str = field(default="lora+ba+wg", metadata={"help": "adapter methods"})
    n_utts: int = field(default=64, metadata={"help": "clips per epoch"})
    duration_s: float = field(default=3.0, metadata={"help": "mean clip length in seconds (+-30%)"})
    batch_size: int = field(default=16, metadata={"help": "clips per batch"})
    epochs: int = field(default=2, metadata={"help": "timed epochs (after one warm-up epoch)"})
    device: str = field(default="auto", metadata={"help": "torch device: auto (CUDA if present, else CPU), cpu, cuda ..."})
    seed: int = field(default=0, metadata={"help": "seed of weights and clips"})

    def __post_init__(self) -> None:
        if self.size not in ("base", "tiny"):
            raise ValueError(f"--model-size must be base or tiny, got {self.size!r}")
        from featstore.models.registry import FAMILIES

        if self.family not in FAMILIES:
            raise ValueError(f"--family must be one of {', '.join(sorted(FAMILIES))}, got {self.family!r}")
        if self.n_utts < 1 or self.epochs < 1 or self.batch_size < 1 or self.duration_s <= 0.05:
            raise ValueError(f"--n-utts, --epochs and --batch-size must be >= 1 and --duration-s > 0.05, got {self.n_utts}, "
                             f"{self.epochs}, {self.batch_size} and {self.duration_s}")


def run_bench(config: BenchConfig) -> list[dict]:
    """Seconds per epoch for each scope, recomputed vs cached, with the speed-up.

    Returns one dict per scope: ``scope``, ``recompute_s``, ``cached_s``, ``speedup``,
    the cache read share ``read_s``, and ``target`` (:data:`TARGETS`) with ``meets_target``.
    """
    from featstore.cache import open_cache, write_cache
    from featstore.forward import hidden_states, prepare_inputs
    from featstore.manifest import make_manifest
    from featstore.models import resolve_device

    config = replace(config, device=str(resolve_device(config.device)))  # auto -> cuda or cpu
    from featstore.models.testing import build_tiny_model, tiny_config

    model_config = tiny_config(config.family, size=config.size)
    if config.layer > model_config.num_hidden_layers:
        raise ValueError(f"layer {config.layer} > {model_config.num_hidden_layers} layers")

    def fresh_encoder() -> torch.nn.Module:
        return build_tiny_model(config.family, "model", model_config, seed=config.seed).eval().to(config.device)

    rng = np.random.default_rng(config.seed)
    n = [int(config.duration_s * 16000 * rng.uniform(0.7, 1.3)) for _ in range(config.n_utts)]
    ids = [f"b{i:05d}" for i in range(config.n_utts)]
    waves = {u: rng.standard_normal(k).astype(np.float32) * 0.1 for u, k in zip(ids, n, strict=True)}
    labels = rng.integers(0, 4, config.n_utts)
    lengths = np.array(n)
    encoder = fresh_encoder()
    states = (0, config.layer - 1)
    frames, means = [], []
    with torch.no_grad():
        for u in ids:
            s, _ = hidden_states(encoder, prepare_inputs([waves[u]], True), n_layers=max(states))
            frames.append(s[list(states), 0].float().cpu().numpy())
            means.append(s[:, 0].mean(1).float().cpu().numpy())
    mean = np.stack(means, axis=1)
    manifest = make_manifest([{"utt_id": u, "corpus": "bench", "language": "xx", "speaker": "s", "emotion": "angry",
                               "label": "a", "path": f"/bench/{u}.wav", "duration": k / 16000, "sample_rate": 16000}
                              for u, k in zip(ids, n, strict=True)])
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.h5"
        write_cache(path, ids, mean, mean, {"model_fingerprint": "bench"}, manifest, frames=frames,
                    frame_layers=list(dict.fromkeys(states)), dtype="float32")
        cache = open_cache(path)
        try:
            for scope in ("every-layer", "target-layer"):
                cfg = PeftModelConfig(layer=config.layer, strategy=config.strategy, scope=scope)
                wave_set = ClipSet(ids, labels, lengths, waves=waves, name="audio")
                cached_set = ClipSet(ids, labels, lengths, frames=cache, state=cfg.input_state, name="cache")
                times = {}
                for name, clips in (("recompute", wave_set), ("cached", cached_set)):
                    times[name] = _time_epochs(fresh_encoder(), cfg, clips, config)
                t0 = time.perf_counter()
                for u in ids:
                    cache.frames(u, [cfg.input_state])
                read_s = time.perf_counter() - t0
                out.append({"scope": scope, "layer": config.layer, "size": config.size, "family": config.family,
                            "n_utts": config.n_utts, "recompute_s": times["recompute"], "cached_s": times["cached"],
                            "speedup": times["recompute"] / times["cached"], "read_s": read_s,
                            "target": TARGETS[scope],
                            "meets_target": times["recompute"] / times["cached"] >= TARGETS[scope]})
        finally:
            cache.close()
    return out


def _time_epochs(encoder: torch.nn.Module, cfg: PeftModelConfig, clips: ClipSet, config: BenchConfig) -> float:
    model = SERModel(encoder, cfg, True).to(config.device)
    tc = TrainConfig(batch_size=config.batch_size, seed=config.seed)
    opt = make_optimizer(model, tc)
    rng = np.random.default_rng(config.seed)
    sink = FitResult({}, 0.0, 0.0, 0, 0)
    # the same precision as training: bf16/fp16 autocast on CUDA, float32 on CPU
    dtype = autocast_dtype(tc, torch.device(config.device))
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    model.use_checkpointing = config.device.startswith("cuda")
    train_epoch(model, clips, opt, tc, rng, dtype, scaler, sink)  # warm-up
    if config.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(config.epochs):
        train_epoch(model, clips, opt, tc, rng, dtype, scaler, sink)
    if config.device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / config.epochs
