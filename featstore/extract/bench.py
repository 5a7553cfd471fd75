"""``featstore bench``: what extraction costs, against the model alone and the paper's loop.

On synthetic clips (log-normal lengths clipped to 1-8 s, written as 22.05 kHz wav files so
decoding and resampling are real) and a random model of the real size (wav2vec 2.0 base:
``Wav2Vec2Config()`` defaults, 12 layers, 768 dims), it measures

(a) the model's forward pass alone, on the very batches extraction makes, audio in memory;
(b) our end-to-end extraction (decode, resample, forward, pool, write the cache);
(c) the paper code's loop: one clip at a time through ``Wav2Vec2FeatureExtractor`` and the
    model with ``output_hidden_states``, pooling through Python lists of per-layer means;
(d) peak memory (resident set from ``/proc``, and CUDA's peak allocation) of (b) on N and
    on 4N clips, each in a fresh process;
(e) cache bytes per utterance, pooled only and with every frame.

(b) runs first, then (a), then (c): one-off costs (new input shapes, allocator growth)
fall on our pipeline, so the ratios err against it. On a shared machine, run it twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import soundfile as sf
import soxr
import torch

from featstore.extract._compute import BatchRunner, autocast_for, pick_device
from featstore.extract._config import ExtractConfig
from featstore.extract._pipeline import run_extraction
from featstore.extract._plan import auto_piece_utts, effective_batch_size, pieces, plan_batches
from featstore.manifest import make_manifest, save_manifest

FILE_RATE_HZ = 22050
MODEL_RATE_HZ = 16000
PAPER_FOLDS = 5


@dataclass(frozen=True)
class BenchConfig:
    """Benchmark settings.

    Parameters
    ----------
    n_utts : synthetic clips (default 200); the memory check also runs 4 x ``n_utts``.
    model_size : ``base`` (12 layers x 768, the real compute) or ``tiny`` (a quick check).
    device : ``auto``, ``cpu`` or ``cuda``.
    frames : also time an extraction that stores every frame.
    max_batch_seconds : batch cap of our extraction, seconds (default 64).
    seed : seed of the clips and of the random weights.
    progress : show progress bars.
    memory : run the N / 4N memory measurement (two extra processes).
    """

    n_utts: int = 200
    model_size: str = "base"
    device: str = "auto"
    frames: bool = False
    max_batch_seconds: float = 64.0
    seed: int = 0
    progress: bool = True
    memory: bool = True

    def __post_init__(self) -> None:
        if self.n_utts < 1:
            raise ValueError(f"n_utts must be >= 1, got {self.n_utts}")
        if self.model_size not in ("base", "tiny"):
            raise ValueError(f"model_size must be base or tiny, got {self.model_size!r}")
        pick_device(self.device)  # an unknown or absent device fails here, with its name


def bench_model(model_size: str, seed: int, device: torch.device) -> object:
    """A random wav2vec 2.0 of the real size (``base``) or a tiny one, as a LoadedModel."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from featstore.models import LoadedModel

    if model_size == "base":
        config = Wav2Vec2Config()  # 12 layers, 768 dims, group-norm front end: wav2vec 2.0 base
    else:
        config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    config.apply_spec_augment = False
    torch.manual_seed(seed)
    encoder = Wav2Vec2Model(config).eval().to(device)
    return LoadedModel(alias=f"bench-{model_size}", source="random", family="wav2vec2", language="en",
                       encoder=encoder, config=config, do_normalize=True, sample_rate_hz=MODEL_RATE_HZ,
                       fingerprint=f"random-seed-{seed}", n_hidden_states=config.num_hidden_layers + 1,
                       hidden_size=config.hidden_size)


def synth_clips(folder: Path, n: int, seed: int) -> pl.DataFrame:
    """``n`` clips of log-normal length (median 3 s, clipped to 1-8 s) as 22.05 kHz wav files."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        dur = float(np.clip(rng.lognormal(np.log(3.0), 0.5), 1.0, 8.0))
        t = np.arange(int(dur * FILE_RATE_HZ)) / FILE_RATE_HZ
        f0 = rng.uniform(90, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
        wave = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / FILE_RATE_HZ) + 0.02 * rng.standard_normal(t.size)
        path = folder / f"b{i:05d}.wav"
        sf.write(path, wave.astype(np.float32), FILE_RATE_HZ, subtype="PCM_16")
        rows.append({"utt_id": f"b{i:05d}", "corpus": "bench", "language": "en", "speaker": f"s{i % 10}",
                     "emotion": "neutral", "label": "neutral", "path": str(path), "duration": t.size / FILE_RATE_HZ,
                     "sample_rate": FILE_RATE_HZ})
    return make_manifest(rows)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warm_up(loaded: object, device: torch.device) -> None:
    """One small forward pass of each kind, so that one-off costs (lazy imports, kernel
    selection, allocator growth) are not charged to whichever measurement runs first."""
    from featstore import forward

    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) for n in (32000, 24000)]
    runner = BatchRunner(loaded.encoder, loaded.do_normalize, device, "float16", None, 10**9)
    runner.states(forward.prepare_inputs(clips, loaded.do_normalize))
    with torch.inference_mode(), autocast_for(device):
        loaded.encoder(torch.as_tensor(clips[0])[None].to(device), output_hidden_states=True)
    _sync(device)


def time_forward(loaded: object, manifest: pl.DataFrame, device: torch.device, max_batch_seconds: float,
                 piece_utts: int) -> float:
    """(a): seconds of ``hidden_states`` alone over extraction's own batches (audio preloaded)."""
    from featstore import forward
    from featstore.audio import load_row

    rows = manifest.to_dicts()
    waves = [load_row(r) for r in rows]
    durations = manifest["duration"].to_list()
    batches = [b for k, (lo, hi) in enumerate(pieces(len(rows), piece_utts))
               for b in plan_batches(range(lo, hi), durations, k, max_batch_seconds,
                                     effective_batch_size(None, device.type))]
    inputs = [forward.prepare_inputs([waves[r] for r in b.rows], loaded.do_normalize) for b in batches]
    runner = BatchRunner(loaded.encoder, loaded.do_normalize, device, "float16", None, 10**9)
    _sync(device)
    t0 = time.perf_counter()
    for x in inputs:
        runner.states(x)  # the forward strategy extraction uses on this device, nothing else
    _sync(device)
    return time.perf_counter() - t0


def naive_loop(loaded: object, manifest: pl.DataFrame, device: torch.device, out_dir: Path) -> tuple[float, np.ndarray]:
    """(c): the paper code's way; returns seconds and the (S, N, D) layer means it made."""
    from transformers import Wav2Vec2FeatureExtractor

    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=MODEL_RATE_HZ, padding_value=0.0,
                                         do_normalize=True, return_attention_mask=False)
    model = loaded.encoder
    _sync(device)
    t0 = time.perf_counter()
    per_layer: list[list[list[float]]] = [[] for _ in range(loaded.n_hidden_states)]
    with torch.no_grad():
        for path in manifest["path"].to_list():
            audio, rate = sf.read(path, dtype="float32")
            audio = soxr.resample(audio, rate, MODEL_RATE_HZ)
            inputs = extractor(audio, sampling_rate=MODEL_RATE_HZ, return_tensors="pt").input_values.to(device)
            hidden = model(inputs, output_hidden_states=True).hidden_states
            for layer, h in enumerate(hidden):
                per_layer[layer].append(h.mean(dim=1).squeeze(0).cpu().tolist())
    stacked = np.array(per_layer, dtype=np.float32)
    for layer in range(stacked.shape[0]):
        np.save(out_dir / f"layer{layer}.npy", stacked[layer])
    _sync(device)
    return time.perf_counter() - t0, stacked


def _peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def memory_probe(args: dict) -> dict:
    """Run one end-to-end extraction in this process and report its peak memory
    (called in a fresh process by :func:`run_bench`)."""
    device = pick_device(args["device"])
    torch.set_num_threads(int(args["threads"]))
    loaded = bench_model(args["model_size"], args["seed"], device)
    manifest = pl.read_parquet(args["manifest"]).head(args["n"])
    rss_model = _peak_rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cfg = ExtractConfig(model=loaded.alias, corpus="bench", out=args["out"], device=str(device),
                        max_batch_seconds=args["max_batch_seconds"], progress=False)
    run_extraction(cfg, model=loaded, manifest=manifest)
    return {"n_utts": args["n"], "peak_rss_bytes": _peak_rss_bytes(), "rss_after_model_bytes": rss_model,
            "cuda_peak_bytes": int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None}


def _probe_in_subprocess(args: dict) -> dict:
    code = "import json,sys; from featstore.extract.bench import memory_probe; print(json.dumps(memory_probe(json.loads(sys.argv[1]))))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_bench(config: BenchConfig) -> dict:
    """Run the benchmark; return every figure as a JSON-ready dict."""
    device = pick_device(config.device)
    loaded = bench_model(config.model_size, config.seed, device)
    with tempfile.TemporaryDirectory(prefix="featstore-bench-") as tmp_name:
        tmp = Path(tmp_name)
        n_mem = 4 * config.n_utts if config.memory else config.n_utts
        all_clips = synth_clips(tmp / "wav", n_mem, config.seed)
        manifest = all_clips.head(config.n_utts)
        audio_s = float(manifest["duration"].sum())
        # (b) runs first, so that one-off costs (new input shapes, allocator growth) fall on
        # our pipeline rather than on the baselines: the comparison errs against us.
        warm_up(loaded, device)
        cfg = ExtractConfig(model=loaded.alias, corpus="bench", out=tmp / "ours.h5", device=str(device),
                            max_batch_seconds=config.max_batch_seconds, progress=config.progress, dtype="float16")
        _sync(device)
        t0 = time.perf_counter()
        report = run_extraction(cfg, model=loaded, manifest=manifest)
        _sync(device)
        ours_s = time.perf_counter() - t0
        forward_s = time_forward(loaded, manifest, device, config.max_batch_seconds, auto_piece_utts(manifest.height))
        naive_dir = tmp / "naive"
        naive_dir.mkdir()
        naive_s, naive_means = naive_loop(loaded, manifest, device, naive_dir)
        from featstore.cache import open_cache

        with open_cache(report.path) as cache:
            diff = float(np.abs(cache.pooled_all() - naive_means).max())
            total_frames = int(cache.num_frames.sum())
        pooled_bytes = report.path.stat().st_size / config.n_utts
        s, d = loaded.n_hidden_states, loaded.hidden_size
        frames = None
        if config.frames:
            fcfg = ExtractConfig(model=loaded.alias, corpus="bench", out=tmp / "frames.h5", device=str(device),
                                 max_batch_seconds=config.max_batch_seconds, progress=config.progress, frames=True)
            t0 = time.perf_counter()
            frep = run_extraction(fcfg, model=loaded, manifest=manifest)
            frames_s = time.perf_counter() - t0
            frames = {"seconds": frames_s, "x_real_time": audio_s / frames_s,
                      "bytes_per_utt": frep.path.stat().st_size / config.n_utts, "measured": True}
        else:
            frames = {"seconds": None, "x_real_time": None, "measured": False,
                      "bytes_per_utt": pooled_bytes + total_frames * s * d * 2 / config.n_utts}
        memory = None
        if config.memory:
            save_manifest(all_clips, tmp / "clips.parquet")
            probe = {"device": str(device), "threads": torch.get_num_threads(), "model_size": config.model_size,
                     "seed": config.seed, "manifest": str(tmp / "clips.parquet"),
                     "max_batch_seconds": config.max_batch_seconds}
            small = _probe_in_subprocess({**probe, "n": config.n_utts, "out": str(tmp / "mem1.h5")})
            large = _probe_in_subprocess({**probe, "n": n_mem, "out": str(tmp / "mem4.h5")})
            key = "cuda_peak_bytes" if device.type == "cuda" else "peak_rss_bytes"
            memory = {"n": small, "4n": large, "growth": large[key] / small[key] - 1.0, "measure": key}
    passes = s * PAPER_FOLDS
    return {
        "config": asdict(config), "device": str(device), "torch_threads": torch.get_num_threads(),
        "n_utts": config.n_utts, "audio_seconds": audio_s, "n_hidden_states": s, "hidden_size": d,
        "forward_s": forward_s, "ours_s": ours_s, "naive_s": naive_s,
        "forward_x_real_time": audio_s / forward_s, "ours_x_real_time": audio_s / ours_s,
        "naive_x_real_time": audio_s / naive_s,
        "ours_over_forward": ours_s / forward_s, "naive_over_ours": naive_s / ours_s,
        "max_abs_diff_ours_vs_naive_layer_means": diff,
        "bytes_per_utt_pooled": pooled_bytes, "frames": frames, "memory": memory,
        "study": {"ours_forward_passes_per_utt_per_model": 1,
                  "paper_forward_passes_per_utt_per_model": passes,
                  "paper_scheme": f"{s} layers x {PAPER_FOLDS} folds",
                  "paper_loop_projected_s": naive_s * passes, "ours_s": ours_s},
        "targets": _targets(device, ours_s / forward_s, naive_s / ours_s, audio_s / ours_s,
                            memory["growth"] if memory else None),
    }


def _targets(device: torch.device, ours_over_forward: float, naive_over_ours: float, ours_xrt: float,
             growth: float | None) -> dict:
    if device.type == "cuda":
        checks = {"(c)/(b) >= 5": naive_over_ours >= 5, ">= 1000x real time pooled": ours_xrt >= 1000}
    else:
        checks = {"(b)/(a) <= 1.15": ours_over_forward <= 1.15, "(b) not slower than (c)": naive_over_ours >= 1.0}
    if growth is not None:
        checks["memory growth N->4N < 10%"] = growth < 0.10
    return checks


def format_bench(result: dict) -> str:
    """The benchmark as readable text."""
    mib = 2**20
    lines = [
        f"featstore bench: {result['n_utts']} clips, {result['audio_seconds'] / 60:.1f} min of audio, "
        f"wav2vec 2.0 {result['config']['model_size']} ({result['n_hidden_states']} states x {result['hidden_size']}), "
        f"{result['device']}, {result['torch_threads']} torch threads",
        f"(a) forward alone        {result['forward_s']:9.2f} s  {result['forward_x_real_time']:9.1f}x real time",
        f"(b) ours, end to end     {result['ours_s']:9.2f} s  {result['ours_x_real_time']:9.1f}x real time",
        f"(c) paper code's loop    {result['naive_s']:9.2f} s  {result['naive_x_real_time']:9.1f}x real time",
        f"    (b)/(a) = {result['ours_over_forward']:.3f}   (c)/(b) = {result['naive_over_ours']:.2f}   "
        f"max |ours - paper loop| layer means = {result['max_abs_diff_ours_vs_naive_layer_means']:.2g} (float16 cache)",
    ]
    fr = result["frames"]
    if fr["measured"]:
        lines.append(f"    with every frame       {fr['seconds']:9.2f} s  {fr['x_real_time']:9.1f}x real time")
    mem = result["memory"]
    if mem:
        key = mem["measure"]
        lines.append(f"(d) peak memory ({key}): N={mem['n']['n_utts']}: {mem['n'][key] / mib:.0f} MiB, "
                     f"4N={mem['4n']['n_utts']}: {mem['4n'][key] / mib:.0f} MiB, growth {100 * mem['growth']:+.1f}% "
                     f"(model alone: {mem['n']['rss_after_model_bytes'] / mib:.0f} MiB RSS)")
    lines.append(f"(e) cache per utterance: pooled {result['bytes_per_utt_pooled'] / 1024:.1f} KiB, with every frame "
                 f"{fr['bytes_per_utt'] / 1024:.0f} KiB ({'measured' if fr['measured'] else 'computed'})")
    st = result["study"]
    lines.append(f"study: SSL forward passes per utterance per model for the layer-wise analysis: ours "
                 f"{st['ours_forward_passes_per_utt_per_model']}, the paper code's "
                 f"{st['paper_forward_passes_per_utt_per_model']} ({st['paper_scheme']}); on these clips "
                 f"{st['ours_s']:.1f} s against a projected {st['paper_loop_projected_s']:.0f} s")
    lines.append("targets: " + ", ".join(f"{k}: {'ok' if v else 'MISSED'}" for k, v in result["targets"].items()))
    return "\n".join(lines)
