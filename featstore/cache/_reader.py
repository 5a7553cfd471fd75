"""Reading a feature cache: one file, or a set of shard files read as one cache."""

from __future__ import annotations

import glob
import json
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import polars as pl

from featstore.cache._format import FORMAT_VERSION, CacheError, manifest_from_json

CHUNK_CACHE_BYTES = 64 * 2**20
"""h5py chunk cache per open file: big enough to keep the (1, 512, D) chunks of a few
utterances of every stored layer hot while reading whole utterances one by one."""


def expand_paths(path_or_paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """A path, a glob pattern (``cache/m/esd.shard-*-of-4.h5``) or a list, as a list of files."""
    items = [path_or_paths] if isinstance(path_or_paths, (str, Path)) else list(path_or_paths)
    out: list[Path] = []
    for item in items:
        text = str(item)
        if any(ch in text for ch in "*?["):
            matches = sorted(glob.glob(text))
            if not matches:
                raise CacheError(f"{text}: no cache file matches this pattern")
            out.extend(Path(m) for m in matches)
        else:
            out.append(Path(text))
    if not out:
        raise CacheError("no cache file given")
    return out


def check_shard_set(shards: Sequence[Sequence[int]], names: Sequence[str]) -> None:
    """Raise :class:`CacheError` unless ``shards`` (the ``[I, N]`` of each file, in order)
    are shards ``0 .. N-1`` of one ``N``, each once."""
    counts = sorted({int(n) for _, n in shards})
    if len(counts) > 1:
        raise CacheError(f"shards of different splits ({counts} shards): {', '.join(names)}")
    have = [int(i) for i, _ in shards]
    if have != list(range(counts[0])):
        missing = sorted(set(range(counts[0])) - set(have))
        raise CacheError(f"incomplete or repeated shards: have {have} of {counts[0]} (missing {missing}): "
                         + ", ".join(names))


def _open(path: Path) -> h5py.File:
    if not path.exists():
        hint = ""
        parts = path.with_name(path.name + ".parts")
        if parts.exists():
            hint = f" (an unfinished extraction left {parts}; rerun the same `featstore extract` to finish it)"
        raise CacheError(f"{path}: no such cache file{hint}")
    try:
        f = h5py.File(path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES, rdcc_nslots=10007)
    except OSError as err:
        raise CacheError(f"{path}: not a readable HDF5 cache ({err})") from err
    version = int(f.attrs.get("format_version", -1))
    if version != FORMAT_VERSION:
        f.close()
        raise CacheError(f"{path}: cache format version {version}, this code reads {FORMAT_VERSION}")
    return f


class FeatureCache:
    """Read access to one cache file or to several shard files as one cache.

    Files are opened once and kept open; use as a context manager or call :meth:`close`.
    Utterances are in the order of the files given (shards sorted by shard index), each
    file in its own (manifest) order.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self._files = [_open(p) for p in self.paths]
        try:
            self._init_index()
        except Exception:
            self.close()
            raise

    def _init_index(self) -> None:
        provs = [json.loads(f.attrs["provenance"]) for f in self._files]
        fps = [str(f.attrs["fingerprint"]) for f in self._files]
        if len(set(fps)) > 1:
            detail = ", ".join(f"{p.name}: {fp}" for p, fp in zip(self.paths, fps, strict=True))
            raise CacheError(f"these files are not shards of one extraction (fingerprints differ: {detail})")
        if len(self._files) > 1:
            order = sorted(range(len(self._files)), key=lambda i: tuple(provs[i].get("shard") or (0, 1)))
            self._files = [self._files[i] for i in order]
            self.paths = [self.paths[i] for i in order]
            provs = [provs[i] for i in order]
            # a missing shard (a rank that died) must not read as a smaller corpus
            check_shard_set([p.get("shard") or (0, 1) for p in provs], [p.name for p in self.paths])
        self.provenance: dict = provs[0]
        """Provenance of the (first) file: model, fingerprints, dtype, versions, shard..."""
        self.fingerprint: str = fps[0]
        """16-hex content fingerprint (model weights, manifest, dtype, layers, frames option)."""
        self.utt_ids: list[str] = []
        self._where: dict[str, tuple[int, int]] = {}
        for k, f in enumerate(self._files):
            ids = [s for s in f["utt_ids"].asstr()[:]]
            for row, uid in enumerate(ids):
                if uid in self._where:
                    raise CacheError(f"utterance {uid!r} appears in {self.paths[self._where[uid][0]]} and {self.paths[k]}")
                self._where[uid] = (k, row)
            self.utt_ids.extend(ids)
        first = self._files[0]["pooled/mean"]
        self.n_hidden_states: int = int(first.shape[0])
        self.dim: int = int(first.shape[2])
        self.has_frames: bool = "frames/data" in self._files[0]
        self.frame_layers: list[int] = (
            [int(x) for x in self._files[0]["frames/layers"][:]] if self.has_frames else []
        )
        self.num_frames: np.ndarray = np.concatenate([f["num_frames"][:] for f in self._files])
        """(N,) frames per utterance, in :attr:`utt_ids` order."""
        self._offsets = [f["frames/offsets"][:] for f in self._files] if self.has_frames else []

    # --- pooled statistics -------------------------------------------------------------
    def _check_stat(self, stat: str) -> str:
        if stat not in ("mean", "std"):
            raise ValueError(f"stat must be 'mean' or 'std', got {stat!r}")
        return f"pooled/{stat}"

    def _rows(self, utt_ids: Sequence[str] | None) -> list[tuple[int, int]] | None:
        if utt_ids is None:
            return None
        missing = [u for u in utt_ids if u not in self._where]
        if missing:
            raise KeyError(f"{len(missing)} utterance(s) not in the cache, e.g. {missing[:3]}")
        return [self._where[u] for u in utt_ids]

    def pooled(self, layer: int, utt_ids: Sequence[str] | None = None, stat: str = "mean") -> np.ndarray:
        """Pooled ``stat`` of hidden state ``layer``: (n, dim) float32, rows in ``utt_ids``
        order (default: all utterances in :attr:`utt_ids` order)."""
        name = self._check_stat(stat)
        if not -self.n_hidden_states <= layer < self.n_hidden_states:
            raise IndexError(f"layer {layer} out of range 0..{self.n_hidden_states - 1}")
        # One contiguous read per file (tens of MB at most), then numpy indexing: h5py's
        # fancy indexing is slow and wants sorted indices.
        blocks = [np.asarray(f[name][layer], dtype=np.float32) for f in self._files]
        return self._select(blocks, self._rows(utt_ids), axis=0)

    def pooled_all(self, utt_ids: Sequence[str] | None = None, stat: str = "mean") -> np.ndarray:
        """Pooled ``stat`` of every hidden state: (n_hidden_states, n, dim) float32."""
        name = self._check_stat(stat)
        blocks = [np.asarray(f[name][:], dtype=np.float32) for f in self._files]
        return self._select(blocks, self._rows(utt_ids), axis=1)

    @staticmethod
    def _select(blocks: list[np.ndarray], rows: list[tuple[int, int]] | None, axis: int) -> np.ndarray:
        if rows is None:
            return np.concatenate(blocks, axis=axis)
        starts = np.cumsum([0] + [b.shape[axis] for b in blocks])
        flat = np.array([starts[k] + r for k, r in rows], dtype=np.int64)
        return np.take(np.concatenate(blocks, axis=axis), flat, axis=axis)

    # --- frames ------------------------------------------------------------------------
    def frames(self, utt_id: str, layers: Sequence[int] | None = None) -> np.ndarray:
        """Frame-level hidden states of one utterance: (n_layers_sel, T, dim) float32.

        ``layers`` are hidden-state indices among :attr:`frame_layers` (default: all stored).
        """
        if not self.has_frames:
            raise CacheError(f"{self.paths[0]}: no frame-level features (extract with --frames)")
        if utt_id not in self._where:
            raise KeyError(f"utterance {utt_id!r} not in the cache")
        k, row = self._where[utt_id]
        lo, hi = int(self._offsets[k][row]), int(self._offsets[k][row + 1])
        data = self._files[k]["frames/data"]
        if layers is None:
            return np.asarray(data[:, lo:hi], dtype=np.float32)
        idx = []
        for layer in layers:
            if layer not in self.frame_layers:
                raise KeyError(f"layer {layer} not stored as frames (stored: {self.frame_layers})")
            idx.append(self.frame_layers.index(layer))
        return np.stack([np.asarray(data[i, lo:hi], dtype=np.float32) for i in idx])

    # --- tables ------------------------------------------------------------------------
    def manifest(self, include_failed: bool = False) -> pl.DataFrame:
        """Manifest rows of the cached utterances, in :attr:`utt_ids` order (all rows the
        cache was made from, failed ones included, in manifest order, with ``include_failed``)."""
        frames = [manifest_from_json(f["manifest_json"].asstr()[()]) for f in self._files]
        full = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
        if include_failed:
            return full
        order = pl.DataFrame({"utt_id": self.utt_ids, "_pos": np.arange(len(self.utt_ids))})
        return full.join(order, on="utt_id", how="inner").sort("_pos").drop("_pos")

    def failed(self) -> dict[str, str]:
        """utt_id -> reason for utterances that could not be extracted."""
        out: dict[str, str] = {}
        for f in self._files:
            ids = f["failed/utt_ids"].asstr()[:]
            reasons = f["failed/reasons"].asstr()[:]
            out.update(zip(ids, reasons, strict=True))
        return out

    def __len__(self) -> int:
        return len(self.utt_ids)

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self._where

    def close(self) -> None:
        """Close the open files."""
        for f in self._files:
            f.close()

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"FeatureCache({len(self.utt_ids)} utts, {self.n_hidden_states} states x {self.dim}, "
                f"frames={self.has_frames}, files={[str(p) for p in self.paths]})")


def open_cache(path_or_paths: str | Path | Sequence[str | Path]) -> FeatureCache:
    """Open a cache file, a glob pattern of shard files, or a list of shard files as one cache
    (every shard ``0 .. N-1`` of one extraction, else :class:`CacheError`)."""
    return FeatureCache(expand_paths(path_or_paths))
