"""``finetune`` commands: ``peft`` (train and test), ``predict``, ``eval`` and ``bench``.

Each command parses its options, builds a typed config, calls one library function and
prints; errors the user can fix end with a clear message and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

_console = Console(stderr=True)


def _fail(message: str) -> None:
    _console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=2)


def peft(
    model: Annotated[str, typer.Option(help="Model alias (w2v2-cn, w2v2-de, w2v2-en, wavlm-emo) or model folder.")],
    train: Annotated[str, typer.Option(help="Training corpus (stage 2 of a two-stage run), e.g. esd.")],
    test: Annotated[str, typer.Option(help="Test corpus, e.g. pavoque.")],
    layer: Annotated[str, typer.Option(help="k: fine-tune up to layer k (1-based), or 'best' from `probes layerwise` (default: best).")] = "best",
    strategy: Annotated[str, typer.Option(help="lora|ba|wg|lora+ba|lora+wg|ba+wg|lora+ba+wg (default: lora+ba+wg).")] = "lora+ba+wg",
    two_stage: Annotated[bool, typer.Option("--two-stage/--one-stage", help="Train on --source first, then on --train (default: one stage).")] = False,
    source: Annotated[str | None, typer.Option(help="Stage-1 corpus of a two-stage run (default: none).")] = None,
    scope: Annotated[str, typer.Option(help="every-layer (adapters in layers 1..k) or target-layer (layer k only) (default: every-layer).")] = "every-layer",
    head: Annotated[str, typer.Option(help="Classification head: mlp (768-128-16-4) or linear (default: mlp).")] = "mlp",
    folds: Annotated[int, typer.Option(help="Run folds 0..N-1 (default: 5).")] = 5,
    fold: Annotated[list[int] | None, typer.Option(help="Run only this fold (repeatable; default: all of --folds).")] = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs per stage (default: 100).")] = 100,
    patience: Annotated[int, typer.Option(help="Stop after this many epochs without a lower validation loss (default: 10).")] = 10,
    batch_size: Annotated[int, typer.Option(help="Clips per batch (default: 16).")] = 16,
    accumulate: Annotated[int, typer.Option(help="Batches per optimiser step (gradient accumulation; default: 1).")] = 1,
    lr: Annotated[float, typer.Option(help="AdamW learning rate (default: 1e-4).")] = 1e-4,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, batch order and dropout (default: 0).")] = 0,
    precision: Annotated[str, typer.Option(help="auto (bf16/fp16 on CUDA, fp32 on CPU), fp32, bf16 or fp16 (default: auto).")] = "auto",
    use_cache: Annotated[bool, typer.Option("--use-cache/--no-use-cache", help="Read the frozen front end from the float32 frame cache when present (default: use).")] = True,
    cache_root: Annotated[Path | None, typer.Option(help="Cache root (default: $CROSSLING_CACHE or ./cache).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <cache root>/runs/finetune/<model>/<condition>).")] = None,
    device: Annotated[str, typer.Option(help="Torch device, e.g. cpu or cuda (default: cpu).")] = "cpu",
    language: Annotated[str | None, typer.Option(help="Language of an unregistered model folder (default: from the registry).")] = None,
) -> None:
    """Fine-tune a model with PEFT adapters on one condition over its folds and test it.

    Writes results (the probes' table format plus strategy/two_stage/scope), per-utterance
    predictions, the per-epoch log, a Table-I-shaped summary and one checkpoint per fold.
    """
    from featstore.audio import AudioError
    from featstore.models import ModelLoadError, ModelNotFoundError
    from finetune.run import FinetuneConfig, FinetuneError, run_finetune
    from finetune.train import TrainConfig

    try:
        config = FinetuneConfig(
            model=model, train_corpus=train, test_corpus=test, layer=layer, strategy=strategy, scope=scope,
            head=head, two_stage=two_stage, source_corpus=source,
            folds=tuple(fold) if fold else tuple(range(folds)),
            train=TrainConfig(lr=lr, batch_size=batch_size, max_epochs=epochs, patience=patience,
                              accumulate=accumulate, seed=seed, precision=precision),
            use_cache=use_cache, cache_root=str(cache_root) if cache_root else None,
            out=str(out) if out else None, device=device, language=language,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_console) as progress:
        task = progress.add_task("epochs", total=None)

        def on_epoch(row: dict) -> None:
            progress.update(task, advance=1, description=(
                f"fold {row['fold']} {row['stage']} epoch {row['epoch']}: "
                f"valid loss {row['valid_loss']:.4f} acc {row['valid_acc']:.3f}"))

        try:
            frame = run_finetune(config, log=progress.console.print, on_epoch=on_epoch)
        except (FinetuneError, ModelNotFoundError, ModelLoadError, FileNotFoundError, AudioError) as err:
            _fail(str(err))
    summary = frame.select("fold", "ua", "wa", "macro_f1", "epochs")
    typer.echo(summary)
    typer.echo(f"UA mean {frame['ua'].mean():.4f} ± {frame['ua'].std() or 0.0:.4f} over {len(frame)} fold(s)")


def predict(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint folder (adapters.safetensors + config.json).")],
    audio: Annotated[list[Path], typer.Argument(help="Audio files to classify.")],
    csv: Annotated[Path | None, typer.Option(help="Also write the predictions to this CSV file (default: none).")] = None,
    device: Annotated[str, typer.Option(help="Torch device (default: cpu).")] = "cpu",
    batch_size: Annotated[int, typer.Option(help="Clips per batch (default: 16).")] = 16,
) -> None:
    """Print the predicted emotion and the class probabilities of each audio file."""
    from featstore.audio import AudioError
    from featstore.models import ModelLoadError, ModelNotFoundError
    from finetune.checkpoint import CheckpointError
    from finetune.predict import predict_files

    missing = [str(p) for p in audio if not p.exists()]
    if missing:
        _fail(f"no such audio file(s): {', '.join(missing)}")
    try:
        frame = predict_files(checkpoint, audio, device=device, batch_size=batch_size)
    except (AudioError, CheckpointError, ModelNotFoundError, ModelLoadError) as err:
        _fail(str(err))
    probs = [c for c in frame.columns if c.startswith("prob_")]
    for row in frame.iter_rows(named=True):
        detail = "  ".join(f"{c[5:]} {row[c]:.3f}" for c in probs)
        typer.echo(f"{row['path']}\t{row['label']}\t{detail}")
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        tmp = csv.with_name(csv.name + ".tmp")
        frame.write_csv(tmp)
        tmp.replace(csv)
        typer.echo(f"wrote {csv}")


def eval_command(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint folder (adapters.safetensors + config.json).")],
    corpus: Annotated[str, typer.Option(help="Prepared corpus to test on.")],
    fold: Annotated[int | None, typer.Option(help="Test part of this fold only (default: every 4-class utterance).")] = None,
    cache_root: Annotated[Path | None, typer.Option(help="Cache root (default: $CROSSLING_CACHE or ./cache).")] = None,
    predictions: Annotated[Path | None, typer.Option(help="Write per-utterance predictions to this parquet file (default: none).")] = None,
    device: Annotated[str, typer.Option(help="Torch device (default: cpu).")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON (default: text).")] = False,
) -> None:
    """Test a fine-tuned checkpoint on a prepared corpus: UA, WA, F1, per class, confusion."""
    from featstore.audio import AudioError
    from featstore.models import ModelLoadError, ModelNotFoundError
    from finetune.checkpoint import CheckpointError
    from finetune.predict import evaluate_checkpoint, metrics_text

    try:
        metrics, preds = evaluate_checkpoint(checkpoint, corpus, fold, str(cache_root) if cache_root else None,
                                             device=device)
    except (AudioError, CheckpointError, ModelNotFoundError, ModelLoadError, FileNotFoundError, ValueError) as err:
        _fail(str(err))
    if predictions is not None:
        predictions.parent.mkdir(parents=True, exist_ok=True)
        tmp = predictions.with_name(predictions.name + ".tmp")
        preds.write_parquet(tmp)
        tmp.replace(predictions)
    typer.echo(json.dumps(metrics, indent=2) if as_json else metrics_text(metrics))


def bench(
    family: Annotated[str, typer.Option(help="wav2vec2 or wavlm (default: wav2vec2).")] = "wav2vec2",
    size: Annotated[str, typer.Option(help="base (12 x 768, random weights) or tiny (default: base).")] = "base",
    layer: Annotated[int, typer.Option(help="k (default: 6).")] = 6,
    strategy: Annotated[str, typer.Option(help="Adapter methods (default: lora+ba+wg).")] = "lora+ba+wg",
    n_utts: Annotated[int, typer.Option(help="Clips per epoch (default: 64).")] = 64,
    duration_s: Annotated[float, typer.Option(help="Mean clip length in seconds, +-30% (default: 3.0).")] = 3.0,
    batch_size: Annotated[int, typer.Option(help="Clips per batch (default: 16).")] = 16,
    epochs: Annotated[int, typer.Option(help="Timed epochs after one warm-up (default: 2).")] = 2,
    device: Annotated[str, typer.Option(help="Torch device (default: cpu).")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (default: text).")] = False,
) -> None:
    """Time per epoch with the frozen front end recomputed vs read from the frame cache
    (targets at base size, k = 6: >= 1.3x every-layer, >= 3x target-layer)."""
    from finetune.bench import BenchConfig, run_bench

    try:
        config = BenchConfig(family=family, size=size, layer=layer, strategy=strategy, n_utts=n_utts,
                             duration_s=duration_s, batch_size=batch_size, epochs=epochs, device=device)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    try:
        rows = run_bench(config)
    except ValueError as err:
        _fail(str(err))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['scope']:13s} k={r['layer']}: recompute {r['recompute_s']:.3f} s/epoch, "
                   f"cached {r['cached_s']:.3f} s/epoch -> {r['speedup']:.2f}x (cache reads {r['read_s']:.3f} s); "
                   f"target >= {r['target']}x at base size, k = 6: {'pass' if r['meets_target'] else 'FAIL'}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("peft")(peft)
    app.command("predict")(predict)
    app.command("eval")(eval_command)
    app.command("bench")(bench)
