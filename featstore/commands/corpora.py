"""``featstore corpora`` (list readers) and ``featstore prepare`` (read a corpus into a manifest)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from featstore.console import cell, error_message, fail, print_line
from featstore.corpora import READERS, CorpusFormatError, CorpusNotFoundError
from featstore.corpora.prepare import PrepareConfig, PrepareResult, count_table, prepare_corpus
from featstore.errors import CrosslingError
from featstore.manifest import ManifestError


def corpora() -> None:
    """List the corpus readers with their languages and options."""
    table = Table(title="corpus readers (featstore prepare CORPUS --root DIR)")
    for column in ("reader", "languages", "description", "options"):
        table.add_column(column)
    for spec in READERS.values():
        options = "\n".join(f"--{k.replace('_', '-')}: {v}" for k, v in spec.options.items())
        if spec.needs_name:
            options = "--name: corpus name (required)\n" + options
        table.add_row(spec.name, ", ".join(spec.languages), spec.description, options or "-")
    Console().print(table)


def prepare(
    corpus: Annotated[str, typer.Argument(help=f"Reader: one of {', '.join(READERS)}.")],
    root: Annotated[Path, typer.Option(help="Where the corpus lies: its folder (or, for table, "
                                            "the CSV/TSV/JSONL file; for zed, ZED.json).")],
    name: Annotated[Optional[str], typer.Option(help="Name of the prepared corpus (manifest file "
                                                     "name); default the reader name. Required "
                                                     "for table.")] = None,
    language: Annotated[Optional[str], typer.Option(help="Language code for every utterance "
                                                         "(esd, table; e.g. cn, de, en, tj, yue). "
                                                         "Default: from the corpus.")] = None,
    label_map: Annotated[Optional[str], typer.Option(help="table: original=emotion pairs, e.g. "
                                                          "'negation=angry,expectation=happy'; "
                                                          "unmapped labels keep their own name. "
                                                          "Default: none.")] = None,
    layout: Annotated[Optional[str], typer.Option(help="pavoque: auto, release (FLAC + YAML) or "
                                                       "extracted (wav folder). Default auto.")] = None,
    keep_missing: Annotated[bool, typer.Option(help="iemocap: keep labelled utterances whose "
                                                    "wav is missing.")] = False,
    check_audio: Annotated[bool, typer.Option("--check-audio", help="Decode every file and save "
                                              "the unusable ones as <name>.bad.parquet beside the "
                                              "manifest; later steps skip them. Default off.")] = False,
    cache_root: Annotated[Optional[Path], typer.Option(help="Cache root. Default: "
                                                            "$CROSSLING_CACHE or ./cache.")] = None,
    allow_outside_root: Annotated[bool, typer.Option("--allow-outside-root", help="Admit audio paths "
                                  "that leave the corpus root (.., absolute, symbolic links out). "
                                  "Default off: refused unopened and listed as bad files.")] = False,
) -> None:
    """Read a corpus into a manifest (cache/manifests/NAME.parquet) and print its counts."""
    given = {"language": language, "label_map": label_map, "layout": layout,
             "keep_missing": keep_missing or None}
    options = {k: v for k, v in given.items() if v is not None}
    console = Console()
    try:
        config = PrepareConfig(corpus=corpus, root=root, name=name, options=options,
                               cache_root=cache_root, check=check_audio,
                               allow_outside_root=allow_outside_root)
        result = prepare_corpus(config)
    except (CrosslingError, CorpusNotFoundError, CorpusFormatError, ManifestError, ValueError, OSError) as err:
        fail(error_message(err))
    for message in result.warnings:
        print_line(f"warning: {message}")
    counts = count_table(result.manifest)
    table = Table(title=f"{config.corpus_name}: utterances per emotion and speaker")
    for column in counts.columns:
        table.add_column(column, justify="left" if column == "emotion" else "right")
    for row in counts.iter_rows():
        table.add_row(*(cell(v) for v in row))
    console.print(table)
    print_line(f"manifest: {result.manifest_path} ({result.manifest.height} utterances)")
    print_line(f"fingerprint: {result.fingerprint}")
    if result.removed_stale_bad_files:
        print_line("removed a bad-file table left from an earlier manifest")
    if result.bad_files is not None:
        _print_bad(console, result)


def _print_bad(console: Console, result: PrepareResult) -> None:
    bad = result.bad_files
    if bad.is_empty():
        print_line(f"audio check: all {result.manifest.height} files decode")
        return
    table = Table(title=f"{bad.height} unusable file(s); later steps skip them")
    for column in ("utt_id", "path", "reason"):
        table.add_column(column, overflow="fold")
    for row in bad.iter_rows():
        table.add_row(*(cell(v) for v in row))
    console.print(table)
    print_line(f"bad files: {result.bad_files_path}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("corpora")(corpora)
    app.command("prepare")(prepare)
