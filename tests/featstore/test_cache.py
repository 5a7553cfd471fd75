"""The HDF5 cache: write/read round trip, shards as one cache, merge, verify, locking."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from featstore.cache import (
    CacheError,
    CacheLockedError,
    WriterLock,
    cache_info,
    list_caches,
    merge_caches,
    open_cache,
    verify_cache,
    write_cache,
)
from featstore.manifest import make_manifest

S, D = 4, 8


def _manifest(ids):
    return make_manifest([{"utt_id": u, "corpus": "toy", "language": "en", "speaker": "s", "emotion": "sad",
                           "label": "s", "path": f"/x/{u}.wav", "duration": 1.0 + i, "sample_rate": 16000}
                          for i, u in enumerate(ids)])


def _data(n, seed=0, frames=True):
    rng = np.random.default_rng(seed)
    counts = rng.integers(3, 40, size=n)
    fr = [rng.standard_normal((S, t, D)).astype(np.float32) for t in counts]
    mean = np.stack([f.mean(axis=1) for f in fr], axis=1)
    std = np.stack([f.std(axis=1) for f in fr], axis=1)
    return mean, std, (fr if frames else None)


PROV = {"model_alias": "m", "model_fingerprint": "abc", "manifest_fingerprint": "def", "corpus": "toy"}


def test_round_trip_pooled_frames_manifest_failed(tmp_path):
    ids = [f"u{i}" for i in range(7)]
    mean, std, frames = _data(6)
    path = write_cache(tmp_path / "c.h5", ids[:6], mean, std, PROV, _manifest(ids), frames=frames,
                       failed={"u6": "bad file"}, dtype="float32")
    with open_cache(path) as c:
        assert c.utt_ids == ids[:6] and len(c) == 6
        assert c.n_hidden_states == S and c.dim == D and c.has_frames
        np.testing.assert_array_equal(c.pooled(2), mean[2])
        np.testing.assert_array_equal(c.pooled(1, ["u4", "u0"], stat="std"), std[1][[4, 0]])
        np.testing.assert_array_equal(c.pooled_all(["u3", "u1"]), mean[:, [3, 1]])
        np.testing.assert_array_equal(c.frames("u2"), frames[2])
        np.testing.assert_array_equal(c.frames("u2", layers=[3, 0]), frames[2][[3, 0]])
        assert c.num_frames.tolist() == [f.shape[1] for f in frames]
        assert c.failed() == {"u6": "bad file"}
        assert c.manifest()["utt_id"].to_list() == ids[:6]
        assert c.manifest(include_failed=True)["utt_id"].to_list() == ids
        assert c.manifest()["duration"].to_list() == [1.0 + i for i in range(6)]
        assert c.provenance["model_alias"] == "m" and len(c.fingerprint) == 16
        with pytest.raises(KeyError):
            c.pooled(0, ["nope"])
        with pytest.raises(KeyError):
            c.frames("u6")
    assert verify_cache(path) == []


def test_float16_default_and_readable_with_h5py_alone(tmp_path):
    ids = ["a", "b"]
    mean, std, frames = _data(2, seed=1)
    path = write_cache(tmp_path / "c.h5", ids, mean, std, PROV, _manifest(ids), frames=frames, frame_layers=None)
    with h5py.File(path, "r") as f:  # the documented layout, without our reader
        assert f["pooled/mean"].dtype == np.float16 and f["pooled/mean"].shape == (S, 2, D)
        off = f["frames/offsets"][:]
        b = f["frames/data"][:, off[1]:off[2]]
        assert b.shape == frames[1].shape and f["frames/data"].chunks == (1, 512, D)
        assert np.abs(b - frames[1]).max() < 1e-2
        assert [r["utt_id"] for r in json.loads(f["manifest_json"].asstr()[()])] == ids
        assert json.loads(f.attrs["provenance"])["dtype"] == "float16"
    with open_cache(path) as c:
        assert c.pooled(0).dtype == np.float32


def _shards(tmp_path, frames=True):
    ids = [f"u{i}" for i in range(9)]
    mean, std, fr = _data(9, seed=2, frames=frames)
    man = _manifest(ids)
    whole = write_cache(tmp_path / "whole.h5", ids, mean, std, {**PROV, "shard": [0, 1]}, man, frames=fr)
    cuts = [(0, 4), (4, 6), (6, 9)]
    paths = []
    for k, (lo, hi) in enumerate(cuts):
        paths.append(write_cache(tmp_path / f"toy.shard-{k}-of-3.h5", ids[lo:hi], mean[:, lo:hi], std[:, lo:hi],
                                 {**PROV, "shard": [k, 3]}, man.slice(lo, hi - lo),
                                 frames=fr[lo:hi] if fr else None))
    return whole, paths, ids


def test_shards_read_as_one_and_merge_equals_whole(tmp_path):
    whole, paths, ids = _shards(tmp_path)
    with open_cache(str(tmp_path / "toy.shard-*-of-3.h5")) as c, open_cache(whole) as w:
        assert c.utt_ids == ids and c.fingerprint == w.fingerprint
        np.testing.assert_array_equal(c.pooled_all(), w.pooled_all())
        np.testing.assert_array_equal(c.frames("u7"), w.frames("u7"))
        assert c.manifest()["utt_id"].to_list() == ids
    merged = merge_caches([paths[2], paths[0], paths[1]], tmp_path / "merged.h5")
    assert verify_cache(merged) == []
    with h5py.File(merged, "r") as m, h5py.File(whole, "r") as w:
        for name in ("utt_ids", "num_frames", "pooled/mean", "pooled/std", "frames/data", "frames/offsets",
                     "frames/layers", "manifest_json"):
            np.testing.assert_array_equal(m[name][()], w[name][()], err_msg=name)
        assert m.attrs["fingerprint"] == w.attrs["fingerprint"]
    with pytest.raises(CacheError, match="missing"):
        merge_caches(paths[:2], tmp_path / "partial.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1  # an HDF5 file that is not a cache
    with pytest.raises(CacheError, match="other.h5: cache format version"):
        merge_caches([paths[0], tmp_path / "other.h5"], tmp_path / "bad.h5")
    with pytest.raises(CacheError, match=r"missing \[1\]"):  # a rank that died is not a smaller corpus
        open_cache([paths[0], paths[2]])


def test_files_of_other_extractions_do_not_mix(tmp_path):
    ids = ["a", "b"]
    mean, std, _ = _data(2, frames=False)
    p1 = write_cache(tmp_path / "one.h5", ids, mean, std, PROV, _manifest(ids))
    p2 = write_cache(tmp_path / "two.h5", ["c"], mean[:, :1], std[:, :1], {**PROV, "model_fingerprint": "zzz"},
                     _manifest(["c"]))
    with pytest.raises(CacheError, match="fingerprints differ"):
        open_cache([p1, p2])
    with pytest.raises(CacheError, match="no such cache"):
        open_cache(tmp_path / "missing.h5")


def test_verify_finds_damage(tmp_path):
    ids = [f"u{i}" for i in range(4)]
    mean, std, frames = _data(4, seed=3)
    path = write_cache(tmp_path / "c.h5", ids, mean, std, PROV, _manifest(ids), frames=frames)
    with h5py.File(path, "r+") as f:
        f["pooled/mean"][1, 2, 3] = np.nan
        f["frames/offsets"][2] += 1
        f["frames/data"][0, 0, 0] = np.inf
    problems = " | ".join(verify_cache(path))
    assert "non-finite pooled" in problems and "offsets" in problems and "non-finite frame" in problems
    path2 = write_cache(tmp_path / "d.h5", ids[:3], mean[:, :3], std[:, :3], PROV, _manifest(ids))
    assert any("missing" in p for p in verify_cache(path2))  # u3 neither cached nor failed


def test_writer_lock_refuses_second_writer(tmp_path):
    target = tmp_path / "c.h5"
    with WriterLock(target):
        with pytest.raises(CacheLockedError, match="another extraction"):
            with WriterLock(target):
                pass
    with WriterLock(target):  # released
        pass


def test_info_and_ls(tmp_path):
    whole, paths, ids = _shards(tmp_path)
    info = cache_info(whole)
    assert info["n_utts"] == 9 and info["shapes"]["pooled/mean"] == [S, 9, D] and info["has_frames"]
    with open_cache(whole) as c:
        assert info["total_frames"] == int(c.num_frames.sum())
    rows = list_caches(tmp_path)
    assert {r["path"] for r in rows} == {str(whole), *map(str, paths)}
    (tmp_path / "x.h5.parts").mkdir()
    assert any(r["status"].startswith("unfinished") for r in list_caches(tmp_path))


def test_merge_in_small_runs_equals_whole(tmp_path, monkeypatch):
    import featstore.cache._merge as merge

    whole, paths, ids = _shards(tmp_path)
    monkeypatch.setattr(merge, "_RUN_FRAMES", 30)  # forces many short reads per shard
    out = merge_caches(paths, tmp_path / "m.h5")
    with h5py.File(out) as m, h5py.File(whole) as w:
        np.testing.assert_array_equal(m["frames/data"][()], w["frames/data"][()])
    # an arbitrary output order (as in a part file merge) gathers correctly too
    order = ids[::-1]
    merge.merge_files([whole], tmp_path / "rev.h5", order=order)
    with open_cache(tmp_path / "rev.h5") as r, open_cache(whole) as w:
        assert r.utt_ids == order
        for u in ids:
            np.testing.assert_array_equal(r.frames(u), w.frames(u))
