"""Looking at caches: ``info`` (a summary), ``verify`` (an end-to-end check), ``ls``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from featstore.cache._format import FORMAT_VERSION, cache_fingerprint
from featstore.cache._reader import open_cache

_VERIFY_FRAMES = 16384
"""Frames per read while checking frame data for non-finite values."""


def cache_info(path_or_paths: str | Path | Sequence[str | Path]) -> dict:
    """Counts, shapes, fingerprints and failed items of a cache, as a JSON-ready dict."""
    with open_cache(path_or_paths) as cache:
        prov = cache.provenance
        failed = cache.failed()
        shapes = {"pooled/mean": [cache.n_hidden_states, len(cache), cache.dim],
                  "pooled/std": [cache.n_hidden_states, len(cache), cache.dim]}
        if cache.has_frames:
            shapes["frames/data"] = [len(cache.frame_layers), int(cache.num_frames.sum()), cache.dim]
        return {
            "paths": [str(p) for p in cache.paths],
            "size_bytes": sum(p.stat().st_size for p in cache.paths),
            "format_version": FORMAT_VERSION,
            "fingerprint": cache.fingerprint,
            "model": prov.get("model_alias"),
            "model_source": prov.get("model_source"),
            "model_fingerprint": prov.get("model_fingerprint"),
            "corpus": prov.get("corpus"),
            "manifest_fingerprint": prov.get("manifest_fingerprint"),
            "dtype": prov.get("dtype"),
            "n_utts": len(cache),
            "n_failed": len(failed),
            "n_hidden_states": cache.n_hidden_states,
            "dim": cache.dim,
            "has_frames": cache.has_frames,
            "frame_layers": cache.frame_layers,
            "total_frames": int(cache.num_frames.sum()),
            "audio_seconds": float(cache.manifest()["duration"].sum()) if len(cache) else 0.0,
            "shapes": shapes,
            "failed": failed,
            "provenance": prov,
        }


def verify_cache(path: str | Path) -> list[str]:
    """Check one cache file end to end; return the problems found (empty = sound).

    Opens every dataset and checks: format version and fingerprint, shapes against each
    other, offsets against ``num_frames``, finite values in pooled and frame data, unique
    utterance ids, and that cached plus failed ids are exactly the manifest's ids.
    """
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        return [f"{path}: cannot open as HDF5 ({err})"]
    with f:
        return _verify_open(f)


def _verify_open(f: h5py.File) -> list[str]:
    problems: list[str] = []
    need = ["utt_ids", "num_frames", "pooled/mean", "pooled/std", "failed/utt_ids", "failed/reasons", "manifest_json"]
    absent = [n for n in need if n not in f]
    if absent:
        return [f"missing dataset(s) {absent}"]
    if int(f.attrs.get("format_version", -1)) != FORMAT_VERSION:
        problems.append(f"format_version {f.attrs.get('format_version')} != {FORMAT_VERSION}")
    try:
        prov = json.loads(f.attrs["provenance"])
        if cache_fingerprint(prov) != str(f.attrs["fingerprint"]):
            problems.append("fingerprint attribute does not match the provenance")
    except (KeyError, ValueError) as err:
        problems.append(f"unreadable provenance/fingerprint ({err})")
    ids = list(f["utt_ids"].asstr()[:])
    n = len(ids)
    if len(set(ids)) != n:
        problems.append("duplicate utterance ids")
    num_frames = f["num_frames"][:]
    if num_frames.shape != (n,):
        problems.append(f"num_frames shape {num_frames.shape} != ({n},)")
    mean, std = f["pooled/mean"], f["pooled/std"]
    if mean.shape != std.shape or mean.ndim != 3 or mean.shape[1] != n:
        problems.append(f"pooled shapes {mean.shape} / {std.shape} do not match {n} utterances")
    else:
        for layer in range(mean.shape[0]):
            if not (np.isfinite(mean[layer]).all() and np.isfinite(std[layer]).all()):
                problems.append(f"non-finite pooled values in layer {layer}")
            if (std[layer][:] < 0).any():
                problems.append(f"negative std in layer {layer}")
    if "frames/data" in f:
        problems += _verify_frames(f, num_frames, mean.shape)
    failed = list(f["failed/utt_ids"].asstr()[:])
    if len(failed) != f["failed/reasons"].shape[0]:
        problems.append("failed/utt_ids and failed/reasons differ in length")
    try:
        manifest_ids = [r["utt_id"] for r in json.loads(f["manifest_json"].asstr()[()])]
    except (ValueError, KeyError, TypeError) as err:
        return [*problems, f"unreadable manifest_json ({err})"]
    if sorted(ids + failed) != sorted(manifest_ids):
        extra = sorted(set(ids + failed) - set(manifest_ids))
        lost = sorted(set(manifest_ids) - set(ids + failed))
        problems.append(f"ids do not match the manifest: {len(extra)} unknown (e.g. {extra[:3]}), "
                        f"{len(lost)} missing (e.g. {lost[:3]})")
    elif ids != [u for u in manifest_ids if u not in set(failed)]:
        problems.append("utterances are not in manifest order")
    return problems


def _verify_frames(f: h5py.File, num_frames: np.ndarray, pooled_shape: tuple) -> list[str]:
    problems = []
    data, offsets, layers = f["frames/data"], f["frames/offsets"][:], f["frames/layers"][:]
    if offsets.shape != (num_frames.shape[0] + 1,) or offsets[0] != 0:
        return [f"frames/offsets shape {offsets.shape} or start {offsets[:1]} is wrong"]
    if not np.array_equal(np.diff(offsets), num_frames):
        problems.append("frames/offsets disagree with num_frames")
    if data.shape[0] != len(layers) or data.shape[1] != offsets[-1] or data.shape[2] != pooled_shape[2]:
        problems.append(f"frames/data shape {data.shape} != ({len(layers)}, {offsets[-1]}, {pooled_shape[2]})")
    if len(layers) and (min(layers) < 0 or max(layers) >= pooled_shape[0]):
        problems.append(f"frames/layers {list(layers)} outside 0..{pooled_shape[0] - 1}")
    for layer in range(data.shape[0]):
        for lo in range(0, data.shape[1], _VERIFY_FRAMES):
            if not np.isfinite(data[layer, lo:lo + _VERIFY_FRAMES]).all():
                problems.append(f"non-finite frame values in stored layer {layers[layer]} near frame {lo}")
                break
    return problems


def list_caches(root: str | Path) -> list[dict]:
    """Every cache file under ``root`` (complete ones, and unfinished extractions)."""
    root = Path(root)
    out: list[dict] = []
    if not root.exists():
        return out
    for path in sorted(root.rglob("*.h5")):
        if any(part.endswith(".parts") for part in path.parts):
            continue
        row = {"path": str(path), "size_bytes": path.stat().st_size, "status": "complete"}
        try:
            with h5py.File(path, "r") as f:
                prov = json.loads(f.attrs["provenance"])
                row.update(model=prov.get("model_alias"), corpus=prov.get("corpus"),
                           n_utts=int(f["utt_ids"].shape[0]), n_failed=int(f["failed/utt_ids"].shape[0]),
                           frames="frames/data" in f, dtype=prov.get("dtype"),
                           shard="{}/{}".format(*(prov.get("shard") or (0, 1))))
        except (OSError, KeyError, ValueError) as err:
            row.update(status=f"unreadable ({err})")
        out.append(row)
    for parts in sorted(root.rglob("*.h5.parts")):
        n_parts = len(list(parts.glob("part-*.h5")))
        out.append({"path": str(parts)[: -len(".parts")], "size_bytes": sum(p.stat().st_size for p in parts.glob("*")),
                    "status": f"unfinished ({n_parts} finished pieces)"})
    return out

