"""The on-disk layout of a feature cache (HDF5) and the functions that write it.

One file holds, for ``N`` utterances of one corpus and ``S = n_hidden_states`` hidden
states of one model (layer 0 = transformer input ... layer ``S - 1``):

- ``utt_ids`` (N,) utf-8 strings, in manifest order;
- ``num_frames`` (N,) int64, frames the model made for each utterance;
- ``pooled/mean``, ``pooled/std`` (S, N, D) float16 (or float32), statistics over real
  frames;
- optional ``frames/data`` (L_sel, total_frames, D) chunked ``(1, 512, D)``, with
  ``frames/offsets`` (N + 1,) int64 (utterance ``i`` is ``data[:, offsets[i]:offsets[i+1]]``)
  and ``frames/layers`` (L_sel,) int64, the hidden-state indices stored;
- ``failed/utt_ids``, ``failed/reasons`` (F,) utf-8 strings, utterances that could not be
  read, with the reason;
- ``manifest_json`` a scalar utf-8 string: the manifest rows (all of them, failed ones
  included) as a JSON list of objects;
- root attributes ``format_version`` (int), ``provenance`` (JSON string) and
  ``fingerprint`` (16 hex, :func:`cache_fingerprint` of the provenance).

``docs/cache-format.md`` is the reference for other programs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import polars as pl

from featstore.errors import CrosslingError
from featstore.manifest import MANIFEST_SCHEMA, validate_manifest

FORMAT_VERSION = 1
FRAME_CHUNK = 512
"""Frames per HDF5 chunk along time: (1, 512, 768) float16 is 0.75 MiB, inside the
0.4-1.5 MiB range that read well for both one-layer and whole-utterance reads."""
DTYPES: tuple[str, ...] = ("float16", "float32")
KEY_FIELDS: tuple[str, ...] = (
    "model_fingerprint", "manifest_fingerprint", "dtype", "n_hidden_states", "hidden_size",
    "frames", "frame_layers", "normalisation", "sample_rate_hz", "max_clip_seconds", "compute_dtype",
    "model_language",
)
"""Provenance fields that decide the cache's content. Two caches (or a cache and a request)
with the same values hold the same features; anything else (time, versions, device, shard)
is recorded but does not make a cache unusable. ``model_language`` does not change a
feature, but the probes read the model's language from the cache (it decides mono, cross
or trans): a request with another language is refused, never silently served the old one."""
STR = h5py.string_dtype("utf-8")


class CacheError(CrosslingError, ValueError):
    """A cache file that is missing, incomplete, inconsistent or does not match a request."""


def cache_key(provenance: Mapping) -> dict:
    """The fields of ``provenance`` that decide the content (missing ones are ``None``)."""
    return {name: provenance.get(name) for name in KEY_FIELDS}


def cache_fingerprint(provenance: Mapping) -> str:
    """16-hex sha256 of :func:`cache_key`; equal for shards of one extraction and their merge."""
    text = json.dumps(cache_key(provenance), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def key_differences(stored: Mapping, wanted: Mapping) -> list[str]:
    """Human-readable list of key fields where ``stored`` and ``wanted`` provenance differ."""
    out = []
    for name in KEY_FIELDS:
        have, want = stored.get(name), wanted.get(name)
        if json.dumps(have, default=str) != json.dumps(want, default=str):
            out.append(f"{name}: cache has {have!r}, asked for {want!r}")
    return out


def manifest_to_json(manifest: pl.DataFrame) -> str:
    """The manifest rows as a JSON list of objects (readable without polars)."""
    return json.dumps(manifest.to_dicts(), default=str)


def manifest_from_json(text: str) -> pl.DataFrame:
    """Inverse of :func:`manifest_to_json` (schema columns typed as in the manifest)."""
    rows = json.loads(text)
    if not rows:
        return pl.DataFrame(schema=MANIFEST_SCHEMA)
    frame = pl.DataFrame(rows, schema_overrides=MANIFEST_SCHEMA, infer_schema_length=None)
    return validate_manifest(frame, "manifest_json")


def fsync_path(path: str | Path) -> None:
    """Flush a closed file (or a directory entry) to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: Path, final: Path) -> Path:
    """fsync ``tmp``, atomically rename it to ``final`` and fsync the folder."""
    fsync_path(tmp)
    os.replace(tmp, final)
    fsync_path(final.parent)
    return final


def write_header(f: h5py.File, provenance: Mapping, manifest_json: str) -> None:
    """Root attributes and ``manifest_json`` of an open file."""
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["provenance"] = json.dumps(dict(provenance), default=str)
    f.attrs["fingerprint"] = cache_fingerprint(provenance)
    f.create_dataset("manifest_json", data=manifest_json, dtype=STR)


def write_index(f: h5py.File, utt_ids: Sequence[str], num_frames: np.ndarray,
                failed: Mapping[str, str]) -> None:
    """``utt_ids``, ``num_frames`` and the ``failed`` table."""
    f.create_dataset("utt_ids", data=np.array(list(utt_ids), dtype=object), dtype=STR)
    f.create_dataset("num_frames", data=np.asarray(num_frames, dtype=np.int64))
    grp = f.create_group("failed")
    grp.create_dataset("utt_ids", data=np.array(list(failed), dtype=object), dtype=STR)
    grp.create_dataset("reasons", data=np.array(list(failed.values()), dtype=object), dtype=STR)


def create_frames(f: h5py.File, layers: Sequence[int], total_frames: int, dim: int, dtype: str,
                  maxshape_frames: int | None = None) -> h5py.Dataset:
    """Create ``frames/data`` (L_sel, total_frames, dim) and ``frames/layers``."""
    grp = f.require_group("frames")
    grp.create_dataset("layers", data=np.asarray(layers, dtype=np.int64))
    chunk = (1, FRAME_CHUNK, dim)
    return grp.create_dataset("data", shape=(len(layers), total_frames, dim), dtype=dtype,
                              chunks=chunk, maxshape=(len(layers), maxshape_frames, dim))


def write_cache(
    path: str | Path,
    utt_ids: Sequence[str],
    mean: np.ndarray,
    std: np.ndarray,
    provenance: Mapping,
    manifest: pl.DataFrame,
    frames: Sequence[np.ndarray] | None = None,
    frame_layers: Sequence[int] | None = None,
    num_frames: Sequence[int] | None = None,
    failed: Mapping[str, str] | None = None,
    dtype: str | None = None,
) -> Path:
    """Write a complete cache file at once, atomically (temporary name, fsync, rename).

    Parameters
    ----------
    path : output ``.h5`` path.
    utt_ids : N utterance ids.
    mean, std : (S, N, D) pooled statistics per hidden state.
    provenance : dict recorded in the file; ``dtype``, ``n_hidden_states``,
        ``hidden_size``, ``frames`` and ``frame_layers`` are filled in from the data when
        missing.
    manifest : the manifest rows the cache was made from.
    frames : optional N arrays (L_sel, T_i, D), frame-level hidden states.
    frame_layers : hidden-state indices of the L_sel frame layers (default: all S).
    num_frames : (N,) frames per utterance (default: from ``frames``, else 0 = unknown).
    failed : utt_id -> reason for utterances that could not be extracted.
    dtype : ``float16`` or ``float32`` (default: the provenance's, else float16).
    """
    path = Path(path)
    mean, std = np.asarray(mean), np.asarray(std)
    if mean.ndim != 3 or mean.shape != std.shape or mean.shape[1] != len(utt_ids):
        raise CacheError(f"{path}: mean/std must be (S, N={len(utt_ids)}, D), got {mean.shape} and {std.shape}")
    n_states, _, dim = mean.shape
    prov = dict(provenance)
    dtype = dtype or prov.get("dtype") or "float16"
    if dtype not in DTYPES:
        raise CacheError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    layers = list(frame_layers) if frame_layers is not None else (list(range(n_states)) if frames else None)
    prov.setdefault("dtype", dtype)
    prov.setdefault("n_hidden_states", n_states)
    prov.setdefault("hidden_size", dim)
    prov.setdefault("frames", frames is not None)
    prov.setdefault("frame_layers", layers)
    prov.setdefault("format_version", FORMAT_VERSION)
    if num_frames is None:
        num_frames = [f.shape[1] for f in frames] if frames is not None else [0] * len(utt_ids)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        write_header(f, prov, manifest_to_json(manifest))
        write_index(f, utt_ids, np.asarray(num_frames), dict(failed or {}))
        f.create_dataset("pooled/mean", data=mean.astype(dtype))
        f.create_dataset("pooled/std", data=std.astype(dtype))
        if frames is not None:
            counts = np.array([a.shape[1] for a in frames], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            data = create_frames(f, layers, int(offsets[-1]), dim, dtype)
            for i, arr in enumerate(frames):
                data[:, offsets[i]:offsets[i + 1]] = arr.astype(dtype)
            f.create_dataset("frames/offsets", data=offsets)
    return commit(tmp, path)
