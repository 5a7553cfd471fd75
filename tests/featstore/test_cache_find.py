"""find_cache / open_model_cache: the one rule for where a model's cache of a corpus is
(the merged file, else a complete shard set), with errors that say what was searched."""

from __future__ import annotations

import numpy as np
import pytest

from featstore.cache import (
    CacheError,
    CacheNotFoundError,
    cache_location,
    find_cache,
    open_model_cache,
    write_cache,
)
from featstore.errors import CrosslingError, UnsafeIdError
from featstore.manifest import make_manifest
from featstore.paths import features_path

S, D = 3, 4
PROV = {"model_alias": "m", "model_fingerprint": "abc", "manifest_fingerprint": "def", "corpus": "toy"}


def _manifest(ids):
    return make_manifest([{"utt_id": u, "corpus": "toy", "language": "en", "speaker": "s", "emotion": "sad",
                           "label": "s", "path": f"/x/{u}.wav", "duration": 1.0, "sample_rate": 16000}
                          for u in ids])


def _write(path, ids, shard=(0, 1), offset=0.0):
    n = len(ids)
    mean = np.arange(S * n * D, dtype=np.float32).reshape(S, n, D) + offset
    return write_cache(path, ids, mean, mean, {**PROV, "shard": list(shard)}, _manifest(ids))


def _write_shards(folder, corpus, count, keep=None):
    ids = [f"u{i}" for i in range(2 * count)]
    paths = []
    for k in range(count):
        if keep is not None and k not in keep:
            continue
        paths.append(_write(folder / f"{corpus}.shard-{k}-of-{count}.h5", ids[2 * k:2 * k + 2], (k, count),
                            offset=10.0 * k))
    return ids, paths


def test_merged_file_is_found_first(tmp_path):
    path = _write(features_path("m", "toy", tmp_path), ["a", "b"])
    _write_shards(path.parent, "toy", 2)  # shards beside a merged file: the merged file wins
    assert find_cache("m", "toy", tmp_path) == [path]
    with open_model_cache("m", "toy", tmp_path) as cache:
        assert cache.utt_ids == ["a", "b"]


def test_complete_shards_are_found_in_order_and_read_as_one(tmp_path):
    folder = features_path("m", "toy", tmp_path).parent
    folder.mkdir(parents=True)
    ids, paths = _write_shards(folder, "toy", 3)
    _write(folder / "toy2.h5", ["z"])  # another corpus whose name starts alike is not a shard
    _write(folder / "toy-extra.shard-0-of-1.h5", ["y"])
    found = find_cache("m", "toy", tmp_path)
    assert found == paths
    with open_model_cache("m", "toy", tmp_path) as cache:
        assert cache.utt_ids == ids
        assert np.array_equal(cache.pooled(0, ["u4"])[0], np.arange(D) + 20.0)  # shard 2, first row
        assert cache.pooled(0, ["u5"])[0, 0] == pytest.approx(20.0 + D)  # shard 2, second row, offset 20
    assert cache_location(found) == str(folder / "toy.shard-*-of-3.h5")
    assert cache_location(found[:1]) == str(found[0])


def test_incomplete_shards_name_what_is_missing(tmp_path):
    folder = features_path("m", "toy", tmp_path).parent
    folder.mkdir(parents=True)
    _write_shards(folder, "toy", 3, keep={0, 2})
    (folder / "toy.shard-1-of-3.h5.parts").mkdir()  # the rank that died left its parts
    with pytest.raises(CacheNotFoundError) as err:
        find_cache("m", "toy", tmp_path)
    message = str(err.value)
    assert "incomplete" in message and "missing [1]" in message and "[0, 2] of 3" in message
    assert "toy.shard-1-of-3.h5.parts" in message and "--shard" in message
    assert isinstance(err.value, CacheError) and isinstance(err.value, CrosslingError)
    assert isinstance(err.value, FileNotFoundError)


def test_two_complete_shard_sets_are_ambiguous(tmp_path):
    folder = features_path("m", "toy", tmp_path).parent
    folder.mkdir(parents=True)
    _write_shards(folder, "toy", 2)
    _write_shards(folder, "toy", 3)
    with pytest.raises(CacheNotFoundError, match="several complete shard sets"):
        find_cache("m", "toy", tmp_path)


def test_missing_cache_names_what_was_searched(tmp_path):
    with pytest.raises(CacheNotFoundError) as err:
        find_cache("org/name", "toy", tmp_path)
    message = str(err.value)
    where = tmp_path / "org__name"  # the name rules: org/name -> org__name
    assert str(where / "toy.h5") in message and str(where / "toy.shard-*-of-N.h5") in message
    assert "featstore extract --model org/name --corpus toy" in message


def test_names_that_would_leave_the_cache_root_are_refused(tmp_path):
    with pytest.raises(UnsafeIdError):
        find_cache("..", "toy", tmp_path)
    with pytest.raises(UnsafeIdError):
        find_cache("m", "../toy", tmp_path)
    assert features_path("org/name", "toy", tmp_path) == tmp_path / "org__name" / "toy.h5"


def test_a_typo_in_the_model_or_corpus_lists_the_caches_that_exist(tmp_path):
    from featstore.cache import CacheNotFoundError, find_cache

    (tmp_path / "w2v2-de").mkdir()
    (tmp_path / "w2v2-de" / "pavoque.h5").write_bytes(b"")
    (tmp_path / "w2v2-cn").mkdir()
    (tmp_path / "w2v2-cn" / "esd.shard-0-of-1.h5").write_bytes(b"")
    with pytest.raises(CacheNotFoundError, match=r"caches of pavoque exist for: w2v2-de \(did you mean 'w2v2-de'\?\)"):
        find_cache("w2v2-dx", "pavoque", tmp_path)
    with pytest.raises(CacheNotFoundError, match=r"w2v2-de has caches of: pavoque \(did you mean 'pavoque'\?\)"):
        find_cache("w2v2-de", "pavoqe", tmp_path)
