"""``featstore splits``: make (or import) the 5-fold table of a prepared corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from featstore.audio import load_bad_files
from featstore.console import cell, check_corpora, error_message, fail, print_line
from featstore.errors import CrosslingError
from featstore.manifest import ManifestError, load_manifest
from featstore.paths import manifest_path, splits_path
from featstore.splits import (
    FoldConfig,
    FoldError,
    FoldTable,
    MissingFilesError,
    count_table,
    import_paper_folds,
    make_folds,
    save_folds,
)


def _print_counts(console: Console, folds: FoldTable, manifest: object) -> None:
    counts = count_table(folds, manifest)
    table = Table(title="utterances per fold, part and emotion")
    for name in counts.columns:
        table.add_column(name, justify="right" if name not in ("part",) else "left")
    for row in counts.iter_rows():
        table.add_row(*[str(v) for v in row])
    console.print(table)


def splits(
    corpus: Annotated[str, typer.Argument(help="Prepared corpus name (its manifest is manifests/<corpus>.parquet under the cache root).")],
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    n_folds: Annotated[int, typer.Option("--n-folds", help="Number of folds.")] = 5,
    n_train: Annotated[int, typer.Option("--n-train", help="Training utterances per fold, a multiple of 4.")] = 1600,
    n_valid: Annotated[int, typer.Option("--n-valid", help="Validation utterances per fold, a multiple of 4.")] = 200,
    n_test: Annotated[int, typer.Option("--n-test", help="Test utterances per fold, a multiple of 4.")] = 200,
    group_by: Annotated[str, typer.Option("--group-by", help="Held-out groups: auto (session if several, else speaker if several, else independent draws), speaker, session, none.")] = "auto",
    scale: Annotated[str, typer.Option(help="auto: when the counts do not fit the corpus, keep their proportions at the largest size that fits (said in the output); off: exact counts or an error.")] = "auto",
    language: Annotated[Optional[list[str]], typer.Option("--language", help="Keep only this language code (repeatable), e.g. cn for ESD's Mandarin speakers. Default: all.")] = None,
    import_dir: Annotated[Optional[Path], typer.Option("--import", help="Import the paper's folds from a folder with {train,eval,test}/metadata_fold<k>.csv (e.g. shared/paper/split_id/CN_ESD) instead of generating them. Default: generate.")] = None,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="With --import: import the listed files the corpus has and warn about the rest; without it: an error.")] = False,
    cache_root: Annotated[Optional[Path], typer.Option("--cache-root", help="Cache root. Default $CROSSLING_CACHE or ./cache.")] = None,
) -> None:
    """Make the fold table (columns fold, part, utt_id) of CORPUS and save it under splits/."""
    console = Console()
    check_corpora(corpus, cache_root)
    try:
        manifest = load_manifest(manifest_path(corpus, cache_root))
        bad = load_bad_files(manifest_path(corpus, cache_root))
    except (FileNotFoundError, ManifestError, CrosslingError) as err:
        fail(error_message(err))
    try:
        if import_dir is not None:
            folds = import_paper_folds(manifest, import_dir, allow_missing=allow_missing, exclude=bad)
        else:
            config = FoldConfig(
                n_folds=n_folds, n_train=n_train, n_valid=n_valid, n_test=n_test, seed=seed,
                group_by=group_by, scale=scale, languages=tuple(language or ()),
            )
            folds = make_folds(manifest, config, exclude=bad)
    except (MissingFilesError, FoldError, FileNotFoundError, ValueError, CrosslingError) as err:
        fail(error_message(err))

    meta = folds.meta
    print_line(f"scheme: {meta['scheme']}" + (f" (seed {meta['seed']})" if meta.get("seed") is not None else ""))
    if meta.get("held_out"):
        held = ", ".join(f"fold {k}: {'+'.join(v)}" for k, v in meta["held_out"].items())
        print_line(f"held out ({meta['group_by']}): {held}")
    if meta.get("note"):
        print_line(f"note: {meta['note']}")
    if meta.get("unusable"):
        print_line(f"warning: {len(meta['unusable'])} utterance(s) with unusable audio "
                   "(featstore prepare --check-audio) left out")
    if meta.get("missing"):
        print_line(f"warning: {len(meta['missing'])} listed files are not in the corpus (skipped):")
        missing = Table()
        missing.add_column("file")
        for name in meta["missing"][:20]:
            missing.add_row(cell(name))
        console.print(missing)
        if len(meta["missing"]) > 20:
            print_line(f"... and {len(meta['missing']) - 20} more (all in the fold table's 'missing' metadata)")
    if meta.get("label_disagreements"):
        rows = meta["label_disagreements"]
        print_line(f"warning: {len(rows)} split labels disagree with the manifest's emotion:")
        table = Table()
        for name in ("file", "fold", "part", "answer", "emotion"):
            table.add_column(name)
        for row in rows:
            table.add_row(*[cell(row[k]) for k in ("file", "fold", "part", "answer", "emotion")])
        console.print(table)
    _print_counts(console, folds, manifest)
    try:
        path = save_folds(folds, splits_path(corpus, cache_root))
    except OSError as err:  # cache root not writable, disk full
        fail(error_message(err))
    print_line(f"saved {path}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("splits")(splits)
