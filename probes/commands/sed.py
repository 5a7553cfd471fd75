"""Commands of this module are registered by ``register`` (called from ``cli.py``)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
