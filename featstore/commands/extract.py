"""``featstore extract | info | ls | verify | merge | bench``: the feature cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from featstore.cache import CacheError, CacheLockedError, cache_info, list_caches, merge_caches, verify_cache
from featstore.console import cell, check_corpora, error_message, fail, in_option_terms, print_line
from featstore.paths import cache_root as default_cache_root


def _layers(text: Optional[str]) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated layer indices such as 0,6,12, got {text!r}") from None


CONFIG_FIELDS: dict[str, dict[str, str]] = {"extract": {
    name: f"featstore.extract._config:ExtractConfig.{field}" for name, field in (
        ("model", "model"), ("corpus", "corpus"), ("model_language", "model_language"), ("alias", "alias"),
        ("frames", "frames"), ("frame_layers", "frame_layers"), ("dtype", "dtype"),
        ("max_batch_seconds", "max_batch_seconds"), ("max_batch_memory_gb", "max_batch_memory_gb"),
        ("batch_size", "batch_size"),
        ("max_clip_seconds", "max_clip_seconds"), ("piece_utts", "piece_utts"), ("workers", "n_workers"),
        ("device", "device"), ("strict", "strict"), ("overwrite", "overwrite"),
        ("wait", "wait"), ("cache_root", "cache_root"), ("out", "out"))}}
"""Options of ``featstore extract`` that set an :class:`~featstore.extract.ExtractConfig`
field: a test checks each has the field's help and default (the config is not imported
here: it loads torch)."""


def extract(
    model: Annotated[str, typer.Option(help="Registry alias (`featstore models` lists them all: the paper's w2v2-cn, w2v2-de, w2v2-en, wavlm-emo, wavlm-large, and XLS-R, MMS, HuBERT, data2vec-audio, WavLM base, Whisper), a local model folder, or a Hugging Face id already in the local cache")],
    corpus: Annotated[str, typer.Option(help="Prepared corpus name (manifests/<corpus>.parquet under the cache root)")],
    model_language: Annotated[Optional[str], typer.Option("--model-language", help="Language code of a model outside the registry (cn, de, en ...). Default: from the registry.")] = None,
    alias: Annotated[Optional[str], typer.Option("--alias", help="The model's name in the cache folder and results when --model is a folder (a study names it so). Default: the registry alias, else the folder's name.")] = None,
    frames: Annotated[bool, typer.Option("--frames", help="Also store frame-level hidden states (about 1 MB per second of audio for a base model in float16); without it: pooled mean/std only.")] = False,
    frame_layers: Annotated[Optional[str], typer.Option("--frame-layers", help="With --frames: only these hidden states, e.g. 0,6,12. Default: all.")] = None,
    dtype: Annotated[str, typer.Option(help="Stored float type: float16 or float32.")] = "float16",
    max_batch_seconds: Annotated[float, typer.Option("--max-batch-seconds", help="Cap on a batch's padded audio, in seconds.")] = 64.0,
    max_batch_memory_gb: Annotated[float, typer.Option("--max-batch-memory-gb", help="Cap on a batch's estimated peak activation memory, in GiB (sized for a 24 GiB CPU machine; docs/large-models.md). A clip over it on its own runs alone.")] = 6.0,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Cap on clips per batch; 1 = one clip at a time. Default: 1 on CPU (batches only add padding there), no cap on GPU.")] = None,
    max_clip_seconds: Annotated[float, typer.Option("--max-clip-seconds", help="Longer clips run through the model in consecutive chunks of this length, in seconds.")] = 60.0,
    piece_utts: Annotated[Optional[int], typer.Option("--piece-utts", help="Utterances per crash-safe piece (one part file each). Default: about 64 pieces of 8 to 128 utterances.")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Threads decoding audio ahead of the model.")] = 2,
    device: Annotated[str, typer.Option(help="auto (CUDA if present, else CPU), cpu, cuda, cuda:1 ...")] = "auto",
    shard: Annotated[str, typer.Option(help="I/N: extract shard I (0-based) of N, split by cumulative duration, into <corpus>.shard-I-of-N.h5; auto: from RANK/WORLD_SIZE (torchrun) or SLURM array variables.")] = "0/1",
    strict: Annotated[bool, typer.Option("--strict", help="Exit with code 1 when any utterance could not be extracted; without it: record, list and go on.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Re-extract when the cache (or an unfinished run) was made with other settings; without it: refuse.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for another extraction of the same cache instead of refusing.")] = False,
    cache_root: Annotated[Optional[Path], typer.Option("--cache-root", help="Cache root. Default $CROSSLING_CACHE or ./cache.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output file. Default <cache-root>/<model>/<corpus>.h5.")] = None,
) -> None:
    """Extract every hidden state of MODEL over CORPUS into the HDF5 cache (resumable)."""
    from featstore.extract import ExtractConfig, ExtractError, parse_shard, run_extraction  # torch: load late

    console = Console()
    check_corpora(corpus, cache_root)
    try:
        config = ExtractConfig(
            model=model, corpus=corpus, cache_root=cache_root, model_language=model_language, alias=alias,
            max_batch_seconds=max_batch_seconds, max_batch_memory_gb=max_batch_memory_gb, batch_size=batch_size,
            frames=frames,
            frame_layers=_layers(frame_layers), dtype=dtype, device=device, shard=parse_shard(shard),
            strict=strict, overwrite=overwrite, wait=wait, max_clip_seconds=max_clip_seconds,
            piece_utts=piece_utts, n_workers=workers, out=out,
        )
    except ValueError as err:
        raise typer.BadParameter(in_option_terms(str(err), CONFIG_FIELDS["extract"])) from err
    try:
        report = run_extraction(config)
    except (ExtractError, CacheError, CacheLockedError, OSError) as err:  # OSError: disk full, permissions
        fail(error_message(err))
    for note in report.notes:
        print_line(f"note: {note}")
    if report.status == "up to date":
        print_line(f"{report.path}: already extracted with these settings, nothing to do")
    else:
        reused = f", {report.pieces_reused} of {report.pieces_total} pieces reused from an earlier run" if report.pieces_reused else ""
        rt = report.audio_s / report.wall_s if report.wall_s else 0.0
        print_line(f"wrote {report.path}: {report.n_utts - len(report.failed)} utterances "
                   f"({report.n_extracted} extracted now{reused}; {report.audio_s / 3600:.2f} h audio, "
                   f"{report.wall_s:.1f} s, {rt:.1f}x real time)")
    if report.failed:
        table = Table(title=f"{len(report.failed)} utterance(s) not extracted")
        table.add_column("utt_id")
        table.add_column("reason")
        for uid, reason in report.failed.items():
            table.add_row(cell(uid), cell(reason))
        console.print(table)
        if strict:
            raise typer.Exit(code=1)


def info(
    path: Annotated[list[str], typer.Argument(help="Cache file, shard files, or a glob of shards (quoted).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Counts, shapes, fingerprints and failed items of a cache."""
    console = Console()
    try:
        data = cache_info(path if len(path) > 1 else path[0])
    except (CacheError, OSError) as err:
        fail(error_message(err))
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    table = Table(show_header=False)
    for key in ("paths", "model", "model_source", "model_fingerprint", "corpus", "manifest_fingerprint", "fingerprint",
                "dtype", "n_utts", "n_failed", "n_hidden_states", "dim", "has_frames", "frame_layers", "total_frames",
                "audio_seconds", "size_bytes", "shapes"):
        table.add_row(key, cell(data[key]))
    console.print(table)
    for uid, reason in data["failed"].items():
        print_line(f"failed: {uid}: {reason}")


def ls(
    cache_root: Annotated[Optional[Path], typer.Option("--cache-root", help="Cache root. Default $CROSSLING_CACHE or ./cache.")] = None,
) -> None:
    """List the caches under the cache root: model, corpus, utterances, size, status."""
    rows = list_caches(default_cache_root(cache_root))
    table = Table(title=f"caches under {default_cache_root(cache_root)}")
    for col in ("model", "corpus", "n_utts", "n_failed", "frames", "dtype", "shard", "size", "status", "path"):
        table.add_column(col)
    for r in rows:
        table.add_row(*[cell(r.get(c, "")) for c in ("model", "corpus", "n_utts", "n_failed", "frames", "dtype", "shard")],
                      f"{r['size_bytes'] / 2**20:.1f} MiB", cell(r["status"]), cell(r["path"]))
    Console().print(table)


def verify(
    path: Annotated[list[Path], typer.Argument(help="Cache file(s) to check.")],
) -> None:
    """Open every dataset of a cache and check shapes, offsets, values and ids; exit 1 on problems."""
    bad = 0
    for p in path:
        problems = verify_cache(p)
        if problems:
            bad += 1
            print_line(f"{p}: {len(problems)} problem(s)")
            for problem in problems:
                print_line(f"  - {problem}")
        else:
            print_line(f"{p}: ok")
    if bad:
        raise typer.Exit(code=1)


def merge(
    shards: Annotated[list[str], typer.Argument(help="Shard files of one extraction (or a quoted glob).")],
    out: Annotated[Path, typer.Option("--out", help="Merged cache file to write.")],
) -> None:
    """Merge the shard files of one extraction into one cache file."""
    try:
        path = merge_caches(shards if len(shards) > 1 else shards[0], out)
    except (CacheError, OSError) as err:
        fail(error_message(err))
    print_line(f"wrote {path}")


def _clip_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split("-"))
    except ValueError:
        raise typer.BadParameter(f"expected SHORTEST-LONGEST in seconds such as 1-20, got {text!r}") from None
    return lo, hi


BENCH_FAMILY_NAMES = ("wav2vec2", "wavlm", "hubert", "data2vec-audio", "whisper", "xlsr")
"""``featstore.extract._bench_models.BENCH_FAMILIES`` (not imported here: it loads torch;
a test checks they agree)."""


def bench(
    n_utts: Annotated[int, typer.Option("--n-utts", help="Synthetic clips; the memory check also runs 4x as many.")] = 200,
    model_size: Annotated[str, typer.Option("--model-size", help="base (the family's real size with random weights: 12 layers x 768 for wav2vec2, 24 x 1024 for xlsr) or tiny (a quick check).")] = "base",
    family: Annotated[str, typer.Option("--family", help=f"Model family: {', '.join(BENCH_FAMILY_NAMES)} (xlsr: wav2vec 2.0 at XLS-R / MMS 300M size).")] = "wav2vec2",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    frames: Annotated[bool, typer.Option("--frames", help="Also time an extraction that stores every frame.")] = False,
    max_batch_seconds: Annotated[float, typer.Option("--max-batch-seconds", help="Cap on a batch's padded audio, seconds.")] = 64.0,
    clip_seconds: Annotated[str, typer.Option("--clip-seconds", help="Range of the clips' lengths, SHORTEST-LONGEST in seconds; 1-8: log-normal lengths (median 3 s) clipped to it; any other range: log-uniform over it.")] = "1-8",
    seed: Annotated[int, typer.Option(help="Seed of the synthetic clips and the random model.")] = 0,
    memory: Annotated[bool, typer.Option("--memory/--no-memory", help="Measure peak memory on N and 4N clips (two extra runs in fresh processes).")] = True,
    naive: Annotated[bool, typer.Option("--naive/--no-naive", help="Also time the paper code's loop (c) (never for whisper).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Benchmark extraction: forward alone, ours end to end, the paper code's naive loop, memory, sizes."""
    from featstore.extract.bench import BenchConfig, format_bench, run_bench

    try:
        config = BenchConfig(n_utts=n_utts, model_size=model_size, device=device, frames=frames,
                             max_batch_seconds=max_batch_seconds, seed=seed, progress=not as_json,
                             memory=memory, family=family, clip_seconds=_clip_range(clip_seconds), naive=naive)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    result = run_bench(config)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print_line(format_bench(result))


def cache_size(
    model: Annotated[Optional[str], typer.Option("--model", help="Registry alias whose layers and width to use. Without --model or --layers: every family's usual sizes.")] = None,
    layers: Annotated[Optional[int], typer.Option("--layers", help="Transformer layers of a model outside the registry (with --width).", min=1)] = None,
    width: Annotated[Optional[int], typer.Option("--width", help="Hidden size of a model outside the registry (with --layers).", min=1)] = None,
    frame_layers: Annotated[Optional[str], typer.Option("--frame-layers", help="Hidden states stored as frames, e.g. 0,6,12; without it: every state.")] = None,
    dtype: Annotated[str, typer.Option(help="Stored float type: float16 or float32.")] = "float16",
    clip_seconds: Annotated[float, typer.Option("--clip-seconds", help="Typical clip length, for the pooled statistics per hour (one mean and std per clip).", min=0.1)] = 3.0,
) -> None:
    """Cache size per hour of audio: pooled statistics and frames, for a model or every family."""
    from featstore.extract import DTYPE_BYTES, FAMILY_SHAPES, cache_bytes_per_hour

    if dtype not in DTYPE_BYTES:  # checked once here, not per family: one line naming the value
        raise typer.BadParameter(f"{dtype!r} is not a stored float type; allowed: {', '.join(DTYPE_BYTES)}",
                                 param_hint="--dtype")
    if (layers is None) != (width is None):
        raise typer.BadParameter("--layers and --width go together")
    if model is not None and layers is not None:
        raise typer.BadParameter("give --model or --layers/--width, not both")
    if model is not None:
        from featstore.errors import unknown_name
        from featstore.models.registry import MODELS, REPOSITORY_ALIASES

        if model not in MODELS:
            raise typer.BadParameter(str(unknown_name("model", model, MODELS, known_as=REPOSITORY_ALIASES,
                                                      known_as_label="Hugging Face repository")))
        shapes = [(model, MODELS[model].n_layers, MODELS[model].hidden_size)]
    elif layers is not None:
        shapes = [(f"{layers} layers x {width}", layers, width)]
    else:
        shapes = [(f.name, f.n_layers, f.width) for f in FAMILY_SHAPES]
    chosen = _layers(frame_layers)
    rows = []
    for name, n_layers, dim in shapes:
        try:
            rows.append((name, n_layers, dim, cache_bytes_per_hour(n_layers, dim, dtype, frame_layers=chosen,
                                                                   frames=True, clip_s=clip_seconds)))
        except ValueError as err:
            raise typer.BadParameter(f"{name}: {err}") from err
    gb = 1e9
    print_line(f"cache size per hour of audio ({dtype}; pooled: one mean and std per {clip_seconds:g} s clip; "
               f"frames: 50 per second, {'hidden states ' + frame_layers if chosen else 'every hidden state'})")
    for name, n_layers, dim, sizes in rows:
        print_line(f"{n_layers:3d} x {dim:<5d} pooled {sizes['pooled'] / gb:6.3f} GB/h, frames {sizes['frames'] / gb:7.2f} "
                   f"GB/h, total {sizes['total'] / gb:7.2f} GB/h  {name}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("extract")(extract)
    app.command("info")(info)
    app.command("ls")(ls)
    app.command("verify")(verify)
    app.command("merge")(merge)
    app.command("bench")(bench)
    app.command("cache-size")(cache_size)
