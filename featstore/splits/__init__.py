"""Folds: the paper's protocol, the import of the paper's own split files, and the
listening-test subset.

A fold table is a polars DataFrame with columns ``fold`` (int), ``part``
(``train``/``valid``/``test``) and ``utt_id``, saved as parquet at
``featstore.paths.splits_path(corpus)`` with metadata ``scheme``, ``seed``,
``manifest_fingerprint``, ``counts`` (see ``docs/architecture.md``).
"""

from featstore.splits.folds import (
    PARTS,
    FoldConfig,
    FoldError,
    FoldTable,
    count_table,
    load_folds,
    make_folds,
    save_folds,
)
from featstore.splits.listening import select_listening_subset
from featstore.splits.paper import (
    MissingFilesError,
    NoOverlapError,
    SplitFileError,
    SplitFolderNotFoundError,
    import_paper_folds,
    read_paper_splits,
)

__all__ = [
    "PARTS",
    "FoldConfig",
    "FoldError",
    "FoldTable",
    "MissingFilesError",
    "NoOverlapError",
    "SplitFileError",
    "SplitFolderNotFoundError",
    "count_table",
    "import_paper_folds",
    "load_folds",
    "make_folds",
    "read_paper_splits",
    "save_folds",
    "select_listening_subset",
]
