"""``featstore bench``: what extraction costs, against the model alone and the paper's loop.

On synthetic clips (log-normal lengths clipped to 1-8 s, or log-uniform over
``--clip-seconds``, written as 22.05 kHz wav files so decoding and resampling are real) and
a random model of the real size (``--family``: wav2vec 2.0 base by default, ``Wav2Vec2Config()``
defaults, 12 layers, 768 dims; every family in ``_bench_models``), it measures

(a) the model's forward pass alone, on the very batches extraction makes, audio in memory;
(b) our end-to-end extraction (decode, resample, forward, pool, write the cache);
(c) the paper code's loop: one clip at a time through ``Wav2Vec2FeatureExtractor`` and the
    model with ``output_hidden_states``, pooling through Python lists of per-layer means
    (not for Whisper, whose encoder takes log-mel features; ``--no-naive`` skips it);
(d) peak memory (resident set from ``/proc``, and CUDA's peak allocation) of (b) on N and
    on 4N clips, each in a fresh process, beside the planner's estimate of the largest
    batch's activation memory (``_memory``);
(e) cache bytes per utterance, pooled only and with every frame.

(b) runs first, then (a), then (c): one-off costs (new input shapes, allocator growth)
fall on our pipeline, so the ratios err against it. On a shared machine, run it twice.
A family that extraction cannot run yet (its forward pass lands with its own issue) is
reported as not supported, with the error, instead of measured.
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

from featstore.extract._bench_models import BENCH_FAMILIES, FAMILY_LABELS, build_family
from featstore.extract._compute import BatchRunner, autocast_for, pick_device
from featstore.extract._config import ExtractConfig
from featstore.extract._memory import activation_shape, batch_activation_bytes
from featstore.extract._pipeline import run_extraction
from featstore.extract._plan import auto_piece_utts, effective_batch_size, pieces, plan_batches
from featstore.manifest import make_manifest, save_manifest

FILE_RATE_HZ = 22050
MODEL_RATE_HZ = 16000
PAPER_FOLDS = 5
DEFAULT_CLIP_SECONDS = (1.0, 8.0)
GIB = 2**30
XLSR_PEAK_RSS_TARGET_BYTES = 8 * GIB


@dataclass(frozen=True)
class BenchConfig:
    """Benchmark settings.

    Parameters
    ----------
    n_utts : synthetic clips (default 200); the memory check also runs 4 x ``n_utts``.
    model_size : ``base`` (the family's real size: 12 x 768 for wav2vec 2.0, 24 x 1024 for
        ``xlsr``) or ``tiny`` (a quick check).
    family : model family (``_bench_models.BENCH_FAMILIES``), default ``wav2vec2``.
    clip_seconds : (shortest, longest) clip; default (1, 8): log-normal lengths (median 3 s)
        clipped to it; any other range: log-uniform over it.
    naive : also time the paper code's loop (c).
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
    family: str = "wav2vec2"
    clip_seconds: tuple[float, float] = DEFAULT_CLIP_SECONDS
    naive: bool = True

    def __post_init__(self) -> None:
        if self.n_utts < 1:
            raise ValueError(f"--n-utts must be >= 1, got {self.n_utts}")
        if self.model_size not in ("base", "tiny"):
            raise ValueError(f"--model-size must be base or tiny, got {self.model_size!r}")
        if self.family not in BENCH_FAMILIES:
            from featstore.errors import unknown_name

            raise ValueError(str(unknown_name("bench family", self.family, BENCH_FAMILIES)))
        lo, hi = self.clip_seconds
        if not 0.1 <= lo <= hi:
            raise ValueError(f"--clip-seconds SHORTEST-LONGEST must have 0.1 <= SHORTEST <= LONGEST, got {lo:g}-{hi:g}")
        pick_device(self.device)  # an unknown or absent device fails here, with its name


def bench_model(model_size: str, seed: int, device: torch.device, family: str = "wav2vec2") -> object:
    """A random model of ``family`` at its real size (``base``) or a tiny one, as a LoadedModel."""
    from featstore.models import LoadedModel

    config, encoder = build_family(family, model_size, seed)
    n_layers = int(getattr(config, "num_hidden_layers", None) or config.encoder_layers)
    width = int(getattr(config, "hidden_size", None) or config.d_model)
    return LoadedModel(alias=f"bench-{family}-{model_size}", source="random", family=config.model_type,
                       language="en", encoder=encoder.to(device), config=config,
                       do_normalize=family != "whisper", sample_rate_hz=MODEL_RATE_HZ,
                       fingerprint=f"random-{family}-seed-{seed}", n_hidden_states=n_layers + 1, hidden_size=width)


def synth_clips(folder: Path, n: int, seed: int, clip_seconds: tuple[float, float] = DEFAULT_CLIP_SECONDS
                ) -> pl.DataFrame:
    """``n`` clips as 22.05 kHz wav files: log-normal lengths (median 3 s) clipped to 1-8 s
    for the default ``clip_seconds``, else log-uniform over ``clip_seconds``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lo, hi = clip_seconds
    rows = []
    for i in range(n):
        if tuple(clip_seconds) == DEFAULT_CLIP_SECONDS:
            dur = float(np.clip(rng.lognormal(np.log(3.0), 0.5), lo, hi))
        else:
            dur = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
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


def warm_up(loaded: object, device: torch.device, naive: bool = True) -> None:
    """One small forward pass of each kind, so that one-off costs (lazy imports, kernel
    selection, allocator growth) are not charged to whichever measurement runs first."""
    from featstore import forward

    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) for n in (32000, 24000)]
    runner = BatchRunner(loaded.encoder, loaded.do_normalize, device, "float16", None, 10**9)
    runner.states(forward.prepare_inputs(clips, loaded.do_normalize))
    if naive:
        with torch.inference_mode(), autocast_for(device):
            loaded.encoder(torch.as_tensor(clips[0])[None].to(device), output_hidden_states=True)
    _sync(device)


def time_forward(loaded: object, manifest: pl.DataFrame, device: torch.device, cfg: ExtractConfig,
                 piece_utts: int) -> tuple[float, float]:
    """(a): wall-clock and process CPU seconds of the forward pass alone over extraction's own
    batches (audio preloaded; the batches of ``cfg``, capped by seconds and by the memory
    estimate as extraction caps them)."""
    from featstore import forward
    from featstore.audio import load_row
    from featstore.extract._pipeline import memory_estimator

    rows = manifest.to_dicts()
    waves = [load_row(r) for r in rows]
    durations = manifest["duration"].to_list()
    estimate, _ = memory_estimator(cfg, loaded, device, None)
    budget = cfg.max_batch_memory_gb * GIB if estimate else None
    batches = [b for k, (lo, hi) in enumerate(pieces(len(rows), piece_utts))
               for b in plan_batches(range(lo, hi), durations, k, cfg.max_batch_seconds,
                                     effective_batch_size(cfg.batch_size, device.type), budget, estimate)]
    inputs = [forward.prepare_inputs([waves[r] for r in b.rows], loaded.do_normalize) for b in batches]
    runner = BatchRunner(loaded.encoder, loaded.do_normalize, device, "float16", None, 10**9)
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for x in inputs:
        runner.states(x)  # the forward strategy extraction uses on this device, nothing else
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def naive_loop(loaded: object, manifest: pl.DataFrame, device: torch.device, out_dir: Path) -> tuple[float, np.ndarray]:
    """(c): the paper code's way; returns seconds and the (S, N, D) layer means it made."""
    from transformers import Wav2Vec2FeatureExtractor

    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=MODEL_RATE_HZ, padding_value=0.0,
                                         do_normalize=True, return_attention_mask=False)
    model = loaded.encoder
    stable = bool(getattr(model.config, "do_stable_layer_norm", False))
    _sync(device)
    t0 = time.perf_counter()
    per_layer: list[list[list[float]]] = [[] for _ in range(loaded.n_hidden_states)]
    with torch.no_grad():
        for path in manifest["path"].to_list():
            audio, rate = sf.read(path, dtype="float32")
            audio = soxr.resample(audio, rate, MODEL_RATE_HZ)
            inputs = extractor(audio, sampling_rate=MODEL_RATE_HZ, return_tensors="pt").input_values.to(device)
            out = model(inputs, output_hidden_states=True)
            hidden = list(out.hidden_states)
            if stable:  # transformers 4.x, the paper's, gave the final layer norm's output last
                hidden[-1] = out.last_hidden_state
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
    loaded = bench_model(args["model_size"], args["seed"], device, args.get("family", "wav2vec2"))
    manifest = pl.read_parquet(args["manifest"]).head(args["n"])
    rss_model = _peak_rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cfg = ExtractConfig(model=loaded.alias, corpus="bench", out=args["out"], device=str(device),
                        max_batch_seconds=args["max_batch_seconds"], progress=False)
    run_extraction(cfg, model=loaded, manifest=manifest)
    longest = min(float(manifest["duration"].max()), cfg.max_clip_seconds)
    estimate = batch_activation_bytes(activation_shape(loaded.encoder.config), [longest],
                                      per_clip_front_end=device.type == "cpu")
    return {"n_utts": args["n"], "peak_rss_bytes": _peak_rss_bytes(), "rss_after_model_bytes": rss_model,
            "longest_clip_s": longest, "longest_clip_estimate_bytes": estimate,
            "cuda_peak_bytes": int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None}


def _probe_in_subprocess(args: dict) -> dict:
    code = "import json,sys; from featstore.extract.bench import memory_probe; print(json.dumps(memory_probe(json.loads(sys.argv[1]))))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _supported(loaded: object, manifest: pl.DataFrame, device: torch.device, out: Path) -> str | None:
    """None when extraction runs this model (two clips end to end), else why not."""
    cfg = ExtractConfig(model=loaded.alias, corpus="bench", out=out, device=str(device), progress=False)
    try:
        run_extraction(cfg, model=loaded, manifest=manifest.head(2))
    except Exception as err:  # noqa: BLE001 - any failure means: not runnable yet, say why
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return None


def run_bench(config: BenchConfig) -> dict:
    """Run the benchmark; return every figure as a JSON-ready dict (``supported`` False,
    with ``reason``, for a family that extraction cannot run yet)."""
    device = pick_device(config.device)
    loaded = bench_model(config.model_size, config.seed, device, config.family)
    naive_skipped = naive_not_run_reason(config)
    naive = naive_skipped is None
    with tempfile.TemporaryDirectory(prefix="featstore-bench-") as tmp_name:
        tmp = Path(tmp_name)
        n_mem = 4 * config.n_utts if config.memory else config.n_utts
        all_clips = synth_clips(tmp / "wav", n_mem, config.seed, config.clip_seconds)
        manifest = all_clips.head(config.n_utts)
        audio_s = float(manifest["duration"].sum())
        reason = _supported(loaded, manifest, device, tmp / "probe.h5")
        if reason is not None:
            return {"config": asdict(config), "family": config.family, "supported": False, "device": str(device),
                    "reason": reason}
        # (b) runs first, so that one-off costs (new input shapes, allocator growth) fall on
        # our pipeline rather than on the baselines: the comparison errs against us.
        warm_up(loaded, device, naive)
        cfg = ExtractConfig(model=loaded.alias, corpus="bench", out=tmp / "ours.h5", device=str(device),
                            max_batch_seconds=config.max_batch_seconds, progress=config.progress, dtype="float16")
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        report = run_extraction(cfg, model=loaded, manifest=manifest)
        _sync(device)
        ours_s, ours_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        forward_s, forward_cpu_s = time_forward(loaded, manifest, device, cfg, auto_piece_utts(manifest.height))
        naive_s = diff = None
        if naive:
            naive_dir = tmp / "naive"
            naive_dir.mkdir()
            naive_s, naive_means = naive_loop(loaded, manifest, device, naive_dir)
        from featstore.cache import open_cache

        with open_cache(report.path) as cache:
            if naive:
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
                     "seed": config.seed, "manifest": str(tmp / "clips.parquet"), "family": config.family,
                     "max_batch_seconds": config.max_batch_seconds}
            small = _probe_in_subprocess({**probe, "n": config.n_utts, "out": str(tmp / "mem1.h5")})
            large = _probe_in_subprocess({**probe, "n": n_mem, "out": str(tmp / "mem4.h5")})
            key = "cuda_peak_bytes" if device.type == "cuda" else "peak_rss_bytes"
            memory = {"n": small, "4n": large, "growth": large[key] / small[key] - 1.0, "measure": key}
    passes = s * PAPER_FOLDS
    return {
        "config": asdict(config), "family": config.family, "supported": True, "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "n_utts": config.n_utts, "audio_seconds": audio_s, "n_hidden_states": s, "hidden_size": d,
        "forward_s": forward_s, "ours_s": ours_s, "naive_s": naive_s,
        "forward_x_real_time": audio_s / forward_s, "ours_x_real_time": audio_s / ours_s,
        "naive_x_real_time": audio_s / naive_s if naive else None,
        "ours_over_forward": ours_s / forward_s,
        "cpu_s": {"forward": forward_cpu_s, "ours": ours_cpu_s, "ours_over_forward": ours_cpu_s / forward_cpu_s},
        "naive_over_ours": naive_s / ours_s if naive else None, "naive_not_run": naive_skipped,
        "max_abs_diff_ours_vs_naive_layer_means": diff,
        "bytes_per_utt_pooled": pooled_bytes, "frames": frames, "memory": memory,
        "study": {"ours_forward_passes_per_utt_per_model": 1,
                  "paper_forward_passes_per_utt_per_model": passes,
                  "paper_scheme": f"{s} layers x {PAPER_FOLDS} folds",
                  "paper_loop_projected_s": naive_s * passes if naive else None, "ours_s": ours_s},
        "targets": _targets(device, config.family, ours_s / forward_s, naive_s / ours_s if naive else None,
                            audio_s / ours_s, memory),
    }


def naive_not_run_reason(config: BenchConfig) -> str | None:
    """Why (c), the paper code's loop, is not run, or ``None`` when it is."""
    if not config.naive:
        return "--no-naive given"
    if config.family == "whisper":
        return ("the paper's loop feeds raw waveforms through Wav2Vec2FeatureExtractor; "
                "Whisper's encoder takes log-mel features")
    return None


def _targets(device: torch.device, family: str, ours_over_forward: float, naive_over_ours: float | None,
             ours_xrt: float, memory: dict | None) -> dict:
    checks = {}
    if device.type == "cuda":
        if naive_over_ours is not None:
            checks["(c)/(b) >= 5"] = naive_over_ours >= 5
        checks[">= 1000x real time pooled"] = ours_xrt >= 1000
    else:
        checks["(b)/(a) <= 1.15"] = ours_over_forward <= 1.15
        if naive_over_ours is not None:
            checks["(b) not slower than (c)"] = naive_over_ours >= 1.0
    if memory is not None:
        if family == "xlsr":  # issue 16: a 24 x 1024 model within memory
            checks["memory growth N->4N < 15%"] = memory["growth"] < 0.15
            if memory["measure"] == "peak_rss_bytes":
                checks[f"peak RSS ({memory['n']['n_utts']} clips) < 8 GiB"] = (
                    memory["n"]["peak_rss_bytes"] < XLSR_PEAK_RSS_TARGET_BYTES)
        else:
            checks["memory growth N->4N < 10%"] = memory["growth"] < 0.10
    return checks


def format_bench(result: dict) -> str:
    """The benchmark as readable text."""
    mib = 2**20
    family = result.get("family", "wav2vec2")
    label = FAMILY_LABELS.get(family, family)
    if not result.get("supported", True):
        return (f"featstore bench --family {family}: {label} not supported until the family lands "
                f"(extraction failed on {result['device']}: {result['reason']})")
    lines = [
        f"featstore bench: {result['n_utts']} clips, {result['audio_seconds'] / 60:.1f} min of audio, "
        f"{label} {result['config']['model_size']} ({result['n_hidden_states']} states x {result['hidden_size']}, "
        f"random weights), {result['device']}, {result['torch_threads']} torch threads",
        f"(a) forward alone        {result['forward_s']:9.2f} s  {result['forward_x_real_time']:9.1f}x real time",
        f"(b) ours, end to end     {result['ours_s']:9.2f} s  {result['ours_x_real_time']:9.1f}x real time",
    ]
    if result["naive_s"] is not None:
        lines += [
            f"(c) paper code's loop    {result['naive_s']:9.2f} s  {result['naive_x_real_time']:9.1f}x real time",
            f"    (b)/(a) = {result['ours_over_forward']:.3f}   (c)/(b) = {result['naive_over_ours']:.2f}   "
            f"max |ours - paper loop| layer means = {result['max_abs_diff_ours_vs_naive_layer_means']:.2g} "
            "(float16 cache)"]
    else:
        why = result.get("naive_not_run")
        lines.append(f"    (b)/(a) = {result['ours_over_forward']:.3f}   (c) not run" + (f": {why}" if why else ""))
    cpu = result.get("cpu_s")
    if cpu and result["device"] == "cpu":
        lines.append(f"    CPU time of the process (all threads; fair on a shared machine): (a) {cpu['forward']:.1f} s, "
                     f"(b) {cpu['ours']:.1f} s, (b)/(a) = {cpu['ours_over_forward']:.3f}")
    fr = result["frames"]
    if fr["measured"]:
        lines.append(f"    with every frame       {fr['seconds']:9.2f} s  {fr['x_real_time']:9.1f}x real time")
    mem = result["memory"]
    if mem:
        key = mem["measure"]
        small = mem["n"]
        lines.append(f"(d) peak memory ({key}): N={small['n_utts']}: {small[key] / mib:.0f} MiB, "
                     f"4N={mem['4n']['n_utts']}: {mem['4n'][key] / mib:.0f} MiB, growth {100 * mem['growth']:+.1f}% "
                     f"(model alone: {small['rss_after_model_bytes'] / mib:.0f} MiB RSS; longest clip "
                     f"{small.get('longest_clip_s', 0):.1f} s, its estimated activations "
                     f"{small.get('longest_clip_estimate_bytes', 0) / mib:.0f} MiB)")
    lines.append(f"(e) cache per utterance: pooled {result['bytes_per_utt_pooled'] / 1024:.1f} KiB, with every frame "
                 f"{fr['bytes_per_utt'] / 1024:.0f} KiB ({'measured' if fr['measured'] else 'computed'})")
    st = result["study"]
    if st["paper_loop_projected_s"] is not None:
        lines.append(f"study: SSL forward passes per utterance per model for the layer-wise analysis: ours "
                     f"{st['ours_forward_passes_per_utt_per_model']}, the paper code's "
                     f"{st['paper_forward_passes_per_utt_per_model']} ({st['paper_scheme']}); on these clips "
                     f"{st['ours_s']:.1f} s against a projected {st['paper_loop_projected_s']:.0f} s")
    verdicts = ", ".join(f"{k}: {'ok' if v else 'MISSED'}" for k, v in result["targets"].items())
    if result["config"]["model_size"] != "base":  # a tiny model's forward pass is too short to time the overheads against
        lines.append(f"targets (judged at --model-size base only; {result['config']['model_size']} is a quick check "
                     f"that it runs): " + ", ".join(f"{k}: not judged" for k in result["targets"]))
    else:
        lines.append("targets: " + verdicts)
    return "\n".join(lines)
