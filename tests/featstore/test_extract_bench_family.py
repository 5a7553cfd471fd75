"""``featstore bench --family F``: every family's random model, the XLS-R memory targets,
and a family extraction cannot run yet reported as such."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli import featstore_app
from featstore.commands.extract import BENCH_FAMILY_NAMES
from featstore.extract import bench
from featstore.extract._bench_models import BENCH_FAMILIES, FAMILY_LABELS, build_family
from featstore.extract.bench import BenchConfig, format_bench, run_bench, synth_clips


def test_every_family_builds_tiny_and_the_command_knows_them():
    assert BENCH_FAMILY_NAMES == BENCH_FAMILIES
    types = {}
    for family in BENCH_FAMILIES:
        config, encoder = build_family(family, "tiny", seed=0)
        layers = getattr(config, "num_hidden_layers", None) or config.encoder_layers
        width = getattr(config, "hidden_size", None) or config.d_model
        assert (layers, width) == (2, 32) and not encoder.training, family
        types[family] = config.model_type
    assert types == {"wav2vec2": "wav2vec2", "wavlm": "wavlm", "hubert": "hubert", "data2vec-audio": "data2vec-audio",
                     "whisper": "whisper", "xlsr": "wav2vec2"}
    xlsr, _ = build_family("xlsr", "tiny", seed=0)
    assert xlsr.do_stable_layer_norm and xlsr.feat_extract_norm == "layer"
    # the seed alone decides the weights, and the global RNG is left alone
    state = torch.random.get_rng_state()
    a = next(build_family("hubert", "tiny", seed=3)[1].parameters())
    b = next(build_family("hubert", "tiny", seed=3)[1].parameters())
    assert torch.equal(a, b) and torch.equal(state, torch.random.get_rng_state())


def test_clips_over_a_chosen_range(tmp_path):
    man = synth_clips(tmp_path, 40, seed=1, clip_seconds=(1.0, 20.0))
    d = np.array(man["duration"].to_list())
    assert d.min() >= 1.0 and d.max() <= 20.0 and d.max() > 10.0 and np.median(d) < 8.0


@pytest.mark.parametrize("family", BENCH_FAMILIES)
def test_family_bench_runs_at_tiny_size(family):
    # whisper: the bench's random model is the encoder with its log-mel front end, as loading makes it
    result = run_bench(BenchConfig(n_utts=2, model_size="tiny", device="cpu", progress=False, memory=False,
                                   family=family, naive=False))
    assert result["supported"], result.get("reason")
    assert result["family"] == family and result["naive_s"] is None
    assert result["ours_over_forward"] == pytest.approx(result["ours_s"] / result["forward_s"])
    assert list(result["targets"]) == ["(b)/(a) <= 1.15"]
    assert result["cpu_s"]["ours"] > 0 and result["cpu_s"]["forward"] > 0
    text = format_bench(result)
    assert f"{FAMILY_LABELS[family]} tiny (3 states x 32" in text and "(c) not run: --no-naive given" in text and "CPU time of the process" in text and "targets (judged at --model-size base only; tiny is a quick check that it runs): (b)/(a) <= 1.15: not judged" in text


def test_whisper_says_why_the_paper_loop_is_not_run():
    """(c) is never run for Whisper, even without --no-naive; the line says why."""
    result = run_bench(BenchConfig(n_utts=1, model_size="tiny", device="cpu", progress=False, memory=False,
                                   family="whisper"))
    assert result["naive_s"] is None and "log-mel" in result["naive_not_run"]
    line = next(x for x in format_bench(result).splitlines() if "(c) not run" in x)
    assert line.endswith("(c) not run: " + result["naive_not_run"])


def test_a_family_extraction_cannot_run_is_reported_not_measured(monkeypatch):
    def refuse(*args, **kwargs):
        raise AttributeError("'WhisperEncoder' object has no attribute 'feature_extractor'")

    monkeypatch.setattr(bench, "run_extraction", refuse)
    result = run_bench(BenchConfig(n_utts=1, model_size="tiny", device="cpu", progress=False, memory=False,
                                   family="whisper"))
    assert result["supported"] is False and "feature_extractor" in result["reason"]
    assert format_bench(result).startswith("featstore bench --family whisper: Whisper encoder not supported until "
                                           "the family lands")


def test_xlsr_memory_targets():
    gib = 2**30
    small = {"n_utts": 50, "peak_rss_bytes": 5 * gib}
    ok = bench._targets(torch.device("cpu"), "xlsr", 1.02, None, 3.0,
                        {"n": small, "4n": {"n_utts": 200}, "growth": 0.12, "measure": "peak_rss_bytes"})
    assert ok == {"(b)/(a) <= 1.15": True, "memory growth N->4N < 15%": True, "peak RSS (50 clips) < 8 GiB": True}
    bad = bench._targets(torch.device("cpu"), "xlsr", 1.2, None, 3.0,
                         {"n": {**small, "peak_rss_bytes": 9 * gib}, "4n": {}, "growth": 0.2,
                          "measure": "peak_rss_bytes"})
    assert not any(bad.values())
    base = bench._targets(torch.device("cpu"), "wav2vec2", 1.0, 1.1, 15.0,
                          {"n": small, "4n": {}, "growth": 0.12, "measure": "peak_rss_bytes"})
    assert base == {"(b)/(a) <= 1.15": True, "(b) not slower than (c)": True, "memory growth N->4N < 10%": False}


@pytest.mark.parametrize("args", [["--family", "hubrt"], ["--clip-seconds", "5-1"], ["--clip-seconds", "x"]])
def test_bench_bad_options_are_usage_errors(args):
    res = CliRunner().invoke(featstore_app, ["bench", "--model-size", "tiny", "--device", "cpu", *args])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
