"""``featstore models``: the registered SSL models, the model folders under the cache
root, and where each one is on this machine.

Listing reads folders and small JSON files only: neither torch nor transformers is
imported, so the command answers in well under a second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def models(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table (default: table).")
    ] = False,
    search_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--search-dir",
            help="Extra folder holding <alias>/ model folders, searched first (repeatable; default: none).",
        ),
    ] = None,
    cache_root: Annotated[
        Path | None,
        typer.Option("--cache-root", help="Cache root whose models/ folder is searched "
                     "(default: $CROSSLING_CACHE or ./cache)."),
    ] = None,
) -> None:
    """List the registry's models and the model folders under <cache root>/models: family,
    language code (mul: multilingual), layers x width, the language(s) of the pre-training
    data, source id, and where each is on disk.

    Models are looked for in --search-dir, $CROSSLING_MODELS, <cache root>/models and the
    local Hugging Face cache; nothing is downloaded. A folder <cache root>/models/<name>/
    is used by name (``featstore extract --model <name>``).
    """
    from rich.console import Console
    from rich.table import Table

    from featstore.models.resolve import list_models  # no torch: listing stays fast

    rows = list_models(search_dirs=list(search_dir or []), root=cache_root)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="SSL models (nothing is downloaded: put missing ones on disk)")
    for column in ("alias", "family", "language", "layers x dims", "pre-training language(s)", "source id",
                   "present", "where"):
        table.add_column(column, overflow="fold")
    for row in rows:
        dims = f"{row['n_layers']} x {row['hidden_size']}" if row["n_layers"] else "-"
        where = f"{row['path']} ({row['where']})" if row["path"] else "-"
        table.add_row(
            row["alias"],
            row["family"] or "-",
            row["language"] or "-",
            dims,
            row.get("pretraining_languages") or "-",
            row["hf_id"] or ("local folder" if not row["registered"] else "-"),
            "yes" if row["present"] else "no",
            where,
        )
    Console(width=200, soft_wrap=True).print(table)
    typer.echo("language: the code the probes' settings take the model for (mul: many languages, every corpus "
               "a transfer setting). pre-training language(s): the language(s) of the speech the model was "
               "pre-trained on, as its authors state them (en: English only); hours and corpora: docs/models.md.")
    if not all(r["present"] for r in rows if r["registered"]):
        root = f"{cache_root}/models" if cache_root else "<cache root>/models"
        typer.echo(
            f"Missing models: put the Hugging Face folder in {root}/<alias>/ or "
            "$CROSSLING_MODELS/<alias>/, or in the local Hugging Face cache (HF_HUB_CACHE)."
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("models")(models)
