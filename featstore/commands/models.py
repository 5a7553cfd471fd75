"""``featstore models``: the registered SSL models and whether they are on this machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


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
) -> None:
    """List the registry's models: family, language, source id, and where each is on disk.

    Models are looked for in --search-dir, $CROSSLING_MODELS, <cache root>/models and the
    local Hugging Face cache; nothing is downloaded.
    """
    from featstore.models import list_models  # transformers loads only when the command runs

    rows = list_models(search_dirs=list(search_dir or []))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="SSL models (nothing is downloaded: put missing ones on disk)")
    for column in ("alias", "family", "language", "layers x dims", "source id", "present", "where"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["alias"],
            row["family"],
            row["language"],
            f"{row['n_layers']} x {row['hidden_size']}",
            row["hf_id"],
            "yes" if row["present"] else "no",
            row["path"] or "-",
        )
    Console(width=200).print(table)
    if not all(r["present"] for r in rows):
        typer.echo(
            "Missing models: put the Hugging Face folder in <cache root>/models/<alias>/ or "
            "$CROSSLING_MODELS/<alias>/, or in the local Hugging Face cache (HF_HUB_CACHE)."
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("models")(models)
