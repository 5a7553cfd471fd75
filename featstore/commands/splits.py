"""``featstore splits``: make (or import) the 5-fold table of a prepared corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from featstore.audio import load_bad_files
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
    seed: Annotated[int, typer.Option(help="Seed of every random draw. Default 0.")] = 0,
    n_folds: Annotated[int, typer.Option("--n-folds", help="Number of folds. Default 5 (the paper).")] = 5,
    n_train: Annotated[int, typer.Option("--n-train", help="Training utterances per fold, a multiple of 4. Default 1600.")] = 1600,
    n_valid: Annotated[int, typer.Option("--n-valid", help="Validation utterances per fold, a multiple of 4. Default 200.")] = 200,
    n_test: Annotated[int, typer.Option("--n-test", help="Test utterances per fold, a multiple of 4. Default 200.")] = 200,
    group_by: Annotated[str, typer.Option("--group-by", help="Held-out groups: auto (session if several, else speaker if several, else independent draws), speaker, session, none. Default auto.")] = "auto",
    scale: Annotated[str, typer.Option(help="auto: when the counts do not fit the corpus, keep their proportions at the largest size that fits (said in the output); off: exact counts or an error. Default auto.")] = "auto",
    language: Annotated[Optional[list[str]], typer.Option("--language", help="Keep only this language code (repeatable), e.g. cn for ESD's Mandarin speakers. Default: all.")] = None,
    import_dir: Annotated[Optional[Path], typer.Option("--import", help="Import the paper's folds from a folder with {train,eval,test}/metadata_fold<k>.csv (e.g. shared/paper/split_id/CN_ESD) instead of generating them. Default: generate.")] = None,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="With --import: import the listed files the corpus has and warn about the rest. Default: error.")] = False,
    cache_root: Annotated[Optional[Path], typer.Option("--cache-root", help="Cache root. Default $CROSSLING_CACHE or ./cache.")] = None,
) -> None:
    """Make the fold table (columns fold, part, utt_id) of CORPUS and save it under splits/."""
    console = Console()
    try:
        manifest = load_manifest(manifest_path(corpus, cache_root))
        bad = load_bad_files(manifest_path(corpus, cache_root))
    except (FileNotFoundError, ManifestError, CrosslingError) as err:
        console.print(f"[red]error:[/red] {escape(str(err))}")
        raise typer.Exit(code=2) from err
    try:
        if import_dir is not None:
            folds = import_paper_folds(manifest, import_dir, allow_missing=allow_missing, exclude=bad)
        else:
            config = FoldConfig(
                n_folds=n_folds, n_train=n_train, n_valid=n_valid, n_test=n_test, seed=seed,
                group_by=group_by, scale=scale, languages=tuple(language or ()),
            )
            folds = make_folds(manifest, config, exclude=bad)
    except MissingFilesError as err:
        console.print("[red]error:[/red] ", end="")
        console.print(str(err), markup=False, highlight=False)
        raise typer.Exit(code=2) from err
    except (FoldError, FileNotFoundError, ValueError, CrosslingError) as err:
        console.print(f"[red]error:[/red] {escape(str(err))}")
        raise typer.Exit(code=2) from err

    meta = folds.meta
    console.print(f"scheme: [bold]{meta['scheme']}[/bold]" + (f" (seed {meta['seed']})" if meta.get("seed") is not None else ""))
    if meta.get("held_out"):
        held = ", ".join(f"fold {k}: {'+'.join(v)}" for k, v in meta["held_out"].items())
        console.print(f"held out ({meta['group_by']}): {held}")
    if meta.get("note"):
        console.print(f"[yellow]note:[/yellow] {meta['note']}")
    if meta.get("unusable"):
        console.print(f"[yellow]warning:[/yellow] {len(meta['unusable'])} utterance(s) with unusable audio "
                      "(featstore prepare --check-audio) left out")
    if meta.get("missing"):
        console.print(f"[yellow]warning:[/yellow] {len(meta['missing'])} listed files are not in the corpus (skipped):")
        missing = Table()
        missing.add_column("file")
        for name in meta["missing"][:20]:
            missing.add_row(escape(name))
        console.print(missing)
        if len(meta["missing"]) > 20:
            console.print(f"... and {len(meta['missing']) - 20} more (all in the fold table's 'missing' metadata)")
    if meta.get("label_disagreements"):
        rows = meta["label_disagreements"]
        console.print(f"[yellow]warning:[/yellow] {len(rows)} split labels disagree with the manifest's emotion:")
        table = Table()
        for name in ("file", "fold", "part", "answer", "emotion"):
            table.add_column(name)
        for row in rows:
            table.add_row(*[escape(str(row[k])) for k in ("file", "fold", "part", "answer", "emotion")])
        console.print(table)
    _print_counts(console, folds, manifest)
    try:
        path = save_folds(folds, splits_path(corpus, cache_root))
    except OSError as err:  # cache root not writable, disk full
        console.print(f"[red]error:[/red] {escape(str(err))}")
        raise typer.Exit(code=2) from err
    console.print(f"saved {escape(str(path))}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("splits")(splits)
