"""Large models within memory: the activation estimate, batches capped by it, cache sizes,
and ``featstore bench --family``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from transformers import (
    Data2VecAudioConfig,
    HubertConfig,
    Wav2Vec2Config,
    WavLMConfig,
    WhisperConfig,
)
from typer.testing import CliRunner

from cli import featstore_app
from featstore.cache import open_cache
from featstore.extract import ExtractConfig, plan_batches, run_extraction
from featstore.extract._memory import ActivationShape, activation_shape, batch_activation_bytes
from featstore.extract._sizes import cache_bytes_per_hour, frame_bytes_per_hour, pooled_bytes_per_utt
from tests.featstore.extract_testkit import tiny_model, write_clips

XLSR = Wav2Vec2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                      feat_extract_norm="layer", do_stable_layer_norm=True)


def test_estimate_of_an_xlsr_clip_by_hand():
    """A 20 s clip of a 24 x 1024 model on CPU: the front end is the largest phase."""
    shape = activation_shape(XLSR)
    assert shape == ActivationShape("wav2vec2", 24, 1024, 16, 4096, 512, 5)
    samples = 20 * 16000
    front = (4 * 512 * samples / 5 + samples) * 4
    t = 1000
    transformer = 25 * t * 1024 * 4 + t * t + (2 * t * 4096 + 6 * t * 1024) * 4  # sdpa: the T x T bool mask only
    assert front == 525_568_000 and transformer == 160_744_000 and 3 * 25 * t * 1024 * 4 == 307_200_000
    assert batch_activation_bytes(shape, [20.0]) == 525_568_000
    # on CUDA the front end runs on the padded batch: two clips double it
    assert batch_activation_bytes(shape, [20.0, 3.0], per_clip_front_end=False) == 2 * 525_568_000
    # WavLM large's own (eager) attention on a 60 s clip: six T x T matrices per head dominate
    wavlm = activation_shape(WavLMConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                         intermediate_size=4096))
    t = 3000
    assert wavlm.eager_attention and not shape.eager_attention
    assert batch_activation_bytes(wavlm, [60.0]) == 25 * t * 1024 * 4 + (6 * 16 * t * t + 2 * t * 4096
                                                                         + 6 * t * 1024) * 4


def test_estimate_grows_with_clips_and_length_and_reads_every_family():
    shape = activation_shape(XLSR)
    one = batch_activation_bytes(shape, [10.0])
    assert batch_activation_bytes(shape, [10.0, 10.0]) > one > batch_activation_bytes(shape, [5.0]) > 0
    assert batch_activation_bytes(shape, []) == 0
    # frames copied to the host add to the pooling phase
    assert (batch_activation_bytes(shape, [5.0] * 4, n_frame_layers=25)
            > batch_activation_bytes(shape, [5.0] * 4, n_frame_layers=0))
    eager = activation_shape(Wav2Vec2Config(attn_implementation="eager"))
    assert eager.eager_attention and eager.attention_copies == 3
    batch = [20.0] * 4
    assert batch_activation_bytes(eager, batch) > batch_activation_bytes(activation_shape(Wav2Vec2Config()), batch)
    for cfg, layers, width in ((HubertConfig(), 12, 768), (Data2VecAudioConfig(), 12, 768), (WavLMConfig(), 12, 768)):
        s = activation_shape(cfg)
        assert (s.n_layers, s.width, s.heads, s.conv_channels, s.first_stride) == (layers, width, 12, 512, 5)
    whisper = activation_shape(WhisperConfig(d_model=512, encoder_layers=6, encoder_attention_heads=8,
                                             encoder_ffn_dim=2048))
    assert (whisper.n_layers, whisper.width, whisper.heads, whisper.window_s) == (6, 512, 8, 30.0)
    # Whisper always sees whole 30 s windows: 1 s costs as much as 30 s; 31 s is two windows
    assert batch_activation_bytes(whisper, [1.0]) == batch_activation_bytes(whisper, [30.0])
    assert batch_activation_bytes(whisper, [31.0]) == batch_activation_bytes(whisper, [30.0, 30.0])
    with pytest.raises(ValueError, match="cannot estimate"):
        activation_shape(object())


def _check_plan(batches, rows, durations, max_s, budget, estimate):
    seen = [r for b in batches for r in b.rows]
    assert sorted(seen) == sorted(rows) and len(seen) == len(set(seen))  # every row exactly once
    assert seen == sorted(rows, key=lambda r: (-durations[r], r))  # longest first, stable
    for b in batches:
        ds = [durations[r] for r in b.rows]
        assert b.estimated_bytes == estimate(ds)
        if len(b.rows) > 1:
            assert len(ds) * max(ds) <= max_s and b.estimated_bytes <= budget
    return [len(b.rows) for b in batches]


def test_batches_respect_seconds_and_memory_and_a_big_clip_goes_alone():
    rng = np.random.default_rng(0)
    durations = list(rng.uniform(1, 30, 60))
    durations[7] = 60.0
    rows = list(range(60))
    shape = activation_shape(XLSR)

    def estimate(ds):
        return batch_activation_bytes(shape, ds, per_clip_front_end=False)

    budget = 1.2 * 2**30  # the padded front end of about 49 s of audio
    batches = plan_batches(rows, durations, 0, 120.0, None, budget, estimate)
    sizes = _check_plan(batches, rows, durations, 120.0, budget, estimate)
    assert max(sizes) > 1
    by_seconds_only = plan_batches(rows, durations, 0, 120.0, None)
    assert len(batches) > len(by_seconds_only)  # the memory cap bites
    assert all(b.estimated_bytes == 0 for b in by_seconds_only)
    # the 60 s clip alone is over the budget: it still runs, alone
    over = [b for b in batches if b.estimated_bytes > budget]
    assert [b.rows for b in over] == [(7,)]
    # a budget that never binds gives exactly the seconds-only plan
    loose = plan_batches(rows, durations, 0, 120.0, None, 1e15, estimate)
    assert [b.rows for b in loose] == [b.rows for b in by_seconds_only]
    # and the clip count cap still holds with both
    capped = plan_batches(rows, durations, 0, 120.0, 3, budget, estimate)
    assert max(_check_plan(capped, rows, durations, 120.0, budget, estimate)) <= 3


def test_memory_capped_batches_give_the_same_features_in_the_same_order(tmp_path, monkeypatch):
    """A tight budget changes the batches (spied), not the numbers or the order. The
    estimate is replaced by 1 MiB per clip, so the cap is known: the wiring is tested here,
    the estimate above."""
    from featstore.extract import _compute, _pipeline

    model = tiny_model("wavlm", seed=1)
    manifest = write_clips(tmp_path / "wav", 10, seed=4, min_s=0.3, max_s=1.5)
    sizes: list[int] = []
    real_run = _compute.BatchRunner.run

    def spy(self, waves):
        sizes.append(len(waves))
        return real_run(self, waves)

    monkeypatch.setattr(_compute.BatchRunner, "run", spy)
    monkeypatch.setattr(_pipeline, "batch_activation_bytes", lambda shape, ds, **kw: len(ds) * 2**20)
    tight = 3 * 2**20 / 2**30
    outs = {}
    for name, gb in (("loose", 100.0), ("tight", tight), ("alone", 1e-6)):
        sizes.clear()
        cfg = ExtractConfig(model="tiny", corpus="toy", out=tmp_path / f"{name}.h5", device="cpu", batch_size=8,
                            max_batch_memory_gb=gb, dtype="float32", frames=True, progress=False)
        report = run_extraction(cfg, model=model, manifest=manifest)
        outs[name] = (report, list(sizes))
    assert max(outs["loose"][1]) > 3 and max(outs["tight"][1]) == 3 and max(outs["alone"][1]) == 1
    assert outs["loose"][0].notes == [] and outs["tight"][0].notes == []
    notes = outs["alone"][0].notes
    assert len(notes) == 6 and "1.0 MiB" not in notes[0] and "runs alone" in notes[0]
    assert "and 5 more clip(s)" in notes[-1]
    with open_cache(tmp_path / "loose.h5") as ref:
        ids, mean = ref.utt_ids, ref.pooled_all()
        frames = ref.frames(ids[3])
        assert ids == manifest["utt_id"].to_list()
        for name, gb in (("tight", tight), ("alone", 1e-6)):
            with open_cache(tmp_path / f"{name}.h5") as other:
                assert other.utt_ids == ids
                np.testing.assert_allclose(other.pooled_all(), mean, atol=1e-4)
                np.testing.assert_allclose(other.frames(ids[3]), frames, atol=1e-4)
                assert other.provenance["max_batch_memory_gb"] == gb


def test_budget_option_is_checked():
    with pytest.raises(ValueError, match="max_batch_memory_gb"):
        ExtractConfig(model="m", corpus="c", max_batch_memory_gb=0)
    res = CliRunner().invoke(featstore_app, ["extract", "--model", "m", "--corpus", "c", "--max-batch-memory-gb", "-1"])
    assert res.exit_code == 2


MEASURE = r"""
import json, numpy as np, torch
from pathlib import Path
from transformers import Wav2Vec2Config, Wav2Vec2Model, WavLMConfig, WavLMModel
from featstore.extract._compute import BatchRunner, limit_heap_fragmentation
from featstore.extract._memory import activation_shape, batch_activation_bytes
def rss(key):
    return next(int(x.split()[1]) * 1024 for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key))
limit_heap_fragmentation()
torch.manual_seed(0)
out = []
# 8 s through a 512-channel front end (the largest phase); 10 s of WavLM, 32 heads (eager attention, T^2)
for seconds, channels, heads, model, config in ((8.0, 512, 1, Wav2Vec2Model, Wav2Vec2Config),
                                                (10.0, 64, 32, WavLMModel, WavLMConfig)):
    enc = model(config(hidden_size=64, num_hidden_layers=2, num_attention_heads=heads,
                       intermediate_size=128, conv_dim=(channels,) * 7, feat_extract_norm="layer",
                       do_stable_layer_norm=True, conv_bias=True)).eval()
    runner = BatchRunner(enc, True, torch.device("cpu"), "float16", None, 10**9)
    runner.run([np.ones(16000, np.float32)])
    wave = np.random.default_rng(0).standard_normal(int(seconds * 16000)).astype(np.float32)
    base = rss("VmRSS:")
    Path("/proc/self/clear_refs").write_text("5")
    runner.run([wave])
    out.append({"seconds": seconds, "measured": rss("VmHWM:") - base,
                "estimate": batch_activation_bytes(activation_shape(enc.config), [seconds])})
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak RSS")
def test_estimate_bounds_the_measured_peak():
    """The planner's estimate is above the real peak resident-set growth of a forward
    pass, and not far above, when the front end is the largest phase and when attention
    is (measured in a fresh process; /proc VmHWM reset before each pass)."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True,
                          cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for got in json.loads(proc.stdout.strip().splitlines()[-1]):
        assert got["measured"] <= got["estimate"] <= 2.0 * got["measured"], got


def test_cache_size_formula_matches_a_written_cache(tmp_path):
    model = tiny_model("wav2vec2")
    manifest = write_clips(tmp_path / "wav", 6, seed=2, min_s=2.0, max_s=3.0)
    cfg = ExtractConfig(model="tiny", corpus="toy", out=tmp_path / "f.h5", device="cpu", frames=True,
                        frame_layers=(0, 2), progress=False)
    run_extraction(cfg, model=model, manifest=manifest)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        frames_bytes = f["frames/data"].id.get_storage_size()
        pooled = f["pooled/mean"].id.get_storage_size() + f["pooled/std"].id.get_storage_size()
        n_frames = int(f["num_frames"][:].sum())
    width, layers = 32, 2
    assert pooled == 6 * pooled_bytes_per_utt(layers, width)
    # 50 frames per second of audio (49.9 for wav2vec 2.0's convolutions), chunked by 512 frames
    per_frame = frame_bytes_per_hour(width, 2) / (50 * 3600)
    assert per_frame == 2 * width * 2 and frames_bytes >= n_frames * per_frame
    assert n_frames == pytest.approx(50 * float(manifest["duration"].sum()), rel=0.02)
    sizes = cache_bytes_per_hour(24, 1024, frame_layers=[0, 12, 24], clip_s=3.0)
    assert sizes["frames"] == 3 * 1024 * 2 * 50 * 3600 and sizes["pooled"] == 2 * 25 * 1024 * 2 * 1200
    assert cache_bytes_per_hour(12, 768)["frames"] == 0
    assert cache_bytes_per_hour(12, 768, frames=True)["frames"] == pytest.approx(3.594e9, rel=1e-3)  # 1 MB/s
    with pytest.raises(ValueError, match="out of range"):
        cache_bytes_per_hour(12, 768, frame_layers=[13])


def test_cache_size_command():
    res = CliRunner().invoke(featstore_app, ["cache-size"])
    assert res.exit_code == 0, res.output
    assert "XLS-R 300M" in res.output and "9.22 GB/h" in res.output and "Whisper" in res.output
    res = CliRunner().invoke(featstore_app, ["cache-size", "--layers", "24", "--width", "1024", "--frame-layers",
                                             "0,12,24", "--dtype", "float32"])
    assert res.exit_code == 0 and "frames    2.21 GB/h" in res.output, res.output
    assert CliRunner().invoke(featstore_app, ["cache-size", "--layers", "24"]).exit_code == 2
    res = CliRunner().invoke(featstore_app, ["cache-size", "--model", "nope"])
    assert res.exit_code == 2 and "unknown model 'nope'" in res.output
    res = CliRunner().invoke(featstore_app, ["cache-size", "--model", "facebook/wav2vec2-base-960h"])
    assert res.exit_code == 2 and "give 'w2v2-en'" in res.output, res.output
    # a bad --dtype: one line naming the value and the allowed ones, not prefixed by a family list
    res = CliRunner().invoke(featstore_app, ["cache-size", "--dtype", "bfloat16"])
    error = [line for line in res.output.splitlines() if "bfloat16" in line]
    assert res.exit_code == 2 and len(error) == 1, res.output
    assert "--dtype" in error[0] and "float16, float32" in error[0] and "wav2vec" not in error[0], res.output


def test_extraction_on_cpu_offers_the_heap_back_after_every_batch(tmp_path, monkeypatch):
    """The trimmer (featstore.malloc.HeapTrimmer) is asked after each batch, from one
    instance per extraction; what it does is tested in test_malloc.py."""
    from featstore.extract import _compute, _pipeline

    batches: list[int] = []
    asked: list[int] = []
    real_run = _compute.BatchRunner.run

    def spy(self, waves):
        batches.append(len(waves))
        return real_run(self, waves)

    class Counting:
        def __call__(self) -> bool:
            asked.append(id(self))
            return False

    monkeypatch.setattr(_compute.BatchRunner, "run", spy)
    monkeypatch.setattr(_pipeline, "HeapTrimmer", Counting)
    manifest = write_clips(tmp_path / "wav", 9, seed=2, min_s=0.3, max_s=1.2)
    cfg = ExtractConfig(model="tiny", corpus="toy", out=tmp_path / "c.h5", device="cpu", batch_size=2,
                        dtype="float32", progress=False)
    run_extraction(cfg, model=tiny_model("wav2vec2"), manifest=manifest)
    assert len(batches) >= 5 and len(asked) == len(batches) and len(set(asked)) == 1
