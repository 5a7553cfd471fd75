"""Extraction of every hidden state of a model over a corpus into the HDF5 cache, and its
benchmark (``featstore bench``).

- :class:`ExtractConfig`, :func:`extract` (-> cache path), :func:`run_extraction`
  (-> :class:`ExtractReport`);
- :func:`parse_shard`, :func:`shard_bounds`, :func:`shard_rows`: splitting a corpus by cumulative duration;
- :func:`output_path`: where a run writes.
"""

from featstore.extract._config import ExtractConfig, ExtractError, parse_shard, shard_file_name
from featstore.extract._pipeline import (
    ExtractReport,
    extract,
    output_path,
    run_extraction,
    safe_name,
    shard_rows,
)
from featstore.extract._plan import plan_batches, shard_bounds

__all__ = [
    "ExtractConfig", "ExtractError", "ExtractReport", "extract", "output_path", "parse_shard",
    "plan_batches", "run_extraction", "safe_name", "shard_bounds", "shard_file_name", "shard_rows",
]
