"""Audio decoding: wav/flac through soundfile, mono downmix, soxr resampling, checks.

Every reader of the project goes through :func:`load_audio` (or :func:`load_row` for a
manifest row). A stretch of a long file (PAVOQUE's one FLAC per style) is read by seeking
to its first frame and decoding only its frames, never the whole file.

A file that cannot serve as model input raises :class:`AudioError` naming the file and
the reason; :func:`check_audio` reads a whole manifest, collects those errors in a table
and never stops on one bad file. ``featstore prepare --check-audio`` saves that table next
to the manifest (``<corpus>.bad.parquet``); later steps read it with
:func:`load_bad_files` and skip the files it names.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import soundfile as sf
import soxr

from featstore.errors import CrosslingError
from featstore.io import TableError, parquet_metadata, write_parquet

MODEL_SAMPLE_RATE_HZ = 16000
MIN_SAMPLES_16K = 400
"""One model frame: the convolutional front end of wav2vec 2.0 / WavLM needs 400 samples
(25 ms at 16 kHz) to make a single output frame."""
RESAMPLE_QUALITY = "VHQ"
CLIP_LEVEL = 0.999
"""|sample| at or above this (full scale = 1.0) counts as clipped."""
BAD_FILES_SCHEMA: dict[str, pl.DataType] = {"utt_id": pl.Utf8, "path": pl.Utf8, "reason": pl.Utf8}


MAX_DECODED_BYTES = 2**31
"""Most float32 bytes one :func:`load_audio` call decodes (about 9 hours of 16 kHz mono):
a header announcing more is corrupt, not a speech utterance."""


class AudioError(CrosslingError, ValueError):
    """A file that cannot be used as model input.

    Attributes
    ----------
    path : str
        The offending file.
    reason : str
        What is wrong with it, in words (``missing file``, ``truncated ...``, ...).
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def check_inside(path: str | Path, root: str | Path) -> Path:
    """Return ``path`` resolved, or raise :class:`AudioError` if it lies outside ``root``.

    Symbolic links are resolved first, so a link that points out of the corpus is caught.
    """
    resolved = Path(path).resolve()
    root_resolved = Path(root).resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise AudioError(path, f"path outside the corpus root {root_resolved}")
    return resolved


def probe_duration(path: str | Path) -> tuple[float, int]:
    """Duration and native sample rate of an audio file from its header (fast).

    Returns
    -------
    duration_s : float
        Length in seconds.
    sample_rate_hz : int
        The file's sample rate in Hz.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "missing file")
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, OSError, TypeError, ValueError) as err:
        raise AudioError(path, f"unreadable: {err}") from err
    if info.samplerate <= 0:
        raise AudioError(path, "unreadable: sample rate 0 in header")
    return info.frames / info.samplerate, int(info.samplerate)


def _wav_truncation(path: Path) -> str | None:
    """For a RIFF/WAVE file, compare the data chunk size in the header with the bytes on
    disk. libsndfile silently shortens a truncated wav to what is there, so this is the
    only way to notice a half-copied file. Returns a reason or None."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk = handle.read(8)
            if len(chunk) < 8:
                return None
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"data":
                available = size - offset - 8
                # 0 and 0xFFFFFFFF are the placeholders written by streaming encoders
                if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                    return f"truncated: header announces {chunk_size} data bytes, file holds {available}"
                return None
            offset += 8 + chunk_size + (chunk_size & 1)
    return None


def _frame_range(path: Path, start_s: float | None, end_s: float | None, sr: int, n_frames: int
                 ) -> tuple[int, int]:
    first = 0 if start_s is None else int(round(start_s * sr))
    last = n_frames if end_s is None else int(round(end_s * sr))
    if first < 0 or (end_s is not None and last <= first):
        raise AudioError(path, f"bad stretch start={start_s} s end={end_s} s")
    if first >= n_frames and n_frames > 0:
        raise AudioError(path, f"stretch starts at {start_s} s, after the end of the file "
                               f"({n_frames / sr:.3f} s)")
    # a rounding overshoot of a few milliseconds is normal in label files, more is not
    if last > n_frames + int(0.01 * sr):
        raise AudioError(path, f"stretch ends at {end_s} s, after the end of the file "
                               f"({n_frames / sr:.3f} s): truncated file or wrong times")
    return first, min(last, n_frames)


def load_audio(path: str | Path, start_s: float | None = None, end_s: float | None = None,
               sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ, root: str | Path | None = None
               ) -> np.ndarray:
    """Decode (a stretch of) an audio file to a mono float32 waveform at ``sample_rate_hz``.

    Parameters
    ----------
    path : str or Path
        wav, flac or any format libsndfile reads.
    start_s, end_s : float, optional
        Stretch to read, in seconds from the start of the file; only these frames are
        decoded (the file is seeked, not read whole).
    sample_rate_hz : int
        Output rate in Hz (default 16000, the models' rate); resampled with soxr (VHQ).
    root : str or Path, optional
        Corpus root; a path outside it is refused.

    Returns
    -------
    np.ndarray
        Shape ``(n_samples,)``, float32, full scale ±1.

    Raises
    ------
    AudioError
        Missing, unreadable or truncated file, path outside ``root``, empty or shorter
        than 400 samples at 16 kHz, NaN/inf samples, silent (constant) or clipping-only.
    """
    path = Path(path)
    if root is not None:
        check_inside(path, root)
    if not path.is_file():
        raise AudioError(path, "missing file")
    try:
        truncated = _wav_truncation(path)
        if truncated:
            raise AudioError(path, truncated)
        with sf.SoundFile(str(path)) as handle:
            sr, n_frames = int(handle.samplerate), int(handle.frames)
            if n_frames <= 0:
                raise AudioError(path, "empty: no audio frames")
            first, last = _frame_range(path, start_s, end_s, sr, n_frames)
            if (last - first) * max(int(handle.channels), 1) * 4 > MAX_DECODED_BYTES:
                raise AudioError(path, f"header announces {last - first} frames x {handle.channels} "
                                       f"channel(s) ({(last - first) / sr / 3600:.1f} h): corrupt header "
                                       f"or not an utterance")
            if first:
                handle.seek(first)
            data = handle.read(last - first, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError, TypeError, ValueError, MemoryError) as err:
        if isinstance(err, AudioError):
            raise
        raise AudioError(path, f"unreadable: {err}") from err
    if data.shape[0] < last - first:
        raise AudioError(path, f"truncated: expected {last - first} frames, decoded {data.shape[0]}")
    wave = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    _check_content(path, wave)
    if sr != sample_rate_hz:
        wave = soxr.resample(wave, sr, sample_rate_hz, quality=RESAMPLE_QUALITY).astype(np.float32)
    min_samples = int(math.ceil(MIN_SAMPLES_16K * sample_rate_hz / MODEL_SAMPLE_RATE_HZ))
    if wave.shape[0] < min_samples:
        raise AudioError(path, f"too short: {wave.shape[0]} samples at {sample_rate_hz} Hz "
                               f"(< {min_samples}, one model frame)")
    return np.ascontiguousarray(wave, dtype=np.float32)


def _check_content(path: Path, wave: np.ndarray) -> None:
    if wave.size == 0:
        raise AudioError(path, "empty: no audio frames")
    if not np.all(np.isfinite(wave)):
        n_bad = int(np.count_nonzero(~np.isfinite(wave)))
        raise AudioError(path, f"non-finite samples: {n_bad} NaN/inf values")
    if float(np.ptp(wave)) == 0.0:
        level = "all zero" if float(wave[0]) == 0.0 else f"constant {float(wave[0]):.3f}"
        raise AudioError(path, f"silent: {level}, no sound")
    if bool(np.all(np.abs(wave) >= CLIP_LEVEL)):
        raise AudioError(path, "clipping only: every sample at full scale, no usable sound")


def _optional_float(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def load_row(row: dict, sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ, root: str | Path | None = None
             ) -> np.ndarray:
    """Load the audio of one manifest row (a dict with ``path`` and optional
    ``start``/``end`` in seconds); see :func:`load_audio`."""
    return load_audio(row["path"], _optional_float(row.get("start")), _optional_float(row.get("end")),
                      sample_rate_hz=sample_rate_hz, root=root)


def check_audio(manifest: pl.DataFrame, root: str | Path | None = None,
                sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ, progress: bool = True) -> pl.DataFrame:
    """Decode every utterance of ``manifest`` and return the ones that fail.

    Parameters
    ----------
    manifest : pl.DataFrame
        A manifest (columns ``utt_id``, ``path``, ``start``, ``end``).
    root : str or Path, optional
        Corpus root: paths outside it are reported.
    sample_rate_hz : int
        Rate the audio is decoded to, as the models will see it (default 16000 Hz).
    progress : bool
        Show a progress bar.

    Returns
    -------
    pl.DataFrame
        Columns ``utt_id``, ``path``, ``reason``; one row per bad utterance, empty if all
        decode. One bad file never stops the rest.
    """
    from featstore.console import StepProgress

    bad: list[dict] = []
    rows = manifest.select([c for c in ("utt_id", "path", "start", "end") if c in manifest.columns])
    with StepProgress("checking audio", rows.height, "files", enabled=progress) as bar:
        for row in rows.iter_rows(named=True):
            try:
                load_row(row, sample_rate_hz=sample_rate_hz, root=root)
            except AudioError as err:
                bad.append({"utt_id": row["utt_id"], "path": row["path"], "reason": err.reason})
            except Exception as err:  # noqa: BLE001 - one odd file must not stop the check
                bad.append({"utt_id": row["utt_id"], "path": row["path"],
                            "reason": f"unexpected error: {type(err).__name__}: {err}"})
            bar.advance()
    return pl.DataFrame(bad, schema=BAD_FILES_SCHEMA)


def bad_files_path(manifest_path: str | Path) -> Path:
    """Where the bad-file table of a manifest lives: ``<name>.bad.parquet`` beside it."""
    manifest_path = Path(manifest_path)
    return manifest_path.with_name(f"{manifest_path.name.removesuffix('.parquet')}.bad.parquet")


def save_bad_files(bad: pl.DataFrame, manifest_path: str | Path, manifest_fingerprint: str = "") -> Path:
    """Write the table of :func:`check_audio` beside the manifest (atomically)."""
    return write_parquet(bad.select(list(BAD_FILES_SCHEMA)), bad_files_path(manifest_path),
                         metadata={"manifest_fingerprint": manifest_fingerprint})


def bad_files_fingerprint(manifest_path: str | Path) -> str | None:
    """Manifest fingerprint recorded in the bad-file table, None when there is no table,
    ``""`` when it records none or cannot be read (so it is treated as stale)."""
    path = bad_files_path(manifest_path)
    if not path.exists():
        return None
    try:
        return str(parquet_metadata(path).get("manifest_fingerprint", ""))
    except TableError:
        return ""


def load_bad_files(manifest_path: str | Path) -> dict[str, str]:
    """Utterances that ``prepare --check-audio`` found unusable: ``{utt_id: reason}``.

    Empty when the audio was never checked. Later steps skip these ids and say so.
    """
    path = bad_files_path(manifest_path)
    if not path.exists():
        return {}
    try:
        frame = pl.read_parquet(path)
    except Exception as err:  # polars raises several types for a damaged file
        raise TableError(f"{path}: not a readable bad-file table ({err}); run `featstore prepare "
                         f"--check-audio` again or delete it") from err
    if not {"utt_id", "reason"} <= set(frame.columns):
        raise TableError(f"{path}: not a bad-file table (columns {frame.columns}, expected utt_id, "
                         f"path, reason); run `featstore prepare --check-audio` again or delete it")
    return dict(zip(frame["utt_id"].to_list(), frame["reason"].to_list(), strict=True))
