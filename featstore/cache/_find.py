"""Finding a model's cache of a corpus: the one rule every package uses.

Under ``<root>/<safe_name(model)>/`` a cache is either the merged file ``<corpus>.h5`` or,
when an extraction was split over ranks and not merged, the complete set of shards
``<corpus>.shard-I-of-N.h5`` for ``I = 0 .. N-1``. The merged file wins when both exist.
"""

from __future__ import annotations

import re
from pathlib import Path

from featstore.cache._format import CacheError
from featstore.cache._reader import FeatureCache, open_cache
from featstore.paths import features_path


class CacheNotFoundError(CacheError, FileNotFoundError):
    """No cache of a model on a corpus, or only an incomplete set of its shards."""


def _shards(folder: Path, corpus: str) -> dict[int, dict[int, Path]]:
    """``{N: {I: path}}`` of the shard files of ``corpus`` in ``folder``."""
    pattern = re.compile(re.escape(corpus) + r"\.shard-(\d+)-of-(\d+)\.h5")
    found: dict[int, dict[int, Path]] = {}
    if not folder.is_dir():
        return found
    for path in folder.iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_file():
            index, count = int(match.group(1)), int(match.group(2))
            if 0 <= index < count:
                found.setdefault(count, {})[index] = path
    return found


def _unfinished(folder: Path, corpus: str) -> list[str]:
    """Names of the ``.parts`` folders an interrupted extraction of ``corpus`` left."""
    if not folder.is_dir():
        return []
    shard = re.compile(re.escape(corpus) + r"\.shard-\d+-of-\d+\.h5\.parts")
    return sorted(p.name for p in folder.glob("*.h5.parts")
                  if p.name == f"{corpus}.h5.parts" or shard.fullmatch(p.name))


def find_cache(model_alias: str, corpus: str, cache_root: str | Path | None = None) -> list[Path]:
    """The files of ``model_alias``'s cache of ``corpus``: ``[<root>/<model>/<corpus>.h5]``
    when merged, else the shards ``<corpus>.shard-0-of-N.h5 .. shard-(N-1)-of-N.h5`` in
    shard order (read them as one cache with :func:`open_cache`).

    ``model_alias`` goes through :func:`featstore.paths.safe_name` (``org/name`` ->
    ``org__name``); ``cache_root`` defaults to ``$CROSSLING_CACHE`` or ``./cache``.

    Raises
    ------
    CacheNotFoundError
        Neither the merged file nor a complete shard set exists; the message names the
        file and the shard pattern searched, the shards present and missing, unfinished
        extractions, and the command that makes the cache.
    """
    path = features_path(model_alias, corpus, cache_root)
    if path.is_file():
        return [path]
    sets = _shards(path.parent, corpus)
    complete = {n: files for n, files in sets.items() if len(files) == n}
    if len(complete) == 1:
        n, files = next(iter(complete.items()))
        return [files[i] for i in range(n)]
    make = f"`featstore extract --model {model_alias} --corpus {corpus}`"
    searched = f"searched {path} and {path.parent / (corpus + '.shard-*-of-N.h5')}"
    if len(complete) > 1:
        counts = ", ".join(f"{n} shards" for n in sorted(complete))
        raise CacheNotFoundError(
            f"no merged cache of {model_alias} on {corpus} and several complete shard sets ({counts}) in "
            f"{path.parent}; keep one set, or merge one into {path.name} (`featstore merge`)")
    unfinished = _unfinished(path.parent, corpus)
    tail = f"; unfinished extraction(s) left {', '.join(unfinished)}: rerun them to finish" if unfinished else ""
    if sets:
        details = []
        for n, files in sorted(sets.items()):
            missing = [i for i in range(n) if i not in files]
            details.append(f"have shard(s) {sorted(files)} of {n}, missing {missing}")
        raise CacheNotFoundError(
            f"cache of {model_alias} on {corpus} is incomplete: {'; '.join(details)} ({searched}){tail}; "
            f"extract the missing shard(s) with {make} --shard I/N")
    raise CacheNotFoundError(f"no such cache file of {model_alias} on {corpus}: {searched}{tail}; "
                             f"extract it with {make}{_existing(path.parent.parent, model_alias, corpus)}")


def _existing(root: Path, model_alias: str, corpus: str) -> str:
    """``; caches of CORPUS exist for: a, b (did you mean 'a'?)``, for a typo in a name."""
    from featstore.errors import did_you_mean

    if not root.is_dir():
        return ""
    models = sorted(d.name for d in root.iterdir() if d.is_dir() and (
        (d / f"{corpus}.h5").is_file() or any(d.glob(f"{corpus}.shard-*-of-*.h5"))))
    if models:
        return f"; caches of {corpus} exist for: {', '.join(models)}{did_you_mean(model_alias, models)}"
    corpora = sorted({p.name.split(".")[0] for p in root.glob(f"{model_alias}/*.h5")})
    return f"; {model_alias} has caches of: {', '.join(corpora)}{did_you_mean(corpus, corpora)}" if corpora else ""


def open_model_cache(model_alias: str, corpus: str, cache_root: str | Path | None = None) -> FeatureCache:
    """:func:`find_cache` opened as one :class:`FeatureCache` (merged file or shard set)."""
    return open_cache(find_cache(model_alias, corpus, cache_root))


def cache_location(paths: list[Path] | tuple[Path, ...]) -> str:
    """One string for where a cache is: the file, or ``<dir>/<corpus>.shard-*-of-N.h5`` for a
    shard set (as recorded in results tables)."""
    paths = [Path(p) for p in paths]
    if len(paths) == 1:
        return str(paths[0])
    match = re.fullmatch(r"(.*)\.shard-\d+-of-(\d+)\.h5", paths[0].name)
    if match and all(p.parent == paths[0].parent for p in paths):
        return str(paths[0].parent / f"{match.group(1)}.shard-*-of-{match.group(2)}.h5")
    return ",".join(str(p) for p in paths)
