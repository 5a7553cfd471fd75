"""Extraction: exact batching for both model families, pooling, bad audio, mismatches,
long clips, sharding + merge, and the commands."""

from __future__ import annotations

import h5py
import numpy as np
import polars as pl
import pytest
import torch
from extract_testkit import tiny_model, write_clips
from typer.testing import CliRunner

from cli import featstore_app
from featstore.audio import load_row, save_bad_files
from featstore.cache import open_cache, verify_cache
from featstore.extract import ExtractConfig, ExtractError, extract, parse_shard, run_extraction, shard_bounds
from featstore.manifest import save_manifest
from featstore.paths import manifest_path


def _cfg(tmp_path, **kw):
    base = dict(model="tiny", corpus="toy", cache_root=tmp_path / "cache", progress=False, piece_utts=5)
    return ExtractConfig(**{**base, **kw})


@pytest.mark.parametrize("family", ["wav2vec2", "wavlm"])
def test_batched_equals_one_clip_at_a_time(tmp_path, family):
    man = write_clips(tmp_path / "wav", 12, seed=1)
    model = tiny_model(family)
    batched = run_extraction(_cfg(tmp_path, dtype="float32", frames=True, out=tmp_path / "b.h5"), model, man)
    single = run_extraction(_cfg(tmp_path, dtype="float32", frames=True, batch_size=1, out=tmp_path / "s.h5"),
                            model, man)
    with open_cache(batched.path) as b, open_cache(single.path) as s:
        assert b.utt_ids == s.utt_ids == man["utt_id"].to_list()
        assert np.abs(b.pooled_all() - s.pooled_all()).max() <= 1e-3
        assert np.abs(b.pooled_all(stat="std") - s.pooled_all(stat="std")).max() <= 1e-3
        for u in b.utt_ids:
            assert np.abs(b.frames(u) - s.frames(u)).max() <= 1e-3
        # pooled statistics are the mean / population std of the stored frames
        for u, mean, std in zip(b.utt_ids, b.pooled_all().transpose(1, 0, 2), b.pooled_all(stat="std").transpose(1, 0, 2),
                                strict=True):
            fr = b.frames(u)
            np.testing.assert_allclose(mean, fr.mean(axis=1), atol=1e-5)
            np.testing.assert_allclose(std, fr.std(axis=1), atol=1e-4)


def test_matches_transformers_forward_one_clip(tmp_path):
    """Independent reference: transformers' own forward with output_hidden_states."""
    man = write_clips(tmp_path / "wav", 4, seed=2)
    model = tiny_model("wav2vec2")
    rep = run_extraction(_cfg(tmp_path, dtype="float32"), model, man)
    with open_cache(rep.path) as c, torch.no_grad():
        for i, row in enumerate(man.to_dicts()):
            wave = torch.as_tensor(load_row(row))
            wave = (wave - wave.mean()) / torch.sqrt(wave.var(unbiased=False) + 1e-7)
            ref = model.encoder(wave[None], output_hidden_states=True).hidden_states
            ref_mean = np.stack([h[0].mean(0).numpy() for h in ref])
            np.testing.assert_allclose(c.pooled_all()[:, i], ref_mean, atol=1e-4)
            assert c.num_frames[i] == ref[0].shape[1]


def test_float16_default_bad_audio_and_strict(tmp_path):
    man = write_clips(tmp_path / "wav", 8, bad={2: "garbage", 5: "missing", 6: "silent"})
    model = tiny_model()
    rep = run_extraction(_cfg(tmp_path), model, man)
    assert set(rep.failed) == {"u002", "u005", "u006"}
    assert "missing" in rep.failed["u005"] and "u002.wav" in rep.failed["u002"]
    with open_cache(rep.path) as c:
        assert c.failed() == rep.failed and len(c) == 5
        assert h5py.File(rep.path)["pooled/mean"].dtype == np.float16
    assert verify_cache(rep.path) == []
    with pytest.raises(ExtractError, match="could not be extracted"):
        extract(_cfg(tmp_path, strict=True), model, man)


def test_settings_mismatch_refused_then_overwrite(tmp_path):
    man = write_clips(tmp_path / "wav", 6)
    model = tiny_model()
    first = run_extraction(_cfg(tmp_path), model, man)
    assert run_extraction(_cfg(tmp_path), model, man).status == "up to date"
    with pytest.raises(ExtractError, match="dtype: cache has 'float16', asked for 'float32'"):
        run_extraction(_cfg(tmp_path, dtype="float32"), model, man)
    with pytest.raises(ExtractError, match="model_fingerprint"):
        run_extraction(_cfg(tmp_path), tiny_model(seed=1), man)
    with pytest.raises(ExtractError, match="manifest_fingerprint"):
        run_extraction(_cfg(tmp_path), model, man.slice(0, 5))
    with pytest.raises(ExtractError, match="frames"):
        run_extraction(_cfg(tmp_path, frames=True), model, man)
    # the model's language decides the probes' settings: another one is not served the old cache
    with pytest.raises(ExtractError, match="model_language: cache has 'en', asked for 'de'"):
        run_extraction(_cfg(tmp_path, model_language="de"), model, man)
    rep = run_extraction(_cfg(tmp_path, frames=True, frame_layers=(0, 2), overwrite=True), model, man)
    assert rep.path == first.path and rep.status == "extracted"
    with open_cache(rep.path) as c:
        assert c.frame_layers == [0, 2] and c.frames("u001").shape[0] == 2


def test_long_clips_run_in_chunks(tmp_path):
    man = write_clips(tmp_path / "wav", 3, seed=4, min_s=2.5, max_s=3.0)
    model = tiny_model()
    rep = run_extraction(_cfg(tmp_path, dtype="float32", frames=True, max_clip_seconds=1.0), model, man)
    with open_cache(rep.path) as c:
        for u, n in zip(c.utt_ids, c.num_frames, strict=True):
            fr = c.frames(u)
            assert fr.shape[1] == n and n > 100  # all the audio, not a capped first second
            np.testing.assert_allclose(c.pooled(1, [u])[0], fr[1].mean(axis=0), atol=1e-5)
            np.testing.assert_allclose(c.pooled(1, [u], stat="std")[0], fr[1].std(axis=0), atol=1e-4)


def test_shard_bounds_balance_duration():
    d = [1.0, 8.0, 2.0, 2.0, 3.0, 1.0, 7.0, 4.0, 4.0, 1.0]
    bounds = shard_bounds(d, 3)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(d)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    totals = [sum(d[lo:hi]) for lo, hi in bounds]
    assert max(totals) - min(totals) <= max(d)
    assert parse_shard("2/4") == (2, 4)
    assert parse_shard("auto", {"RANK": "1", "WORLD_SIZE": "3"}) == (1, 3)
    assert parse_shard("auto", {}) == (0, 1)
    with pytest.raises(ValueError):
        parse_shard("4/4")


def test_shards_then_merge_equal_unsharded(tmp_path):
    man = write_clips(tmp_path / "wav", 11, seed=5, bad={4: "garbage"})
    model = tiny_model()
    whole = run_extraction(_cfg(tmp_path, frames=True), model, man).path
    shard_paths = [run_extraction(_cfg(tmp_path, frames=True, shard=(k, 3)), model, man).path for k in range(3)]
    assert [p.name for p in shard_paths] == [f"toy.shard-{k}-of-3.h5" for k in range(3)]
    with open_cache(shard_paths) as s, open_cache(whole) as w:
        assert s.utt_ids == w.utt_ids and s.failed() == w.failed()
    result = CliRunner().invoke(featstore_app, ["merge", *map(str, shard_paths), "--out", str(tmp_path / "m.h5")])
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "m.h5") as m, h5py.File(whole) as w:
        for name in ("utt_ids", "num_frames", "pooled/mean", "pooled/std", "frames/data", "frames/offsets",
                     "failed/utt_ids", "failed/reasons", "manifest_json"):
            np.testing.assert_array_equal(m[name][()], w[name][()], err_msg=name)


def test_commands_end_to_end(tmp_path):
    from featstore.models.testing import save_tiny_model

    root = tmp_path / "cache"
    model_dir = save_tiny_model(tmp_path / "models" / "mini", "wav2vec2", "pretraining", language="en")
    man = write_clips(tmp_path / "wav", 7, bad={3: "garbage"})
    save_manifest(man, manifest_path("toy", root))
    save_bad_files(pl.DataFrame({"utt_id": ["u001"], "path": ["x"], "reason": ["clipping only"]}),
                   manifest_path("toy", root))
    run = CliRunner()
    args = ["extract", "--model", str(model_dir), "--corpus", "toy", "--cache-root", str(root), "--piece-utts", "3"]
    res = run.invoke(featstore_app, args)
    assert res.exit_code == 0, res.output
    assert "u003" in res.output and "u001" in res.output  # failures listed at the end
    res = run.invoke(featstore_app, [*args, "--strict"])
    assert res.exit_code == 1 and "nothing to do" in res.output
    res = run.invoke(featstore_app, [*args, "--dtype", "float32"])
    assert res.exit_code == 2 and "refusing" in res.output and "Traceback" not in res.output
    path = root / "mini" / "toy.h5"
    res = run.invoke(featstore_app, ["info", str(path), "--json"])
    assert res.exit_code == 0
    import json

    info = json.loads(res.output)
    assert info["n_utts"] == 5 and info["n_failed"] == 2 and info["model"] == "mini"
    assert run.invoke(featstore_app, ["verify", str(path)]).exit_code == 0
    res = run.invoke(featstore_app, ["ls", "--cache-root", str(root)])
    assert res.exit_code == 0 and "toy" in res.output
    with h5py.File(path, "r+") as f:
        f["pooled/std"][0, 0, 0] = np.nan
    assert run.invoke(featstore_app, ["verify", str(path)]).exit_code == 1
    res = run.invoke(featstore_app, ["extract", "--model", str(tmp_path / "nowhere"), "--corpus", "toy",
                                     "--cache-root", str(root)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    res = run.invoke(featstore_app, ["extract", "--model", str(model_dir), "--corpus", "absent", "--cache-root", str(root)])
    assert res.exit_code == 2 and "prepare" in res.output


@pytest.mark.parametrize("family", ["wav2vec2", "wavlm"])
def test_cpu_and_gpu_forward_strategies_agree(family):
    """The CPU strategy (front end clip by clip) and the CUDA one (batched masked front end,
    ``forward.hidden_states``) give the same features; both run here on the CPU."""
    from featstore.extract._compute import BatchRunner

    model = tiny_model(family)
    rng = np.random.default_rng(3)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (9000, 4000, 16000, 640)]
    per_clip = BatchRunner(model.encoder, True, torch.device("cpu"), "float32", [0, 2], 10**9)
    batched = BatchRunner(model.encoder, True, torch.device("cpu"), "float32", [0, 2], 10**9)
    batched.per_clip_front_end = False
    for a, b in zip(per_clip.run(waves), batched.run(waves), strict=True):
        assert a.n_frames == b.n_frames
        assert np.abs(a.mean - b.mean).max() <= 1e-4 and np.abs(a.std - b.std).max() <= 1e-4
        assert np.abs(a.frames - b.frames).max() <= 1e-4


def test_default_piece_size_and_shards_of_whole_pieces():
    from featstore.extract._pipeline import shard_rows
    from featstore.extract._plan import auto_piece_utts
    from featstore.manifest import make_manifest

    assert auto_piece_utts(10) == 8 and auto_piece_utts(2000) == 32 and auto_piece_utts(100_000) == 128
    man = make_manifest([{"utt_id": f"u{i:03d}", "corpus": "c", "language": "en", "speaker": "s", "emotion": "sad",
                          "label": "s", "path": "/x", "duration": 1.0 + (i % 7), "sample_rate": 16000}
                         for i in range(100)])
    got = [shard_rows(man, (k, 4), 8)["utt_id"].to_list() for k in range(4)]
    assert sum(got, []) == man["utt_id"].to_list()  # contiguous, complete, in order
    assert all(len(g) % 8 == 0 for g in got[:-1]) and all(g for g in got)


def test_frames_written_in_blocks_equal_frames_written_at_once(tmp_path, monkeypatch):
    import featstore.extract._writer as writer

    man = write_clips(tmp_path / "wav", 9, seed=8)
    model = tiny_model("wavlm")
    once = run_extraction(_cfg(tmp_path, frames=True, out=tmp_path / "once.h5"), model, man).path
    monkeypatch.setattr(writer, "_FLUSH_FRAMES", 40)  # a flush after every clip or two
    blocks = run_extraction(_cfg(tmp_path, frames=True, out=tmp_path / "blocks.h5"), model, man).path
    with h5py.File(once) as a, h5py.File(blocks) as b:
        for name in ("frames/data", "frames/offsets", "pooled/mean", "utt_ids"):
            np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)
    assert verify_cache(blocks) == []


def test_bad_files_table_of_prepare_is_used_only_for_its_manifest(tmp_path):
    from featstore.manifest import manifest_fingerprint

    root = tmp_path / "cache"
    man = write_clips(tmp_path / "wav", 4)
    save_manifest(man, manifest_path("toy", root))
    bad = pl.DataFrame({"utt_id": ["u002"], "path": ["x"], "reason": ["clipping only"]})
    save_bad_files(bad, manifest_path("toy", root), manifest_fingerprint(man))
    rep = run_extraction(_cfg(tmp_path, out=tmp_path / "a.h5"), tiny_model())
    assert list(rep.failed) == ["u002"] and "clipping only" in rep.failed["u002"] and not rep.notes
    save_bad_files(bad, manifest_path("toy", root), "0123456789abcdef")  # made for another manifest
    rep = run_extraction(_cfg(tmp_path, out=tmp_path / "b.h5"), tiny_model())
    assert rep.failed == {} and "another version" in rep.notes[0]


def test_unknown_or_absent_device_is_a_clear_error(tmp_path):
    from featstore.configs import ConfigError

    man = write_clips(tmp_path / "wav", 2)
    with pytest.raises(ConfigError, match=r"device: 'gpu' is not a device name"):  # refused when the config is made
        _cfg(tmp_path, device="gpu")
    with pytest.raises(ExtractError, match="device 'cuda:99'"):  # a device this machine lacks: refused at the run
        run_extraction(_cfg(tmp_path, device="cuda:99"), tiny_model(), man)


def test_write_errors_are_clear_messages(tmp_path, monkeypatch):
    import featstore.extract._pipeline as pipeline
    import featstore.extract._writer as writer
    from featstore.models.testing import save_tiny_model

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", "somewhere.h5.tmp")

    root = tmp_path / "cache"
    model_dir = save_tiny_model(tmp_path / "models" / "mini", "wav2vec2", "pretraining", language="en")
    save_manifest(write_clips(tmp_path / "wav", 3), manifest_path("toy", root))
    args = ["extract", "--model", str(model_dir), "--corpus", "toy", "--cache-root", str(root)]
    monkeypatch.setattr(writer, "commit", disk_full)  # the writer thread fails
    res = CliRunner().invoke(featstore_app, args)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    text = "".join(res.output.split())  # the console wraps long lines
    assert "toy.h5.parts:thecachewriterfailed" in text and "Nospaceleft" in text
    monkeypatch.undo()
    monkeypatch.setattr(pipeline, "merge_files", disk_full)  # the final merge fails
    res = CliRunner().invoke(featstore_app, args)
    assert res.exit_code == 2 and "Traceback" not in res.output and "somewhere.h5.tmp" in res.output, res.output


def test_parts_left_next_to_a_finished_cache_are_removed(tmp_path, monkeypatch):
    import featstore.extract._pipeline as pipeline

    man = write_clips(tmp_path / "wav", 6)
    model = tiny_model()
    monkeypatch.setattr(pipeline.shutil, "rmtree", lambda *a, **k: None)  # killed before the clean-up
    path = run_extraction(_cfg(tmp_path), model, man).path
    parts = path.with_name(path.name + ".parts")
    assert parts.is_dir()
    monkeypatch.undo()
    assert run_extraction(_cfg(tmp_path), model, man).status == "up to date"
    assert not parts.exists()


def test_speechbrain_model_gets_its_own_input_normalisation(tmp_path):
    """wavlm-emo's SpeechBrain pipeline removes each clip's mean before the WavLM; the cache
    holds what the model computes on that input, not on the raw waveform."""
    import soundfile as sf

    from featstore.models import load_model
    from featstore.models.testing import save_tiny_model

    loaded = load_model(str(save_tiny_model(tmp_path / "models" / "wavlm-emo", "wavlm", "speechbrain", seed=4)))
    assert not loaded.do_normalize
    man = write_clips(tmp_path / "wav", 3, seed=9, min_s=0.5, max_s=0.8)
    for path in man["path"]:  # a DC offset, which the model's input_norm takes away
        wave, rate = sf.read(path, dtype="float32")
        sf.write(path, wave * 0.5 + 0.3, rate)
    rep = run_extraction(_cfg(tmp_path, dtype="float32"), loaded, man)
    with open_cache(rep.path) as c, torch.no_grad():
        assert "mean removal" in c.provenance["normalisation"]
        for i, row in enumerate(man.to_dicts()):
            wave = torch.as_tensor(load_row(row))
            ref = loaded.encoder((wave - wave.mean())[None], output_hidden_states=True).hidden_states
            np.testing.assert_allclose(c.pooled(1)[i], ref[1][0].mean(0).numpy(), atol=1e-4)
            raw = loaded.encoder(wave[None], output_hidden_states=True).hidden_states
            assert np.abs(c.pooled(1)[i] - raw[1][0].mean(0).numpy()).max() > 1e-2


def test_model_of_another_sample_rate_is_refused(tmp_path):
    model = tiny_model()
    model.sample_rate_hz = 8000
    with pytest.raises(ExtractError, match="8000 Hz"):
        run_extraction(_cfg(tmp_path), model, write_clips(tmp_path / "wav", 2))
