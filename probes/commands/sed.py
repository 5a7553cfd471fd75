"""``probes sed model | probe | listeners build | listeners score | concat``: speech emotion
diarization on ZED (the paper's Table IV and beyond).

Thin commands: parse options, build a config, call one function of :mod:`probes.sed`,
print. Errors for the user end with exit code 2 and a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from featstore.console import aliased, check_corpora, print_line, print_table, resolve_device, track_items
from featstore.console import fail as _fail

sed_app = typer.Typer(
    help="Speech emotion diarization (EDER): the diarization WavLM, frame probes per layer, listeners on ZED.",
    no_args_is_help=True, pretty_exceptions_show_locals=False, rich_markup_mode=None,
)
listeners_app = typer.Typer(help="The SED listening test: build it, score the answers.", no_args_is_help=True,
                            pretty_exceptions_show_locals=False, rich_markup_mode=None)
sed_app.add_typer(listeners_app, name="listeners", short_help="The SED listening test: build it, score the answers.")
console = Console()
_USER_ERRORS = (ValueError, FileNotFoundError, KeyError, OSError)


def register(app: typer.Typer) -> None:
    """Add the ``sed`` sub-app to ``app``."""
    app.add_typer(sed_app, name="sed", short_help="Speech emotion diarization (EDER) on ZED.")


_CACHE_ALIAS = {"--cache": "--cache-root"}
_CACHE_HELP = "Cache root; default $CROSSLING_CACHE or ./cache."
_DEVICE_HELP = "Torch device: auto (CUDA if present, else CPU), cpu, cuda, cuda:1 ..."


def _bar(label: str):  # noqa: ANN202 - returns a progress wrapper
    # a Rich bar on a terminal, plain lines at a steady rate in a log (featstore.console)
    return lambda items: track_items(items, label)


def _csv_list(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _print_paths(paths: dict) -> None:
    for name, path in paths.items():
        print_line(f"{name:28s} {path}")


def _print_table(path: Path) -> None:
    import polars as pl

    print_table(pl.read_csv(path))


@sed_app.command("model", short_help="Diarize with the diarization WavLM and score EDER.", cls=aliased(_CACHE_ALIAS))
def model_cmd(
    corpus: Annotated[str, typer.Option(help="Prepared diarization corpus with events.")] = "zed",
    model: Annotated[str, typer.Option(help="Diarization model alias or SpeechBrain folder.")] = "wavlm-emo",
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
    pad: Annotated[bool, typer.Option(help="Append the last frame label once when short of the recipe's frame count, as the ZED recipe does.")] = True,
    limit: Annotated[int | None, typer.Option(help="Only the first N utterances by id, for a quick check (default: all).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <cache>/runs/sed/model/<model>/<corpus>).")] = None,
    cache: Annotated[Path | None, typer.Option("--cache-root", help=_CACHE_HELP)] = None,
) -> None:
    """Frame labels of the diarization WavLM -> segments (0.02 s) -> EDER per utterance and emotion."""
    from featstore.models import ModelLoadError, ModelNotFoundError
    from probes.sed import ModelRunConfig, run_model

    try:
        check_corpora(corpus, cache)
        config = ModelRunConfig(model=model, corpus=corpus, pad_like_recipe=pad, device=resolve_device(device))
        paths = run_model(config, root=cache, out_dir=out, limit=limit, progress=_bar("diarizing"))
    except (ModelNotFoundError, ModelLoadError, *_USER_ERRORS) as err:
        _fail(str(err))
    _print_table(paths["table_iv"])
    _print_paths(paths)


def _parse_layers(text: str) -> tuple[int, ...] | None:
    if text.strip().lower() == "all":
        return None
    try:
        return tuple(int(x) for x in _csv_list(text))
    except ValueError as err:
        raise typer.BadParameter(f"--layers: 'all' or comma-separated integers, got {text!r}") from err


@sed_app.command("probe", short_help="Frame-level probe per layer, scored on ZED with EDER.",
                 cls=aliased({**_CACHE_ALIAS, "--test": "--test-corpus", "--c": "--logreg-c",
                                      "--max-iter": "--logreg-max-iter"}))
def probe_cmd(
    model: Annotated[str, typer.Option(help="Model alias whose frame caches are read (<cache>/<model>/<corpus>.h5).")],
    train_corpora: Annotated[str, typer.Option(help="Comma-separated training corpora.")] = "esd,pavoque,iemocap",
    test_corpus: Annotated[str, typer.Option(help="Diarization test corpus.")] = "zed",
    layers: Annotated[str, typer.Option(help="'all' or comma-separated hidden-state indices.")] = "all",
    max_train_frames: Annotated[int, typer.Option(help="Training frames per layer at most, subsampled.")] = 50_000,
    logreg_c: Annotated[float, typer.Option(help="Inverse L2 regularisation C of the logistic regression.")] = 1.0,
    logreg_max_iter: Annotated[int, typer.Option(help="L-BFGS iterations of the logistic regression.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed of subsampling and solver.")] = 0,
    model_results: Annotated[Path | None, typer.Option(help="per_utterance.parquet of `probes sed model`, printed beside the best layer (default: none).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <cache>/runs/sed/probe/<model>/<test>).")] = None,
    cache: Annotated[Path | None, typer.Option("--cache-root", help=_CACHE_HELP)] = None,
) -> None:
    """A frame-level probe per layer, trained on utterance-level corpora, scored on ZED with EDER."""
    import polars as pl

    from probes.sed import ProbeConfig, run_frame_probe

    try:
        check_corpora([*_csv_list(train_corpora), test_corpus], cache)
        config = ProbeConfig(model=model, train_corpora=_csv_list(train_corpora), test_corpus=test_corpus,
                             layers=_parse_layers(layers), max_train_frames=max_train_frames, c=logreg_c,
                             max_iter=logreg_max_iter, seed=seed)
        paths = run_frame_probe(config, root=cache, out_dir=out, progress=_bar("layers"))
    except _USER_ERRORS as err:
        _fail(str(err))
    per_layer = pl.read_parquet(paths["per_layer_parquet"])
    print_table(per_layer.select("layer", "eder", "eder_duration_weighted", "n_utterances"))
    best = per_layer.sort("eder").row(0, named=True)
    print_line(f"best layer: {best['layer']} (EDER {100 * best['eder']:.1f} %)")
    if model_results is not None:
        try:
            fine_tuned = pl.read_parquet(model_results)
        except (OSError, pl.exceptions.PolarsError) as err:
            _fail(f"{model_results}: {err}")
        print_line(f"diarization model {fine_tuned['model'][0]}: EDER {100 * fine_tuned['eder'].mean():.1f} % "
                   f"over {fine_tuned.height} utterances")
    _print_paths(paths)


@listeners_app.command("build", short_help="Build the SED listening test (stimuli, key, template).",
                       cls=aliased(_CACHE_ALIAS))
def listeners_build_cmd(
    corpus: Annotated[str, typer.Option(help="Prepared diarization corpus.")] = "zed",
    per_emotion: Annotated[int, typer.Option(help="Utterances per emotion (angry, happy, sad) (the paper's).")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the selection and the presentation order.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <cache>/runs/sed/listening_test/<corpus>).")] = None,
    cache: Annotated[Path | None, typer.Option("--cache-root", help=_CACHE_HELP)] = None,
) -> None:
    """Stimuli wavs, key.csv and answers_template.csv (listener, group, stimulus, label, start, end)."""
    from probes.sed import SedTestConfig, build_listeners

    try:
        check_corpora(corpus, cache)
        paths = build_listeners(SedTestConfig(n_per_emotion=per_emotion, seed=seed), corpus, cache, out)
    except _USER_ERRORS as err:
        _fail(str(err))
    _print_paths(paths)
    print_line("keep key.csv away from the listeners; each fills a copy of answers_template.csv")


@listeners_app.command("score", short_help="Score the SED listening test's answers (EDER, Table IV).")
def listeners_score_cmd(
    answers: Annotated[Path, typer.Argument(help="Answer sheet CSV/TSV: listener, group, stimulus, label, start, end (s).")],
    key: Annotated[Path, typer.Option(help="key.csv written by `probes sed listeners build`.")],
    model_results: Annotated[Path | None, typer.Option(help="per_utterance.parquet of `probes sed model`, to add the model on the same stimuli (default: none).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: sed_scores/ beside the answers).")] = None,
) -> None:
    """Each answer -> hypothesis (label on the selection, neutral elsewhere) -> EDER; Table IV."""
    from probes.sed import score_listeners

    try:
        paths = score_listeners(answers, key, out_dir=out, model_results=model_results)
    except _USER_ERRORS as err:
        _fail(str(err))
    _print_table(paths["table_iv"])
    _print_paths(paths)


@sed_app.command("concat", short_help="Concatenate neutral and emotional utterances in ZED's format.",
                 cls=aliased({**_CACHE_ALIAS, "--n": "--n-utts"}))
def concat_cmd(
    corpus: Annotated[str, typer.Option(help="Prepared utterance-level corpus (e.g. esd).")],
    out: Annotated[Path, typer.Option(help="Output folder for the wavs and ZED.json.")],
    n_utts: Annotated[int | None, typer.Option(help="Utterances to make; default: one per emotional utterance.")] = None,
    patterns: Annotated[str, typer.Option(help="Comma-separated: neu_emo_neu, neu_emo, emo_neu.")] = "neu_emo_neu",
    seed: Annotated[int, typer.Option(help="Seed of every draw.")] = 0,
    cache: Annotated[Path | None, typer.Option("--cache-root", help=_CACHE_HELP)] = None,
) -> None:
    """Neutral + emotional (+ neutral) concatenations of one speaker, written in ZED's format."""
    from featstore.audio import load_row
    from probes.sed import ConcatConfig, concatenate_for_sed, load_corpus_manifest

    try:
        check_corpora(corpus, cache)
        config = ConcatConfig(n_utterances=n_utts, patterns=_csv_list(patterns), seed=seed)
        manifest = load_corpus_manifest(corpus, cache)
        with console.status("concatenating"):
            path = concatenate_for_sed(manifest, out, load_row, config)
    except _USER_ERRORS as err:
        _fail(str(err))
    print_line(f"ZED.json: {path}  (read it with `featstore prepare zed --root {out}`)")


__all__: Sequence[str] = ("register",)
