"""The HDF5 feature cache: format, writer, reader, merge, checks.

Public API (see ``docs/architecture.md`` and ``docs/cache-format.md``):

- :func:`open_cache` -> :class:`FeatureCache` (one file, a glob, or a list of shards);
- :func:`find_cache` / :func:`open_model_cache`: a model's cache of a corpus by name (the
  merged file, else the complete shard set), the one rule probes, SED, fine-tuning and
  the study use;
- :func:`write_cache` writes a complete cache file at once;
- :func:`merge_caches` joins the shards of one extraction into one file;
- :func:`cache_info`, :func:`verify_cache`, :func:`list_caches`;
- :class:`WriterLock` / :class:`CacheLockedError`: one writer per cache;
- :func:`cache_fingerprint`, :func:`key_differences`, :data:`KEY_FIELDS`: what makes two
  caches interchangeable;
- for the extraction's incremental writer: :func:`write_header`, :func:`create_frames`,
  :func:`write_index`, :func:`commit`, :func:`manifest_to_json`.
"""

from featstore.cache._format import (
    DTYPES,
    FORMAT_VERSION,
    KEY_FIELDS,
    CacheError,
    cache_fingerprint,
    cache_key,
    commit,
    create_frames,
    key_differences,
    manifest_to_json,
    write_cache,
    write_header,
    write_index,
)
from featstore.cache._find import CacheNotFoundError, cache_location, find_cache, open_model_cache
from featstore.cache._inspect import cache_info, list_caches, verify_cache
from featstore.cache._lock import CacheLockedError, WriterLock
from featstore.cache._merge import merge_caches, merge_files
from featstore.cache._reader import FeatureCache, expand_paths, open_cache

__all__ = [
    "DTYPES", "FORMAT_VERSION", "KEY_FIELDS", "CacheError", "CacheLockedError", "CacheNotFoundError",
    "FeatureCache", "WriterLock", "cache_fingerprint", "cache_location", "cache_info", "cache_key", "expand_paths", "find_cache",
    "key_differences", "list_caches", "merge_caches", "merge_files", "open_cache", "open_model_cache",
    "verify_cache", "write_cache", "commit", "create_frames", "manifest_to_json", "write_header", "write_index",
]
