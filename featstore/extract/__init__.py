"""Extraction of every hidden state of a model over a corpus into the HDF5 cache, and its
benchmark (``featstore bench``).

- :class:`ExtractConfig`, :func:`extract` (-> cache path), :func:`run_extraction`
  (-> :class:`ExtractReport`);
- :func:`parse_shard`, :func:`shard_bounds`, :func:`shard_rows`: splitting a corpus by cumulative duration;
- :func:`output_path`: where a run writes;
- :func:`cache_bytes_per_hour`, :data:`FAMILY_SHAPES`, :data:`DTYPE_BYTES`: cache size per hour of audio (``featstore cache-size``).
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
from featstore.extract._sizes import DTYPE_BYTES, FAMILY_SHAPES, cache_bytes_per_hour

__all__ = [
    "DTYPE_BYTES", "FAMILY_SHAPES", "ExtractConfig", "ExtractError", "cache_bytes_per_hour", "ExtractReport", "extract", "output_path", "parse_shard",
    "plan_batches", "run_extraction", "safe_name", "shard_bounds", "shard_file_name", "shard_rows",
]
