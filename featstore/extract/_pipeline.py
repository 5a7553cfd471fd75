"""The extraction pipeline: manifest -> background decoding -> batched exact forward ->
pooling on the device -> one writer thread -> crash-safe part files -> one cache file.

Crash safety: the shard's utterances are cut into pieces of ``piece_utts``; each piece is
written to its own part file under a temporary name and renamed when whole (see
``_writer``). A rerun keeps every finished part whose fingerprint matches, extracts only
the rest, and merges the parts in manifest order into ``<cache>.h5.tmp``, which is fsynced
and renamed to ``<cache>.h5``. Batches depend only on the manifest, so an interrupted and
resumed run stores exactly the numbers of an uninterrupted one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import polars as pl
import torch

import featstore
from featstore.cache import (
    CacheError,
    WriterLock,
    cache_fingerprint,
    key_differences,
    manifest_to_json,
    merge_files,
    write_cache,
)
from featstore.console import print_line
from featstore.extract._compute import BatchRunner, compute_dtype, limit_heap_fragmentation, pick_device
from featstore.extract._config import ExtractConfig, ExtractError, shard_file_name
from featstore.extract._memory import activation_shape, batch_activation_bytes, gib
from featstore.extract._plan import (
    Batch,
    auto_piece_utts,
    effective_batch_size,
    pieces,
    plan_batches,
    shard_bounds,
)
from featstore.extract._progress import ExtractProgress
from featstore.extract._writer import PartWriter, part_path
from featstore.malloc import HeapTrimmer
from featstore.manifest import ManifestError, load_manifest, manifest_fingerprint
from featstore.paths import features_path, manifest_path, safe_name

if TYPE_CHECKING:  # pragma: no cover
    from featstore.models import LoadedModel

SAMPLE_RATE_HZ = 16000


@dataclass
class ExtractReport:
    """What a run did. ``failed`` maps utt_id -> reason for the whole shard."""

    path: Path
    status: str  # "extracted" or "up to date"
    n_utts: int
    n_extracted: int = 0
    pieces_total: int = 0
    pieces_reused: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def output_path(config: ExtractConfig, alias: str) -> Path:
    """Where this run's cache goes (a shard file name under ``--shard I/N``)."""
    if config.out is not None:
        return Path(config.out)
    return features_path(safe_name(alias), config.corpus, config.cache_root).with_name(
        shard_file_name(config.corpus, config.shard))


def _versions() -> dict:
    import transformers

    code = featstore.__version__
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(featstore.__file__).parent)
        if head.returncode == 0:
            code = f"{code}+g{head.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return {"torch": torch.__version__, "transformers": transformers.__version__, "h5py": h5py.__version__,
            "numpy": np.__version__, "featstore": code}


def input_norm_of(loaded: LoadedModel) -> dict | None:
    """The SpeechBrain input normalisation a model applies before its encoder (``wavlm-emo``:
    each clip's mean removed), or None; raises :class:`ExtractError` for a kind not supported."""
    settings = (getattr(loaded, "extras", None) or {}).get("input_norm")
    if not settings:
        return None
    if settings.get("norm_type", "sentence") != "sentence":
        raise ExtractError(f"{loaded.alias}: SpeechBrain input normalisation {settings.get('norm_type')!r} is not "
                           "supported (only 'sentence', per clip)")
    return {k: settings[k] for k in ("norm_type", "mean_norm", "std_norm") if k in settings}


def _normalisation(loaded: LoadedModel) -> str:
    steps = []
    norm = input_norm_of(loaded)
    if norm is not None and norm.get("mean_norm", True):
        steps.append("per-clip mean removal" + (" and unit variance" if norm.get("std_norm") else "")
                     + " (SpeechBrain input_norm)")
    if loaded.do_normalize:
        steps.append("per-clip zero-mean unit-variance")
    return ", then ".join(steps) or "none"


def model_alias(config: ExtractConfig, loaded: LoadedModel) -> str:
    """The model's name for this run: ``config.alias`` when given, else the loaded model's."""
    return config.alias or loaded.alias


def build_provenance(config: ExtractConfig, loaded: LoadedModel, manifest: pl.DataFrame, device: torch.device,
                     frame_layers: list[int] | None) -> dict:
    """The provenance a run records (and compares against an existing cache)."""
    encoder_config = loaded.encoder.config
    return {
        "format_version": 1,
        "model_alias": model_alias(config, loaded),
        "model_source": str(loaded.source),
        "model_family": loaded.family,
        "model_language": config.model_language or loaded.language,
        "model_fingerprint": loaded.fingerprint,
        "model_config": json.loads(json.dumps(encoder_config.to_dict(), default=str)),
        "corpus": config.corpus,
        "manifest_fingerprint": manifest_fingerprint(manifest),
        "n_manifest_utts": manifest.height,
        "dtype": config.dtype,
        "n_hidden_states": int(loaded.n_hidden_states),
        "hidden_size": int(loaded.hidden_size),
        "frames": config.frames,
        "frame_layers": frame_layers,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "normalisation": _normalisation(loaded),
        "max_clip_seconds": config.max_clip_seconds,
        "compute_dtype": compute_dtype(device),
        "device": str(device),
        "max_batch_seconds": config.max_batch_seconds,
        "max_batch_memory_gb": config.max_batch_memory_gb,
        "batch_size": effective_batch_size(config.batch_size, device.type),
        "shard": list(config.shard),
        "versions": _versions(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _load_model(config: ExtractConfig, device: torch.device) -> LoadedModel:
    from featstore.models import ModelLoadError, load_model
    from featstore.models.resolve import UnknownModelError

    try:
        return load_model(config.model, alias=config.alias, language=config.model_language, device=str(device),
                          cache_root=config.cache_root)
    except UnknownModelError:
        raise  # a CrosslingError listing the known names: shown as it is
    except (FileNotFoundError, ModelLoadError, ValueError) as err:
        raise ExtractError(str(err)) from err


def _load_manifest(config: ExtractConfig) -> tuple[pl.DataFrame, dict[str, str], list[str]]:
    from featstore.audio import bad_files_fingerprint, bad_files_path, load_bad_files

    path = Path(config.manifest) if config.manifest else manifest_path(config.corpus, config.cache_root)
    try:
        frame = load_manifest(path)
    except (FileNotFoundError, ManifestError) as err:
        raise ExtractError(str(err)) from err
    made_for = bad_files_fingerprint(path)
    if made_for and made_for != manifest_fingerprint(frame):
        # a table from an older manifest could name the wrong files: decode everything instead
        return frame, {}, [f"ignored {bad_files_path(path)}: it was made for another version of the manifest"]
    return frame, load_bad_files(path), []


def _load_rows(rows: list[dict], bad: dict[str, str]) -> list[np.ndarray | str]:
    """Decode and resample rows (runs in a worker thread); a string is a failure reason."""
    from featstore.audio import AudioError, load_row

    out: list[np.ndarray | str] = []
    for row in rows:
        if row["utt_id"] in bad:
            out.append(f"skipped: prepare --check-audio found {bad[row['utt_id']]}")
            continue
        try:
            out.append(load_row(row, sample_rate_hz=SAMPLE_RATE_HZ))
        except AudioError as err:
            out.append(str(err))
        except Exception as err:  # noqa: BLE001 - one odd file must not stop the corpus
            out.append(f"{row['path']}: unexpected error: {type(err).__name__}: {err}")
    return out


def _prefetch(batches: list[Batch], rows: list[dict], bad: dict[str, str], n_workers: int
              ) -> Iterator[tuple[Batch, list[np.ndarray | str]]]:
    """Yield each batch with its decoded audio, decoding a few batches ahead in threads."""
    ahead = 2 * n_workers + 2
    with ThreadPoolExecutor(n_workers, thread_name_prefix="featstore-decode") as pool:
        pending: deque[tuple[Batch, Future]] = deque()
        it = iter(batches)
        for batch in it:
            pending.append((batch, pool.submit(_load_rows, [rows[r] for r in batch.rows], bad)))
            if len(pending) >= ahead:
                break
        while pending:
            batch, fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_load_rows, [rows[r] for r in nxt.rows], bad)))
            yield batch, fut.result()


def _run_resilient(runner: BatchRunner, waves: list[np.ndarray]) -> list:
    """Forward a batch; on out-of-memory split it in halves (down to one clip)."""
    try:
        return runner.run(waves)
    except torch.cuda.OutOfMemoryError:
        if len(waves) == 1:
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(waves) // 2
        return _run_resilient(runner, waves[:half]) + _run_resilient(runner, waves[half:])


def _check_existing(out: Path, prov: dict, overwrite: bool) -> bool:
    """True when ``out`` already holds what was asked for; raise if it holds something else."""
    if not out.exists():
        return False
    try:
        with h5py.File(out, "r") as f:
            stored = json.loads(f.attrs["provenance"])
    except (OSError, KeyError, ValueError) as err:
        if overwrite:
            return False
        raise ExtractError(f"{out}: exists but is not a readable cache ({err}); pass --overwrite to replace it") from err
    diffs = key_differences(stored, prov)
    if not diffs:
        return True
    if overwrite:
        return False
    raise ExtractError(f"{out} was extracted with other settings; refusing to reuse it:\n  "
                       + "\n  ".join(diffs) + "\npass --overwrite to re-extract")


def _drop_leftover_parts(out: Path, prov: dict) -> None:
    """Remove the parts folder of a finished cache (left when a run was killed between
    writing the cache and removing its parts); parts of other settings are kept."""
    parts_dir = out.with_name(out.name + ".parts")
    try:
        plan = json.loads((parts_dir / "plan.json").read_text())
    except (OSError, ValueError):
        return
    if isinstance(plan, dict) and plan.get("fingerprint") == cache_fingerprint(prov):
        shutil.rmtree(parts_dir, ignore_errors=True)


def _finished_parts(parts_dir: Path, prov: dict, ranges: list[tuple[int, int]], ids: list[str],
                    overwrite: bool) -> set[int]:
    """Pieces whose part file is whole and made with the same settings."""
    plan_file = parts_dir / "plan.json"
    plan = {"fingerprint": cache_fingerprint(prov), "provenance": prov,
            "pieces": [[ids[lo], ids[hi - 1], hi - lo] for lo, hi in ranges]}
    if plan_file.exists():
        old = json.loads(plan_file.read_text())
        diffs = key_differences(old.get("provenance", {}), prov)
        if diffs or old.get("pieces") != plan["pieces"]:
            if not overwrite:
                why = diffs or ["the manifest or --piece-utts changed"]
                raise ExtractError(f"{parts_dir} holds an unfinished extraction with other settings:\n  "
                                   + "\n  ".join(why) + "\npass --overwrite to discard it")
            shutil.rmtree(parts_dir)
    parts_dir.mkdir(parents=True, exist_ok=True)
    for tmp in parts_dir.glob("*.tmp"):
        tmp.unlink()  # left by a killed writer: never whole, never read
    tmp_plan = plan_file.with_suffix(".json.tmp")
    tmp_plan.write_text(json.dumps(plan, default=str))
    tmp_plan.replace(plan_file)
    done: set[int] = set()
    for k, (lo, hi) in enumerate(ranges):
        path = part_path(parts_dir, k)
        if not path.exists():
            continue
        try:
            with h5py.File(path, "r") as f:
                same = str(f.attrs["fingerprint"]) == plan["fingerprint"]
                have = sorted([*f["utt_ids"].asstr()[:], *f["failed/utt_ids"].asstr()[:]])
        except (OSError, KeyError):
            same, have = False, []
        if same and have == sorted(ids[lo:hi]):
            done.add(k)
        else:
            path.unlink()
    return done


def shard_rows(manifest: pl.DataFrame, shard: tuple[int, int], piece_utts: int) -> pl.DataFrame:
    """The manifest rows of ``shard``: a contiguous run of whole pieces, balanced by duration.

    Shards hold whole pieces of the unsharded plan, so each batch is the same in a sharded
    and an unsharded run and the merged shards equal the unsharded cache bit for bit.
    """
    ranges = pieces(manifest.height, piece_utts)
    durations = manifest["duration"].to_list()
    piece_s = [sum(durations[lo:hi]) for lo, hi in ranges]
    first, stop = shard_bounds(piece_s, shard[1])[shard[0]]
    if first == stop:
        return manifest.clear()
    lo, hi = ranges[first][0], ranges[stop - 1][1]
    return manifest.slice(lo, hi - lo)


def run_extraction(config: ExtractConfig, model: LoadedModel | None = None, manifest: pl.DataFrame | None = None
                   ) -> ExtractReport:
    """Extract (or finish extracting) one cache; see the module docstring.

    Parameters
    ----------
    config : what to extract
    model : an already loaded ``featstore.models.LoadedModel`` (default: load ``config.model``)
    manifest : the manifest (default: the prepared one of ``config.corpus``)
    """
    t0 = time.perf_counter()
    limit_heap_fragmentation()
    bad: dict[str, str] = {}
    notes: list[str] = []
    if manifest is None:
        manifest, bad, notes = _load_manifest(config)
    try:
        device = pick_device(config.device)
    except ValueError as err:
        raise ExtractError(str(err)) from err
    loaded = model if model is not None else _load_model(config, device)
    if int(getattr(loaded, "sample_rate_hz", SAMPLE_RATE_HZ)) != SAMPLE_RATE_HZ:
        raise ExtractError(f"{loaded.alias}: the model expects {loaded.sample_rate_hz} Hz input; extraction "
                           f"feeds {SAMPLE_RATE_HZ} Hz (every wav2vec 2.0 / WavLM model)")
    encoder = loaded.encoder.to(device).eval()
    n_states = int(loaded.n_hidden_states)
    frame_layers = None
    if config.frames:
        frame_layers = list(config.frame_layers) if config.frame_layers is not None else list(range(n_states))
        if max(frame_layers) >= n_states:
            raise ExtractError(f"--frame-layers {frame_layers}: the model has hidden states 0..{n_states - 1}")
    piece_utts = config.piece_utts or auto_piece_utts(manifest.height)
    prov = build_provenance(config, loaded, manifest, device, frame_layers)
    prov["piece_utts"] = piece_utts
    shard_df = shard_rows(manifest, config.shard, piece_utts)
    out = output_path(config, model_alias(config, loaded))
    with WriterLock(out, wait=config.wait):
        if _check_existing(out, prov, config.overwrite):
            _drop_leftover_parts(out, prov)
            with h5py.File(out, "r") as f:
                failed = dict(zip(f["failed/utt_ids"].asstr()[:], f["failed/reasons"].asstr()[:], strict=True))
            return ExtractReport(out, "up to date", shard_df.height, failed=failed,
                                 wall_s=time.perf_counter() - t0, notes=notes)
        report = _extract_locked(config, loaded, encoder, device, shard_df, bad, prov, frame_layers, out,
                                  piece_utts)
    report.wall_s = time.perf_counter() - t0
    report.notes = notes + report.notes
    return report


def _extract_locked(config: ExtractConfig, loaded: LoadedModel, encoder: torch.nn.Module, device: torch.device,
                    shard_df: pl.DataFrame, bad: dict[str, str], prov: dict, frame_layers: list[int] | None,
                    out: Path, piece_utts: int) -> ExtractReport:
    ids = shard_df["utt_id"].to_list()
    report = ExtractReport(out, "extracted", len(ids))
    if not ids:
        dim, n_states = int(loaded.hidden_size), int(loaded.n_hidden_states)
        empty = np.zeros((n_states, 0, dim), np.float32)
        write_cache(out, [], empty, empty, prov, shard_df, frames=[] if frame_layers else None,
                    frame_layers=frame_layers, dtype=config.dtype)
        return report
    parts_dir = out.with_name(out.name + ".parts")
    ranges = pieces(len(ids), piece_utts)
    done = _finished_parts(parts_dir, prov, ranges, ids, config.overwrite)
    report.pieces_total, report.pieces_reused = len(ranges), len(done)
    rows = shard_df.to_dicts()
    durations = shard_df["duration"].to_list()
    estimate, notes = memory_estimator(config, loaded, device, frame_layers)
    budget = config.max_batch_memory_gb * 2**30
    batches = [b for k, (lo, hi) in enumerate(ranges) if k not in done
               for b in plan_batches(range(lo, hi), durations, k, config.max_batch_seconds,
                                     effective_batch_size(config.batch_size, device.type),
                                     max_batch_bytes=budget if estimate else None, estimate_bytes=estimate)]
    report.notes.extend(notes + over_budget_notes(batches, ids, durations, config.max_batch_memory_gb))
    runner = BatchRunner(encoder, bool(loaded.do_normalize), device, config.dtype, frame_layers,
                         int(config.max_clip_seconds * SAMPLE_RATE_HZ), input_norm=input_norm_of(loaded))
    writer = PartWriter(parts_dir, prov, frame_layers, int(loaded.hidden_size), config.dtype)
    reused_utts = sum(ranges[k][1] - ranges[k][0] for k in done)
    current = None
    trim = HeapTrimmer()  # the resident set drifts up as clips of every length fragment the heap
    with ExtractProgress(len(ids), reused_utts, enabled=config.progress, label=f"{model_alias(config, loaded)} / {config.corpus}") as bar:
        try:
            for batch, loaded_audio in _prefetch(batches, rows, bad, config.n_workers):
                if batch.piece != current:
                    if current is not None:
                        writer.end()
                    current = batch.piece
                    lo, hi = ranges[current]
                    writer.begin(current, manifest_to_json(shard_df.slice(lo, hi - lo)))
                good = [(r, w) for r, w in zip(batch.rows, loaded_audio, strict=True) if not isinstance(w, str)]
                for r, w in zip(batch.rows, loaded_audio, strict=True):
                    if isinstance(w, str):
                        writer.fail(ids[r], w)
                if good:
                    results = _run_resilient(runner, [w for _, w in good])
                    for (r, _), res in zip(good, results, strict=True):
                        writer.add(ids[r], res)
                    del results
                    if device.type == "cpu":  # the forward pass's activations are freed: offer their pages back
                        trim()
                audio_s = sum(len(w) for _, w in good) / SAMPLE_RATE_HZ
                report.audio_s += audio_s
                report.n_extracted += len(good)
                bar.advance(len(batch.rows), audio_s)
            if current is not None:
                writer.end()
        finally:
            writer.close()
    _merge_parts(parts_dir, ranges, ids, shard_df, prov, out, report)
    return report


def memory_estimator(config: ExtractConfig, loaded: LoadedModel, device: torch.device,
                     frame_layers: list[int] | None) -> tuple[Callable[[Sequence[float]], int] | None, list[str]]:
    """The batch planner's estimate of activation bytes for this model and device
    (``featstore.extract._memory``), clips capped at ``--max-clip-seconds`` (longer ones
    run in chunks); ``(None, [note])`` for a model whose config gives no shape."""
    try:
        shape = activation_shape(loaded.encoder.config)
    except (ValueError, TypeError) as err:
        return None, [f"batches are capped by --max-batch-seconds only: {err}"]
    cap_s = config.max_clip_seconds
    stored_bytes = int(np.dtype(config.dtype).itemsize)
    n_frame_layers = len(frame_layers or [])

    def estimate(durations_s: Sequence[float]) -> int:
        return batch_activation_bytes(shape, [min(d, cap_s) for d in durations_s],
                                      per_clip_front_end=device.type == "cpu", n_frame_layers=n_frame_layers,
                                      stored_bytes=stored_bytes)

    return estimate, []


def over_budget_notes(batches: list[Batch], ids: list[str], durations: list[float], budget_gb: float,
                      shown: int = 5) -> list[str]:
    """Print (stderr) and return one line per clip whose estimated activation memory alone
    is over the budget (it runs alone), the first ``shown`` of them, then a count."""
    over = [b for b in batches if b.estimated_bytes > budget_gb * 2**30]
    lines = [f"{ids[b.rows[0]]} ({durations[b.rows[0]]:.1f} s): an estimated {gib(b.estimated_bytes):.1f} GiB of "
             f"activation memory alone, over --max-batch-memory-gb {budget_gb:g}: it runs alone"
             for b in over[:shown]]
    if len(over) > shown:
        lines.append(f"... and {len(over) - shown} more clip(s) over --max-batch-memory-gb {budget_gb:g}, each run alone")
    for line in lines:
        print_line(f"note: {line}", err=True)
    return lines


def _merge_parts(parts_dir: Path, ranges: list[tuple[int, int]], ids: list[str], shard_df: pl.DataFrame,
                 prov: dict, out: Path, report: ExtractReport) -> None:
    paths = [part_path(parts_dir, k) for k in range(len(ranges))]
    failed: dict[str, str] = {}
    for p in paths:
        with h5py.File(p, "r") as f:
            failed.update(zip(f["failed/utt_ids"].asstr()[:], f["failed/reasons"].asstr()[:], strict=True))
    order = [u for u in ids if u not in failed]
    try:
        merge_files(paths, out, order=order, manifest_json=manifest_to_json(shard_df), provenance=prov)
    except CacheError as err:
        raise ExtractError(f"could not assemble {out} from {parts_dir}: {err}") from err
    shutil.rmtree(parts_dir)
    report.failed = {u: failed[u] for u in ids if u in failed}


def extract(config: ExtractConfig, model: object | None = None, manifest: pl.DataFrame | None = None) -> Path:
    """Extract one cache and return its path; with ``config.strict``, raise
    :class:`ExtractError` (after writing the cache) when any utterance failed."""
    report = run_extraction(config, model=model, manifest=manifest)
    if config.strict and report.failed:
        raise ExtractError(f"{len(report.failed)} utterance(s) could not be extracted (--strict): "
                           + ", ".join(list(report.failed)[:5]))
    return report.path
