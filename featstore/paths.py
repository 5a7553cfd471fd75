"""Where things live under the cache root.

The cache root is ``$CROSSLING_CACHE`` when set, else ``./cache`` (the project's
default, git-ignored). Every path helper takes an optional ``root`` so that tests and
users can point elsewhere without touching the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

from featstore.errors import safe_file_stem

CACHE_ENV = "CROSSLING_CACHE"


def safe_name(alias: str) -> str:
    """A model alias as one folder name: ``org/name`` -> ``org__name``; an alias that would
    still not be one plain folder name (``..``, a leading dot, control characters) is an
    :class:`~featstore.errors.UnsafeIdError`."""
    return safe_file_stem(str(alias).replace("/", "__").replace("\\", "__"), "model alias")


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


def features_dir(model: str, root: str | Path | None = None) -> Path:
    """Folder of ``model``'s caches: ``<root>/<safe_name(model)>``."""
    return cache_root(root) / safe_name(model)


def features_path(model: str, corpus: str, root: str | Path | None = None) -> Path:
    """Merged hidden-state cache of ``model`` (an alias; ``org/name`` becomes ``org__name``)
    over ``corpus``: ``<root>/<safe_name(model)>/<corpus>.h5``. Shards of an extraction
    split over ranks sit beside it as ``<corpus>.shard-I-of-N.h5``; to find whichever
    exists use :func:`featstore.cache.find_cache`."""
    return features_dir(model, root) / f"{safe_file_stem(corpus, 'corpus name')}.h5"


def runs_root(root: str | Path | None = None) -> Path:
    """Results of probes, fine-tuning, listening tests and reports: ``<root>/runs``."""
    return cache_root(root) / "runs"
