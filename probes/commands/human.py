"""``probes human build | ingest | compare``: the SER listening test with webMUSHRA.

Thin commands: parse options, build a config, call one function of
:mod:`probes.human`, print. Errors for the user end with exit code 2 and a message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from featstore.console import StepProgress, aliased, cell, check_corpora, print_line, print_table
from featstore.console import fail as _fail

human_app = typer.Typer(
    help="Listening tests: build a webMUSHRA test, read its answers, compare listeners with models.",
    no_args_is_help=True, pretty_exceptions_show_locals=False, rich_markup_mode=None,
)
console = Console()


def register(app: typer.Typer) -> None:
    """Add the ``human`` sub-app to ``app``."""
    app.add_typer(human_app, name="human", short_help="Listening tests with webMUSHRA: build, ingest, compare.")


@human_app.command("build", short_help="Select stimuli and write a webMUSHRA test.",
                   cls=aliased({"--cache": "--cache-root"}))
def build_cmd(
    corpora: Annotated[str, typer.Option(help="Comma-separated prepared corpora (add e.g. tjd).")] = "esd,pavoque,iemocap",
    per_emotion: Annotated[int, typer.Option(help="Stimuli per emotion per corpus (the paper's).")] = 12,
    seed: Annotated[int, typer.Option(help="Seed of the selection and of the stimulus keys.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <cache>/runs/human/<name>).")] = None,
    name: Annotated[str, typer.Option(help="Config name and webMUSHRA testId.")] = "ser-test",
    cache: Annotated[Path | None, typer.Option("--cache-root", help="Cache root holding manifests/ and splits/; default $CROSSLING_CACHE or ./cache.")] = None,
    email: Annotated[bool, typer.Option(help="Ask an optional e-mail on the finish page.")] = True,
    emotions: Annotated[str, typer.Option(help="Comma-separated response options; a corpus category not among them is dropped (add e.g. question to keep TJD's as its own answer).")] = "angry,happy,neutral,sad",
    whole_corpus: Annotated[str, typer.Option(help="Comma-separated corpora drawn from all their utterances when they have no fold table (a corpus no model is tested on); '' for none.")] = "tjd",
) -> None:
    """Select the stimuli, export 16 kHz 16-bit wavs, write configs/<name>.yaml and the key.

    Stimuli are drawn per available category: a corpus with fewer categories than the
    response options gives --per-emotion stimuli of each category it has."""
    from featstore.paths import runs_root
    from probes.human.build import BuildConfig, build_listening_test, parse_corpora, plan_stimuli

    try:
        check_corpora(list(parse_corpora(corpora)), cache)
        config = BuildConfig(corpora=parse_corpora(corpora), per_emotion=per_emotion, seed=seed, name=name,
                             ask_email=email, emotions=parse_corpora(emotions),
                             whole_corpus=parse_corpora(whole_corpus))
        selection, notes = plan_stimuli(config, cache)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))
    out_dir = out or runs_root(cache) / "human" / name
    try:
        with StepProgress("exporting stimuli", selection.height, "stimuli") as bar:
            result = build_listening_test(selection, out_dir, config,
                                          progress=lambda done, total: bar.update(done),
                                          selection_notes=notes)
    except (ValueError, FileNotFoundError, OSError) as err:
        _fail(str(err))
    print_line(f"{result.n_stimuli} stimuli from {', '.join(config.corpora)}")
    for corpus, note in notes.items():
        pool = "test data of its folds" if note["pool"] == "folds" else "all its utterances (no fold table)"
        dropped = (", dropped " + ", ".join(f"{e} ({n})" for e, n in note["dropped"].items())
                   if note["dropped"] else "")
        print_line(f"  {corpus}: {', '.join(note['categories'])} from {pool}{dropped}")
    print_line(f"config : {result.config_path}  (copy {out_dir / 'configs'} into the webMUSHRA root)")
    print_line(f"audio  : {result.audio_dir}")
    print_line(f"key    : {result.key_path}  (keep it away from the web server)")


@human_app.command("ingest", short_help="Join webMUSHRA answers with the key; report anomalies.")
def ingest_cmd(
    results: Annotated[list[Path], typer.Argument(help="webMUSHRA lss.csv files and/or long tables (listener, group, stimulus, answer).")],
    key: Annotated[Path, typer.Option(help="Key table written by `probes human build` (<name>.key.csv).")],
    groups: Annotated[Path | None, typer.Option(help="Table listener,group; overrides --group-column (default: none).")] = None,
    group_column: Annotated[str, typer.Option(help="Questionnaire column giving the group.")] = "native_language",
    config: Annotated[Path | None, typer.Option(help="The webMUSHRA config, to map response values to labels (default: none; labels are matched by name).")] = None,
    duplicates: Annotated[str, typer.Option(help="Two answers for one stimulus: keep 'last', 'first' or 'drop' all.")] = "last",
    out: Annotated[Path | None, typer.Option(help="Output folder (default: folder of the key / answers).")] = None,
    group_language: Annotated[list[str] | None, typer.Option(help="GROUP=LANG for a group not named by a stimulus language code or a known alias such as zh, german (default: none).")] = None,
    labels: Annotated[str | None, typer.Option(help="Comma-separated answer labels, e.g. angry,happy,neutral,sad,question to keep TJD's question as its own answer (default: the four emotions plus any other response of --config).")] = None,
) -> None:
    """Join answers with the key; write answers.parquet, listeners.csv and the anomalies."""
    from probes.human import webmushra
    from probes.human.build import parse_corpora, read_key
    from probes.human.ingest import IngestConfig, answer_labels, ingest, read_groups, save_ingest
    from probes.human.results import file_provenance

    try:
        response_map = webmushra.response_values(webmushra.load_config(config)) if config else {}
        label_set = parse_corpora(labels) if labels else answer_labels(response_map)
        key_frame = read_key(key, notes := [], labels=label_set)
        cfg = IngestConfig(group_column=group_column, duplicates=duplicates, response_map=response_map,
                           group_languages=_parse_pairs(group_language or [], "--group-language"),
                           labels=label_set)
        group_map = read_groups(groups) if groups else None
        result = ingest(results, key_frame, cfg, group_map, key_notes=notes)
    except (ValueError, FileNotFoundError, OSError) as err:
        _fail(str(err))
    out_dir = out or key.parent / "answers"
    prov = {"key": file_provenance(key), "results": [file_provenance(p) for p in results],
            "groups": file_provenance(groups) if groups else None,
            "config": file_provenance(config) if config else None,
            "ingest_config": {"group_column": group_column, "duplicates": duplicates,
                              "labels": list(cfg.labels)}}
    paths = save_ingest(result, out_dir, prov)
    _print_anomalies(result.anomalies_frame())
    n_l = result.listeners.height
    print_line(f"{result.answers.height} answers from {n_l} listener(s); "
               f"{len(result.anomalies)} anomaly(ies) -> {paths['anomalies_json']}")
    print_line(f"answers: {paths['answers']}")


def _print_anomalies(frame: object) -> None:
    if frame.height == 0:  # type: ignore[attr-defined]
        print_line("no anomalies")
        return
    table = Table(title="anomalies")
    for col in ("kind", "action", "listener", "stimulus", "source", "line", "detail"):
        table.add_column(col, overflow="fold")
    for row in frame.head(200).iter_rows():  # type: ignore[attr-defined]
        table.add_row(*[cell(Path(v).name if i == 4 and v else v) for i, v in enumerate(row)])
    console.print(table)
    if frame.height > 200:  # type: ignore[attr-defined]
        print_line(f"... {frame.height - 200} more in the JSON/CSV report")  # type: ignore[attr-defined]


def _parse_pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(f"{what}: expected NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


@human_app.command("compare", short_help="Compare listeners with models: Tables II-III, t-tests, figures.")
def compare_cmd(
    answers: Annotated[Path, typer.Argument(help="answers.parquet written by `probes human ingest`.")],
    predictions: Annotated[list[Path] | None, typer.Option(help="Model predictions table(s) (utt_id, pred, model, setting, ...); repeatable; a probes run's predictions.parquet (every layer) also gives the human-likeness per layer in <out>/likeness (default: none).")] = None,
    key: Annotated[Path | None, typer.Option(help="Key table; default: the stimuli found in the answers.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <answers folder>/compare).")] = None,
    correction: Annotated[str, typer.Option(help="Multiple-comparison correction: holm, bonferroni, fdr_bh or none.")] = "holm",
    metric: Annotated[list[str] | None, typer.Option(help="Metric to t-test, repeatable, e.g. recall_happy (default: UA and all per-class P/R/F1).")] = None,
    l2: Annotated[list[str] | None, typer.Option(help="Second languages: 'en' for every group or 'GROUP=en+fr'; repeatable (default: en).")] = None,
    group_language: Annotated[list[str] | None, typer.Option(help="GROUP=LANG when a group is not named by its language code (default: the group name).")] = None,
    model_language: Annotated[list[str] | None, typer.Option(help="MODEL=LANG pre-training language (default: from the model registry or the alias suffix).")] = None,
    where: Annotated[list[str] | None, typer.Option(help="Prediction filter COLUMN=VALUE, e.g. layer=7 or fold=0; repeatable (default: none).")] = None,
    labels: Annotated[str | None, typer.Option(help="Comma-separated class order, e.g. angry,happy,neutral,sad,question (default: the four emotions, then any other category in the answers).")] = None,
    pool: Annotated[list[str] | None, typer.Option(help="Languages pooled per listener for between-group tests, e.g. cn+de+en (the paper's); repeatable; 'none' for no pooled tests (default: cn+de+en when all three were heard).")] = None,
) -> None:
    """Per-listener metrics, Table II, Table III with models beside humans, Welch t-tests, figures;
    with the probes' predictions of every layer, the human-likeness per layer
    (docs/human-likeness.md)."""
    from probes.human.build import parse_corpora, read_key
    from probes.human.compare import CompareConfig, compare
    from probes.human.results import file_provenance, read_answers, read_predictions, save_compare

    try:
        pools = tuple(tuple(s.strip().lower() for s in item.split("+") if s.strip())
                      for item in (pool or ["cn+de+en"]) if item.strip().lower() != "none")
        extra = {"labels": parse_corpora(labels)} if labels else {}
        l2_map: dict[str, tuple[str, ...]] = {}
        for item in l2 or ["en"]:
            group, _, langs = item.rpartition("=")
            l2_map[group.strip() or "*"] = tuple(s.strip() for s in langs.split("+") if s.strip())
        cfg = CompareConfig(
            correction=correction, metrics=tuple(metric or ()), l2_languages=l2_map,
            group_languages=_parse_pairs(group_language or [], "--group-language"),
            model_languages=_parse_pairs(model_language or [], "--model-language"),
            prediction_filters=_parse_pairs(where or [], "--where"), pooled_languages=pools, **extra,
        )
        frame = read_answers(answers)
        preds = read_predictions(predictions or [])
        found = set(frame["true"].drop_nulls().to_list())
        key_frame = read_key(key, labels=(*cfg.labels, *sorted(found - set(cfg.labels)))) if key else None
        result = compare(frame, preds if preds.height else None, cfg, key_frame)
    except (ValueError, FileNotFoundError, OSError) as err:
        _fail(str(err))
    prov = {"answers": file_provenance(answers),
            "predictions": [file_provenance(p) for p in predictions or []],
            "key": file_provenance(key) if key else None,
            "config": {"correction": correction, "metrics": list(cfg.metrics), "l2": l2_map,
                       "group_languages": dict(cfg.group_languages),
                       "model_languages": dict(cfg.model_languages),
                       "filters": dict(cfg.prediction_filters), "labels": list(result.labels),
                       "pooled_languages": ["+".join(p) for p in pools]}}
    out_dir = out or answers.parent / "compare"
    paths = save_compare(result, out_dir, prov, result.labels)
    print_line("Table II (mean UA over each group's listeners, rows = listener groups):")
    print_table(result.table2)
    if result.pairs.height:
        print_table(result.pairs.select("group", "language", "human_setting", "model", "human_ua", "model_ua"))
    if result.ttests.height:
        sig = result.ttests.filter("significant")
        print_line(f"{result.ttests.height} Welch t-tests; {sig.height} significant after {correction} "
                   "(ttests.csv: p uncorrected, p_adj corrected, df Welch, df_student = n_a + n_b - 2)")
    print_line(f"written to {out_dir} ({json.dumps(sorted(paths))})")
    if preds.height and "layer" in preds.columns:  # the probes' predictions of every layer
        _likeness(frame, preds, predictions or [], cfg, key_frame, out_dir / "likeness", prov, answers)


def _likeness(answers_frame: object, preds: object, pred_paths: list[Path], cfg: object, key_frame: object,
              out_dir: Path, prov: dict, answers: Path) -> None:
    """Human-likeness per layer (:mod:`probes.human.likeness`) into ``out_dir``; the
    provenance of a ``results.parquet`` beside a predictions file joins each row."""
    import polars as pl

    from featstore.io import TableError, parquet_metadata
    from probes.human.likeness import LikenessError, write_likeness

    if "strategy" in preds.columns and preds["strategy"].is_not_null().all():  # type: ignore[attr-defined]
        return  # fine-tuning's predictions only: no layer-wise curve
    try:
        simulated = parquet_metadata(answers).get("simulated") or None
    except TableError:
        simulated = None
    beside = [p.parent / "results.parquet" for p in pred_paths if (p.parent / "results.parquet").is_file()]
    try:
        results = pl.concat([pl.read_parquet(p) for p in beside], how="diagonal_relaxed") if beside else None
        paths = write_likeness(answers_frame, preds, out_dir, cfg, key_frame, results,  # type: ignore[arg-type]
                               {**prov, "results": [str(p) for p in beside]},
                               simulated=str(simulated) if simulated else None)
    except LikenessError as err:  # Tables II/III are written; say why this one is not
        print_line(f"human-likeness per layer not written: {err}")
        return
    except (ValueError, OSError) as err:
        _fail(f"human-likeness per layer: {err}")
    print_line(f"human-likeness per layer (kappa with the majority answer, confusion r, 95 % bootstrap "
               f"intervals): {paths['likeness_csv']}")
