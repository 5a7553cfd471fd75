"""Where things live under the cache root.

The cache root is ``$CROSSLING_CACHE`` when set, else ``./cache`` (the project's
default, git-ignored). Every path helper takes an optional ``root`` so that tests and
users can point elsewhere without touching the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "CROSSLING_CACHE"


def cache_root(root: str | Path | None = None) -> Path:
    """The cache root: ``root`` if given, else ``$CROSSLING_CACHE``, else ``./cache``."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get(CACHE_ENV, "cache"))


def manifest_path(corpus: str, root: str | Path | None = None) -> Path:
    """Prepared manifest of ``corpus``: ``<root>/manifests/<corpus>.parquet``."""
    return cache_root(root) / "manifests" / f"{corpus}.parquet"


def splits_path(corpus: str, root: str | Path | None = None) -> Path:
    """Fold table of ``corpus``: ``<root>/splits/<corpus>.parquet``."""
    return cache_root(root) / "splits" / f"{corpus}.parquet"


def features_path(model: str, corpus: str, root: str | Path | None = None) -> Path:
    """Hidden-state cache of ``model`` over ``corpus``: ``<root>/<model>/<corpus>.h5``."""
    return cache_root(root) / model / f"{corpus}.h5"


def runs_root(root: str | Path | None = None) -> Path:
    """Results of probes, fine-tuning, listening tests and reports: ``<root>/runs``."""
    return cache_root(root) / "runs"
