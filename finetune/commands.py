"""``finetune`` commands: ``peft`` (train and test), ``predict``, ``eval`` and ``bench``.

Each command parses its options, builds a typed config, calls one library function and
prints; errors the user can fix end with a clear message and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from featstore.console import aliased, check_corpora, in_option_terms, is_terminal, print_line, resolve_device
from featstore.console import fail as _fail
from featstore.io import atomic_write

_FT = "finetune.run:FinetuneConfig"
_TR = "finetune.train:TrainConfig"
CONFIG_FIELDS: dict[str, dict[str, str]] = {
    "peft": {
        "model": f"{_FT}.model", "train_corpus": f"{_FT}.train_corpus", "test_corpus": f"{_FT}.test_corpus",
        "layer": f"{_FT}.layer", "strategy": f"{_FT}.strategy", "scope": f"{_FT}.scope", "head": f"{_FT}.head",
        "two_stage": f"{_FT}.two_stage", "source_corpus": f"{_FT}.source_corpus", "use_cache": f"{_FT}.use_cache",
        "model_language": f"{_FT}.language", "alias": f"{_FT}.alias",
        "protocol": f"{_FT}.protocol", "valid_corpus": f"{_FT}.valid_corpus",
        "two_stage_schedule": f"{_FT}.two_stage_schedule", "layer_means": f"{_FT}.layer_means",
        "train_mode_regularisation": f"{_FT}.train_mode_regularisation", "best_layer_by": f"{_FT}.best_layer_by",
        "probe_results": f"{_FT}.probe_results",
        "equal_loss_resets_patience": f"{_TR}.equal_loss_resets_patience",
        "lr": f"{_TR}.lr", "eps": f"{_TR}.eps", "weight_decay": f"{_TR}.weight_decay",
        "batch_size": f"{_TR}.batch_size", "max_epochs": f"{_TR}.max_epochs", "patience": f"{_TR}.patience",
        "accumulate": f"{_TR}.accumulate", "seed": f"{_TR}.seed", "precision": f"{_TR}.precision",
        "lora_r": "finetune.tuners.lora.config:LoraSettings.r",
        "lora_alpha": "finetune.tuners.lora.config:LoraSettings.alpha",
        "lora_dropout": "finetune.tuners.lora.config:LoraSettings.dropout",
        "ba_reduction": "finetune.tuners.ba.config:BASettings.reduction",
        "ba_zero_init_up": "finetune.tuners.ba.config:BASettings.zero_init_up",
        "wg_init_logit": "finetune.tuners.wg.config:WGSettings.init_logit",
    },
}
"""Options that set a config field, as ``module:Class.field``: a test checks that each
has the field's default and help (the configs are not imported here: they load torch)."""

_DEVICE_HELP = "Torch device: auto (CUDA if present, else CPU), cpu, cuda, cuda:1 ..."


def peft(
    model: Annotated[str, typer.Option(help="model alias or folder")],
    train_corpus: Annotated[str, typer.Option(help="corpus trained on (stage 2 of a two-stage run)")],
    test_corpus: Annotated[str, typer.Option(help="corpus tested on")],
    layer: Annotated[str, typer.Option(help="k >= 1, 'best' from the probes, or 'best-smallest' (smallest layer of the best-layer set)")] = "best",
    strategy: Annotated[str, typer.Option(help="adapter methods joined by '+'")] = "lora+ba+wg",
    two_stage: Annotated[bool, typer.Option("--two-stage/--one-stage", help="train on source_corpus first")] = False,
    source_corpus: Annotated[str | None, typer.Option(help="stage-1 corpus of a two-stage run")] = None,
    scope: Annotated[str, typer.Option(help="every-layer or target-layer")] = "every-layer",
    head: Annotated[str, typer.Option(help="mlp or linear")] = "mlp",
    protocol: Annotated[str, typer.Option(help="defaults of the six protocol options: text (the paper's text) or authors (the authors' code); an option given explicitly wins")] = "text",
    valid_corpus: Annotated[str | None, typer.Option(help="validation corpus (early stopping, kept epoch): train (each stage's own training corpus), test (the test corpus, in every stage) or a corpus name; unset: the protocol's (text train, authors test)")] = None,
    two_stage_schedule: Annotated[str | None, typer.Option(help="converge (stage 2 after stage 1 converges, from its best weights, up to max_epochs more) or authors (switch at early stop or epoch max_epochs // 2, from the last weights, kept epoch from either stage, max_epochs in all); unset: the protocol's (text converge, authors authors)")] = None,
    layer_means: Annotated[str | None, typer.Option(help="what layer k means: hidden-state (keep k layers, pool hidden state k) or authors (keep k + 1 layers, pool hidden state k + 1); unset: the protocol's (text hidden-state, authors authors)")] = None,
    train_mode_regularisation: Annotated[bool | None, typer.Option(
        "--train-mode-regularisation/--no-train-mode-regularisation",
        help="train the whole encoder in train mode: the checkpoint's SpecAugment, LayerDrop and dropouts apply (inputs from audio, not the frame cache); unset: the protocol's (text off, authors on)")] = None,
    best_layer_by: Annotated[str | None, typer.Option(help="layer best: setting (one layer per model and setting, UA averaged over corpora) or target (the probes' best layer for this test corpus); unset: the protocol's (text setting, authors target)")] = None,
    probe_results: Annotated[Path | None, typer.Option(help="probes' results.parquet for best_layer_by target (default: the newest under <cache root>/runs/probes with rows for this model, setting and test corpus)")] = None,
    equal_loss_resets_patience: Annotated[bool | None, typer.Option(
        "--equal-loss-resets-patience/--lower-loss-resets-patience",
        help="a validation loss equal to the lowest also resets patience (<=, the authors' code) instead of only a lower one (<); unset: the protocol's (text <, authors <=)")] = None,
    folds: Annotated[int, typer.Option(help="Run folds 0..N-1.")] = 5,
    fold: Annotated[list[int] | None, typer.Option(metavar="K", help="Run only this fold (repeatable); default: all of --folds.")] = None,
    max_epochs: Annotated[int, typer.Option(help="epochs per stage at most")] = 100,
    patience: Annotated[int, typer.Option(help="epochs without a lower validation loss before stopping")] = 10,
    batch_size: Annotated[int | None, typer.Option(help="clips per optimiser step (before accumulation); unset: the protocol's (text 16, authors 1)")] = None,
    accumulate: Annotated[int, typer.Option(help="batches whose gradients add up before a step")] = 1,
    lr: Annotated[float, typer.Option(help="AdamW learning rate")] = 1e-4,
    eps: Annotated[float, typer.Option(help="AdamW epsilon")] = 1e-8,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay")] = 1e-5,
    seed: Annotated[int, typer.Option(help="seed of batch order and dropout")] = 0,
    precision: Annotated[str, typer.Option(help="auto (bf16/fp16 on CUDA, fp32 on CPU), fp32, bf16, fp16")] = "auto",
    lora_r: Annotated[int, typer.Option(help="LoRA rank of the low-rank update")] = 8,
    lora_alpha: Annotated[float, typer.Option(help="LoRA alpha: scaling numerator (update scaled by alpha / r)")] = 16.0,
    lora_dropout: Annotated[float, typer.Option(help="LoRA dropout on the branch input")] = 0.1,
    ba_reduction: Annotated[int, typer.Option(help="hidden size / bottleneck size")] = 16,
    ba_zero_init_up: Annotated[bool, typer.Option(help="start the up-projection at zero (adapter = identity at first); "
                                                       "the paper's code uses PyTorch's default init")] = False,
    wg_init_logit: Annotated[float, typer.Option(help="initial gate logit of every dimension (sigmoid(1) = 0.73, the "
                                                      "paper's code's ones-initialised gate)")] = 1.0,
    use_cache: Annotated[bool, typer.Option("--use-cache/--no-use-cache", help="read frozen states from the frame cache")] = True,
    cache_root: Annotated[Path | None, typer.Option(help="Cache root; default $CROSSLING_CACHE or ./cache.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder; default <cache root>/runs/finetune/<model>/<condition>.")] = None,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
    model_language: Annotated[str | None, typer.Option(help="model language for unregistered models")] = None,
    alias: Annotated[str | None, typer.Option(help="model name for caches, results and best layers (default: the model's)")] = None,
) -> None:
    """Fine-tune a model with PEFT adapters on one condition over its folds and test it.

    Writes results (the probes' table format plus strategy/two_stage/scope), per-utterance
    predictions, the per-epoch log, a Table-I-shaped summary and one checkpoint per fold.
    """
    check_corpora([c for c in (train_corpus, test_corpus, source_corpus, valid_corpus)
                   if c and c not in ("train", "test")], cache_root)
    from featstore.audio import AudioError
    from featstore.models import ModelLoadError, ModelNotFoundError
    from finetune.run import FinetuneConfig, FinetuneError, run_finetune
    from finetune.train import TrainConfig
    from finetune.tuners.ba.config import BASettings
    from finetune.tuners.lora.config import LoraSettings
    from finetune.tuners.wg.config import WGSettings

    try:
        config = FinetuneConfig(
            model=model, train_corpus=train_corpus, test_corpus=test_corpus, layer=layer, strategy=strategy,
            scope=scope, head=head, two_stage=two_stage, source_corpus=source_corpus, protocol=protocol,
            valid_corpus=valid_corpus, two_stage_schedule=two_stage_schedule, layer_means=layer_means,
            train_mode_regularisation=train_mode_regularisation, best_layer_by=best_layer_by,
            probe_results=str(probe_results) if probe_results else None,
            folds=tuple(fold) if fold else tuple(range(folds)),
            train=TrainConfig(lr=lr, eps=eps, weight_decay=weight_decay, batch_size=batch_size,
                              max_epochs=max_epochs, patience=patience, accumulate=accumulate, seed=seed,
                              precision=precision, equal_loss_resets_patience=equal_loss_resets_patience),
            lora=LoraSettings(r=lora_r, alpha=lora_alpha, dropout=lora_dropout),
            ba=BASettings(reduction=ba_reduction, zero_init_up=ba_zero_init_up),
            wg=WGSettings(init_logit=wg_init_logit),
            use_cache=use_cache, cache_root=str(cache_root) if cache_root else None,
            out=str(out) if out else None, device=resolve_device(device), language=model_language, alias=alias,
        )
    except ValueError as err:
        raise typer.BadParameter(in_option_terms(str(err), CONFIG_FIELDS["peft"])) from err
    from featstore.console import EpochProgress

    progress = EpochProgress(lambda line: print_line(line, err=True), len(config.folds), max_epochs, 2 if two_stage else 1,
                             every_s=0.0 if is_terminal() else 5.0)
    try:
        frame = run_finetune(config, log=lambda line: print_line(line, err=True), on_epoch=progress)
    except (FinetuneError, ModelNotFoundError, ModelLoadError, FileNotFoundError, AudioError) as err:
        _fail(str(err))
    for r in frame.iter_rows(named=True):  # the results keep fractions; the console shows %
        print_line(f"fold {r['fold']}: UA {100 * r['ua']:.1f} %, WA {100 * r['wa']:.1f} %, "
                   f"macro-F1 {100 * r['macro_f1']:.1f} %, {r['epochs']} epochs")
    spread = f" ± {100 * frame['ua'].std():.1f} (std)" if len(frame) > 1 else ""
    print_line(f"UA mean {100 * frame['ua'].mean():.1f} %{spread} over {len(frame)} fold(s)")


def predict(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint folder (adapters.safetensors + config.json).")],
    audio: Annotated[list[Path], typer.Argument(help="Audio files to classify.")],
    csv: Annotated[Path | None, typer.Option(help="Also write the predictions to this CSV file.")] = None,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
    batch_size: Annotated[int, typer.Option(help="Clips per batch.")] = 16,
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
        frame = predict_files(checkpoint, audio, device=resolve_device(device), batch_size=batch_size)
    except (AudioError, CheckpointError, ModelNotFoundError, ModelLoadError) as err:
        _fail(str(err))
    probs = [c for c in frame.columns if c.startswith("prob_")]
    for row in frame.iter_rows(named=True):
        detail = "  ".join(f"{c[5:]} {row[c]:.3f}" for c in probs)
        typer.echo(f"{row['path']}\t{row['label']}\t{detail}")
    if csv is not None:
        atomic_write(csv, frame.write_csv)
        typer.echo(f"wrote {csv}")


def eval_command(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint folder (adapters.safetensors + config.json).")],
    corpus: Annotated[str, typer.Option(help="Prepared corpus to test on.")],
    fold: Annotated[int | None, typer.Option(help="Test part of this fold only; default: every 4-class utterance.")] = None,
    cache_root: Annotated[Path | None, typer.Option(help="Cache root; default $CROSSLING_CACHE or ./cache.")] = None,
    predictions: Annotated[Path | None, typer.Option(help="Write per-utterance predictions to this parquet file.")] = None,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON; default: text.")] = False,
) -> None:
    """Test a fine-tuned checkpoint on a prepared corpus: UA, WA, F1, per class, confusion."""
    check_corpora(corpus, cache_root)
    from featstore.audio import AudioError
    from featstore.models import ModelLoadError, ModelNotFoundError
    from finetune.checkpoint import CheckpointError
    from finetune.predict import evaluate_checkpoint, metrics_text

    try:
        metrics, preds = evaluate_checkpoint(checkpoint, corpus, fold, str(cache_root) if cache_root else None,
                                             device=resolve_device(device))
    except (AudioError, CheckpointError, ModelNotFoundError, ModelLoadError, FileNotFoundError, ValueError) as err:
        _fail(str(err))
    if predictions is not None:
        atomic_write(predictions, preds.write_parquet)
    typer.echo(json.dumps(metrics, indent=2) if as_json else metrics_text(metrics))


def bench(
    family: Annotated[str, typer.Option(help="A model family: wav2vec2, wavlm, hubert, data2vec-audio.")] = "wav2vec2",
    model_size: Annotated[str, typer.Option(help="base (12 x 768, random weights) or tiny.")] = "base",
    layer: Annotated[int, typer.Option(help="k: adapters up to this layer.")] = 6,
    strategy: Annotated[str, typer.Option(help="Adapter methods joined by '+'.")] = "lora+ba+wg",
    n_utts: Annotated[int, typer.Option(help="Clips per epoch.")] = 64,
    duration_s: Annotated[float, typer.Option(help="Mean clip length in seconds, +-30%.")] = 3.0,
    batch_size: Annotated[int, typer.Option(help="Clips per batch.")] = 16,
    epochs: Annotated[int, typer.Option(help="Timed epochs after one warm-up (exactly this many).")] = 2,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON; default: text.")] = False,
) -> None:
    """Time per epoch with the frozen front end recomputed vs read from the frame cache
    (targets at base size, k = 6: >= 1.3x every-layer, >= 3x target-layer)."""
    from finetune.bench import BenchConfig, run_bench

    try:
        config = BenchConfig(family=family, size=model_size, layer=layer, strategy=strategy, n_utts=n_utts,
                             duration_s=duration_s, batch_size=batch_size, epochs=epochs,
                             device=resolve_device(device))
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
    app.command("peft", short_help="Fine-tune with PEFT adapters over folds and test.",
                cls=aliased({"--train": "--train-corpus", "--test": "--test-corpus", "--source": "--source-corpus",
                             "--epochs": "--max-epochs", "--language": "--model-language",
                             "--valid": "--valid-corpus"}))(peft)
    app.command("predict", short_help="Classify audio files with a fine-tuned checkpoint.")(predict)
    app.command("eval", short_help="Test a fine-tuned checkpoint on a prepared corpus.")(eval_command)
    app.command("bench", short_help="Time fine-tuning epochs: front end recomputed vs cached.",
                cls=aliased({"--size": "--model-size"}))(bench)
