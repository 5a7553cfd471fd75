"""``featstore bench`` at a tiny size: it runs, its figures hang together, and our cache
agrees with the paper code's loop."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from cli import featstore_app
from featstore.extract.bench import BenchConfig, format_bench, run_bench, synth_clips


def test_synthetic_clips_have_a_realistic_spread(tmp_path):
    man = synth_clips(tmp_path, 40, seed=3)
    d = np.array(man["duration"].to_list())
    assert d.min() >= 1.0 and d.max() <= 8.0 and d.std() > 0.5
    wave, rate = sf.read(man["path"][0])
    assert rate == 22050 and abs(len(wave) / rate - d[0]) < 1e-3


@pytest.mark.slow
def test_bench_tiny_runs_and_agrees_with_the_paper_loop():
    result = run_bench(BenchConfig(n_utts=4, model_size="tiny", device="cpu", progress=False, frames=True))
    assert result["n_utts"] == 4 and result["n_hidden_states"] == 3
    for key in ("forward_s", "ours_s", "naive_s"):
        assert result[key] > 0
    assert result["ours_over_forward"] == pytest.approx(result["ours_s"] / result["forward_s"])
    # our float16 layer means against the paper code's float32 ones, clip by clip
    assert result["max_abs_diff_ours_vs_naive_layer_means"] < 0.02
    assert result["frames"]["measured"] and result["frames"]["bytes_per_utt"] > result["bytes_per_utt_pooled"]
    mem = result["memory"]
    assert mem["4n"]["n_utts"] == 16 and mem["n"]["peak_rss_bytes"] > 0
    assert result["study"]["paper_forward_passes_per_utt_per_model"] == 3 * 5
    text = format_bench(result)
    assert "(a) forward alone" in text and "(d) peak memory" in text and "study:" in text


def test_bench_command_json():
    res = CliRunner().invoke(featstore_app, ["bench", "--n-utts", "2", "--model-size", "tiny", "--device", "cpu",
                                             "--json", "--no-memory"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["memory"] is None and data["n_utts"] == 2
    assert CliRunner().invoke(featstore_app, ["bench", "--model-size", "huge"]).exit_code == 2


def test_bench_with_an_absent_device_is_a_usage_error():
    res = CliRunner().invoke(featstore_app, ["bench", "--device", "cuda:99", "--model-size", "tiny"])
    assert res.exit_code == 2 and "Traceback" not in res.output and "cuda:99" in res.output, res.output
