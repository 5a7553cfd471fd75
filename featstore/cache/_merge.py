"""Merging cache files: the part files of one extraction, or the shards of several ranks."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from featstore.cache._format import (
    CacheError,
    cache_fingerprint,
    commit,
    create_frames,
    write_header,
    write_index,
)
from featstore.cache._reader import CHUNK_CACHE_BYTES, _open, check_shard_set, expand_paths

_RUN_FRAMES = 65536
"""Most frames read at once per layer (96 MiB of float16 at 768 dims)."""


def _read_inputs(paths: Sequence[Path]) -> list[h5py.File]:
    files = []
    for p in paths:
        if not p.exists():
            raise CacheError(f"{p}: no such file")
        files.append(h5py.File(p, "r", rdcc_nbytes=CHUNK_CACHE_BYTES))
    return files


def merge_files(
    paths: Sequence[Path],
    out: Path,
    order: Sequence[str] | None = None,
    manifest_json: str | None = None,
    provenance: Mapping | None = None,
) -> Path:
    """Write the union of cache files ``paths`` to ``out`` atomically.

    Parameters
    ----------
    paths : input cache (or part) files, all from one extraction (same fingerprint).
    out : output file; written as ``out.tmp``, fsynced, then renamed.
    order : utterance order of the output (default: the inputs' utterances, in input order).
    manifest_json : manifest rows to store (default: the inputs' rows concatenated).
    provenance : provenance to store (default: the first input's, with ``shard`` = [0, 1]).
    """
    files = _read_inputs(paths)
    try:
        return _merge(files, paths, Path(out), order, manifest_json, provenance)
    finally:
        for f in files:
            f.close()


def _merge(files: list[h5py.File], paths: Sequence[Path], out: Path, order: Sequence[str] | None,
           manifest_json: str | None, provenance: Mapping | None) -> Path:
    fps = {str(f.attrs["fingerprint"]) for f in files}
    if len(fps) > 1:
        raise CacheError(f"cannot merge files of different extractions (fingerprints {sorted(fps)})")
    where: dict[str, tuple[int, int]] = {}
    for k, f in enumerate(files):
        for row, uid in enumerate(f["utt_ids"].asstr()[:]):
            if uid in where:
                raise CacheError(f"utterance {uid!r} is in both {paths[where[uid][0]]} and {paths[k]}")
            where[uid] = (k, row)
    if order is None:
        order = list(where)
    missing = [u for u in order if u not in where]
    if missing or len(order) != len(where):
        raise CacheError(f"merge order does not match the inputs ({len(missing)} missing, e.g. {missing[:3]})")
    if manifest_json is None:
        rows = [r for f in files for r in json.loads(f["manifest_json"].asstr()[()])]
        manifest_json = json.dumps(rows, default=str)
    prov = dict(provenance) if provenance is not None else json.loads(files[0].attrs["provenance"])
    if provenance is None:
        prov["shard"] = [0, 1]
        prov["merged_from"] = [p.name for p in paths]
    if cache_fingerprint(prov) not in fps and files:
        raise CacheError("the merged provenance does not describe the same extraction as its inputs")
    pos = {r["utt_id"]: i for i, r in enumerate(json.loads(manifest_json))}
    failed: dict[str, str] = {}
    for f in files:
        failed.update(zip(f["failed/utt_ids"].asstr()[:], f["failed/reasons"].asstr()[:], strict=True))
    failed = dict(sorted(failed.items(), key=lambda kv: pos.get(kv[0], len(pos))))

    src = [where[u] for u in order]
    num_frames = np.array([files[k]["num_frames"][r] for k, r in src], dtype=np.int64)
    first = files[0]["pooled/mean"]
    n_states, dim, dtype = first.shape[0], first.shape[2], first.dtype
    has_frames = "frames/data" in files[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with h5py.File(tmp, "w", rdcc_nbytes=CHUNK_CACHE_BYTES) as g:
        write_header(g, prov, manifest_json)
        write_index(g, order, num_frames, failed)
        for stat in ("mean", "std"):
            ds = g.create_dataset(f"pooled/{stat}", shape=(n_states, len(order), dim), dtype=dtype)
            for layer in range(n_states):
                # One layer of every input at a time: memory stays at one (N, D) matrix.
                blocks = [f[f"pooled/{stat}"][layer] for f in files]
                ds[layer] = np.stack([blocks[k][r] for k, r in src]) if src else np.zeros((0, dim), dtype)
        if has_frames:
            _copy_frames(files, g, src, num_frames, dim, str(dtype))
    return commit(tmp, out)


def _copy_frames(files: list[h5py.File], g: h5py.File, src: list[tuple[int, int]],
                 num_frames: np.ndarray, dim: int, dtype: str) -> None:
    """Copy frames in output order, one run of utterances from the same input at a time.

    Parts and shards are contiguous in manifest order, so each input is one run: per layer,
    one read of the run's span and one contiguous write (a part file stores its
    utterances in processing order, so they are gathered in between).
    """
    layers = files[0]["frames/layers"][:]
    offsets_in = [f["frames/offsets"][:] for f in files]
    offsets = np.concatenate([[0], np.cumsum(num_frames)]).astype(np.int64)
    data = create_frames(g, layers, int(offsets[-1]), dim, dtype)
    g.create_dataset("frames/offsets", data=offsets)
    i = 0
    while i < len(src):
        k = src[i][0]
        j, n = i, 0
        while j < len(src) and src[j][0] == k and (n == 0 or n + num_frames[j] <= _RUN_FRAMES):
            n += int(num_frames[j])
            j += 1
        rows = [r for _, r in src[i:j]]
        lo = min(offsets_in[k][r] for r in rows)
        hi = max(offsets_in[k][r + 1] for r in rows)
        out_lo, out_hi = offsets[i], offsets[j]
        for layer in range(len(layers)):
            span = files[k]["frames/data"][layer, lo:hi]
            pieces = [span[offsets_in[k][r] - lo:offsets_in[k][r + 1] - lo] for r in rows]
            data[layer, out_lo:out_hi] = np.concatenate(pieces, axis=0) if pieces else span[:0]
        i = j


def merge_caches(paths: str | Path | Sequence[str | Path], out: str | Path) -> Path:
    """Merge the shard files of one extraction (a list or a glob) into one cache file.

    Shards are ordered by their shard index; every shard 0..N-1 must be present.
    """
    paths = expand_paths(paths)
    shards = []
    for p in paths:
        with _open(p) as f:  # CacheError naming the file: missing, not HDF5, not a cache
            prov = json.loads(f.attrs["provenance"])
        shards.append((tuple(prov.get("shard") or (0, 1)), p, prov))
    shards.sort(key=lambda s: s[0])
    check_shard_set([s[0] for s in shards], [s[1].name for s in shards])
    prov = dict(shards[0][2])
    prov["shard"] = [0, 1]
    prov["merged_from"] = [s[1].name for s in shards]
    return merge_files([s[1] for s in shards], Path(out), provenance=prov)
