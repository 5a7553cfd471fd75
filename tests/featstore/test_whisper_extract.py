"""Whisper downstream: featstore.extract over a tiny corpus from a saved tiny Whisper folder,
the cache read back as for the other families, and probes trained on it."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from extract_testkit import write_clips

from featstore import forward
from featstore.audio import load_row
from featstore.cache import open_cache
from featstore.extract import ExtractConfig, extract
from featstore.manifest import save_manifest
from featstore.models import load_model
from featstore.models.whisper import save_tiny_whisper
from featstore.paths import manifest_path


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whisper")
    root = tmp / "cache"
    folder = save_tiny_whisper(tmp / "models" / "tiny-whisper", "conditional", language="mul", seed=4)
    man = write_clips(tmp / "wav", 12, seed=6, min_s=0.3, max_s=1.2)
    save_manifest(man, manifest_path("toy", root))
    common = dict(model=str(folder), corpus="toy", cache_root=root, progress=False, dtype="float32", frames=True)
    batched = extract(ExtractConfig(**common))
    single = extract(ExtractConfig(**common, batch_size=1, out=tmp / "single.h5"))
    return folder, man, batched, single


@pytest.mark.slow
def test_cache_holds_cropped_frames_equal_one_clip_at_a_time(extracted):
    folder, man, batched, single = extracted
    loaded = load_model(folder, language="mul")
    with open_cache(batched) as b, open_cache(single) as s:
        assert b.utt_ids == s.utt_ids == man["utt_id"].to_list()
        assert b.n_hidden_states == 3 and b.dim == 32
        assert b.provenance["model_family"] == "whisper"
        assert np.abs(b.pooled_all() - s.pooled_all()).max() <= 1e-4
        assert np.abs(b.pooled_all(stat="std") - s.pooled_all(stat="std")).max() <= 1e-4
        for i, row in enumerate(man.to_dicts()):
            wave = load_row(row)
            n = -(-len(wave) // 320)
            assert b.num_frames[i] == n  # 50 frames per second, rounded up
            frames = b.frames(row["utt_id"])
            assert frames.shape == (3, n, 32)
            assert np.abs(frames - s.frames(row["utt_id"])).max() <= 1e-4
            ref, _ = forward.hidden_states(loaded.encoder, [torch.as_tensor(wave)])
            np.testing.assert_allclose(frames, ref[:, 0].numpy(), atol=1e-4)
            np.testing.assert_allclose(b.pooled_all()[:, i], frames.mean(axis=1), atol=1e-5)


@pytest.mark.slow
def test_probes_train_on_the_whisper_cache(extracted):
    from probes.config import ProbeConfig
    from probes.data import corpus_from_arrays
    from probes.layerwise import evaluate_heads, train_heads

    _, man, batched, _ = extracted
    ids = man["utt_id"].to_list()
    parts = ["train"] * 8 + ["valid"] * 2 + ["test"] * 2
    folds = pl.DataFrame({"fold": [0] * len(ids), "part": parts, "utt_id": ids})
    with open_cache(batched) as c:
        data = corpus_from_arrays("tiny-whisper", "toy", "en", c.utt_ids, man["emotion"].to_list(),
                                  c.pooled_all(), folds)
    probe = ProbeConfig(head="logreg")
    heads = train_heads(data, [0], probe)
    rows, preds = evaluate_heads(heads, data, data, "mono", probe, "{}")
    assert sorted(r["layer"] for r in rows) == [0, 1, 2]
    assert all(0.0 <= r["ua"] <= 1.0 for r in rows)
    assert preds.height == 3 * 2


def test_extraction_chunks_of_whole_windows_equal_the_whole_clip():
    """Clips above --max-clip-seconds run in chunks; chunks of whole 30 s windows give the
    states of the whole clip (windows concatenated)."""
    from featstore.extract._compute import BatchRunner
    from featstore.models.whisper import tiny_whisper_encoder

    enc = tiny_whisper_encoder(seed=1)
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (496_000, 12_000)]
    runner = BatchRunner(enc, False, torch.device("cpu"), "float32", [0, 2], 480_000)
    long, short = runner.run(waves)
    assert (long.n_frames, short.n_frames) == (1550, 38)
    whole, _ = forward.hidden_states(enc, [torch.as_tensor(waves[0])])
    np.testing.assert_allclose(long.frames, whole[[0, 2], 0].numpy(), atol=1e-4)
    np.testing.assert_allclose(long.mean, whole[:, 0].mean(1).numpy(), atol=1e-4)
