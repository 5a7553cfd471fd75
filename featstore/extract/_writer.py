"""The single writer thread: h5py is single-threaded, so one thread owns every file.

Each piece of work goes to ``<parts>/part-<k>.h5.tmp``; when the piece is complete the file
is closed, fsynced and renamed to ``part-<k>.h5``. A part file therefore exists under its
final name only when it is whole, whatever happens to the process.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from featstore.cache import commit, create_frames, write_header, write_index
from featstore.extract._compute import ClipResult
from featstore.extract._config import ExtractError

_STOP = object()
_FLUSH_FRAMES = 4096
"""Frames gathered before one write (8 chunks of 512)."""


def part_path(parts_dir: Path, piece: int) -> Path:
    """Final name of piece ``piece``'s part file."""
    return parts_dir / f"part-{piece:05d}.h5"


class PartWriter:
    """Writes part files from a bounded queue in a background thread.

    Parameters
    ----------
    parts_dir : folder of the part files
    provenance : recorded in every part (with ``piece`` added)
    frame_layers : hidden-state indices stored as frames, or None
    dim : hidden size
    dtype : stored dtype name
    """

    def __init__(self, parts_dir: Path, provenance: Mapping, frame_layers: list[int] | None, dim: int,
                 dtype: str) -> None:
        self.parts_dir = parts_dir
        self.provenance = dict(provenance)
        self.frame_layers = frame_layers
        self.dim = dim
        self.dtype = dtype
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._loop, name="featstore-writer", daemon=True)
        self._thread.start()

    # --- called from the main thread ---------------------------------------------------
    def _put(self, item: object) -> None:
        while True:
            if self.error is not None:
                raise ExtractError(f"{self.parts_dir}: the cache writer failed: {self.error}") from self.error
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def begin(self, piece: int, manifest_json: str) -> None:
        """Start piece ``piece`` (its manifest rows as JSON)."""
        self._put(("begin", piece, manifest_json))

    def add(self, utt_id: str, result: ClipResult) -> None:
        """Features of one utterance of the current piece."""
        self._put(("add", utt_id, result))

    def fail(self, utt_id: str, reason: str) -> None:
        """An utterance of the current piece that could not be extracted."""
        self._put(("fail", utt_id, reason))

    def end(self) -> None:
        """Finish the current piece: write, close, fsync, rename."""
        self._put(("end",))

    def close(self) -> None:
        """Wait for every queued write; re-raise a writer error (as :class:`ExtractError`)."""
        self._put(_STOP)
        self._thread.join()
        if self.error is not None:
            raise ExtractError(f"{self.parts_dir}: the cache writer failed: {self.error}") from self.error

    # --- the writer thread -------------------------------------------------------------
    def _loop(self) -> None:
        state: dict = {}
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    if state.get("file") is not None:
                        state["file"].close()  # an unfinished piece stays a .tmp, never read
                    return
                getattr(self, "_on_" + item[0])(state, *item[1:])
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            self.error = err
            if state.get("file") is not None:
                state["file"].close()
            # Drain so the producer never blocks on a dead consumer.
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break

    def _on_begin(self, state: dict, piece: int, manifest_json: str) -> None:
        tmp = part_path(self.parts_dir, piece).with_suffix(".h5.tmp")
        f = h5py.File(tmp, "w")
        write_header(f, {**self.provenance, "piece": piece}, manifest_json)
        data = None
        if self.frame_layers is not None:
            data = create_frames(f, self.frame_layers, 0, self.dim, self.dtype, maxshape_frames=None)
        state.update(piece=piece, tmp=tmp, file=f, data=data, ids=[], means=[], stds=[], counts=[], failed={},
                     pending=[], n_pending=0)

    def _on_add(self, state: dict, utt_id: str, result: ClipResult) -> None:
        state["ids"].append(utt_id)
        state["means"].append(result.mean)
        state["stds"].append(result.std)
        state["counts"].append(result.n_frames)
        if state["data"] is not None:
            state["pending"].append(result.frames)
            state["n_pending"] += result.frames.shape[1]
            if state["n_pending"] >= _FLUSH_FRAMES:
                self._flush(state)

    @staticmethod
    def _flush(state: dict) -> None:
        # One resize and one write per few thousand frames: whole chunks, few h5py calls.
        if not state["pending"]:
            return
        block = np.concatenate(state["pending"], axis=1)
        data = state["data"]
        start = data.shape[1]
        data.resize(start + block.shape[1], axis=1)
        data[:, start:] = block
        state["pending"], state["n_pending"] = [], 0

    def _on_fail(self, state: dict, utt_id: str, reason: str) -> None:
        state["failed"][utt_id] = reason

    def _on_end(self, state: dict) -> None:
        f: h5py.File = state["file"]
        counts = np.asarray(state["counts"], dtype=np.int64)
        write_index(f, state["ids"], counts, state["failed"])
        n_states = int(self.provenance["n_hidden_states"])
        for name, rows in (("mean", state["means"]), ("std", state["stds"])):
            arr = np.stack(rows, axis=1) if rows else np.zeros((n_states, 0, self.dim), self.dtype)
            f.create_dataset(f"pooled/{name}", data=arr.astype(self.dtype))
        if state["data"] is not None:
            self._flush(state)
            f.create_dataset("frames/offsets", data=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
        f.close()
        state["file"] = None
        commit(state["tmp"], part_path(self.parts_dir, state["piece"]))
