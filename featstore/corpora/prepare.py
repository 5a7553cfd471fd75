"""Run a reader, save its manifest, optionally check every audio file (``featstore prepare``)."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from featstore.audio import (
    BAD_FILES_SCHEMA,
    bad_files_fingerprint,
    bad_files_path,
    check_audio,
    save_bad_files,
)
from featstore.corpora import READERS
from featstore.corpora.base import CorpusFormatError, CorpusWarning, OutsideRootWarning
from featstore.errors import CrosslingError, unknown_name
from featstore.manifest import CANONICAL_EMOTIONS, manifest_fingerprint, save_manifest
from featstore.paths import manifest_path


class PrepareError(CrosslingError, OSError):
    """The manifest cannot be written where the cache root says (names the file)."""


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class PrepareConfig:
    """What ``featstore prepare`` does.

    Attributes
    ----------
    corpus : str
        Reader name, a key of :data:`featstore.corpora.READERS`.
    root : Path
        Where the corpus lies (folder, or the table / json file).
    name : str, optional
        Name of the prepared corpus (manifest file name, ``corpus`` column); default the
        reader name. Required for the ``table`` reader.
    options : dict
        Reader options (see the reader's ``options``), only those given.
    cache_root : Path, optional
        Cache root; default ``$CROSSLING_CACHE`` or ``./cache``.
    check : bool
        Decode every file and save the bad ones beside the manifest (default False).
    allow_outside_root : bool
        Admit audio paths that leave the corpus root (``..``, absolute paths elsewhere,
        symbolic links out); default False: such utterances are refused unopened, left
        out of the manifest and listed in the bad-file table (CLI ``--allow-outside-root``).
    """

    corpus: str
    root: Path
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    cache_root: Path | None = None
    check: bool = False
    allow_outside_root: bool = False

    def __post_init__(self) -> None:
        if self.corpus not in READERS:
            raise unknown_name("corpus reader", self.corpus, READERS)
        spec = READERS[self.corpus]
        unknown = sorted(set(self.options) - set(spec.options))
        if unknown:
            takes = ", ".join(spec.options) or "no options"
            raise CorpusFormatError(f"reader {self.corpus} does not take {unknown}; it takes: {takes}")
        if spec.needs_name and not self.name:
            raise CorpusFormatError(f"reader {self.corpus} needs a corpus name (--name, e.g. tjd)")
        if self.name is not None and (not _NAME_RE.match(self.name) or len(self.name) > 100):
            raise CorpusFormatError(f"corpus name {self.name!r}: use letters, digits, '_', '-', '.' "
                                    f"(at most 100, starting with a letter or digit)")

    @property
    def corpus_name(self) -> str:
        """The prepared corpus's name."""
        return self.name or self.corpus


@dataclass(frozen=True)
class PrepareResult:
    """What :func:`prepare_corpus` produced."""

    manifest: pl.DataFrame
    manifest_path: Path
    fingerprint: str
    warnings: tuple[str, ...]
    bad_files: pl.DataFrame | None = None
    bad_files_path: Path | None = None
    removed_stale_bad_files: bool = False
    refused: pl.DataFrame | None = None
    """Utterances refused because their path leaves the corpus root (utt_id, path, reason)."""


def read_corpus(config: PrepareConfig) -> tuple[pl.DataFrame, list[str]]:
    """Run the reader; return the manifest and the reader's warnings (as text)."""
    frame, messages, _ = read_corpus_refused(config)
    return frame, messages


def read_corpus_refused(config: PrepareConfig) -> tuple[pl.DataFrame, list[str], pl.DataFrame]:
    """Run the reader; return the manifest, its warnings (as text) and the table of
    utterances refused for leaving the corpus root (columns of the bad-file table)."""
    spec = READERS[config.corpus]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CorpusWarning)
        try:
            frame = spec.read(Path(config.root), name=config.corpus_name,
                              allow_outside_root=config.allow_outside_root, **config.options)
        except OSError as err:
            if isinstance(err, CrosslingError):
                raise
            where = err.filename or config.root
            raise CorpusFormatError(f"{where}: cannot be read ({err.strerror or err})") from err
    messages = [str(w.message) for w in caught if issubclass(w.category, CorpusWarning)]
    refused = [row for w in caught if isinstance(w.message, OutsideRootWarning) for row in w.message.refused]
    return frame, messages, pl.DataFrame(refused, schema=BAD_FILES_SCHEMA)


def audio_root(root: Path) -> Path:
    """Folder that every audio path of the corpus must lie in (the root, or the folder
    of a table/json file)."""
    root = Path(root).resolve()
    return root if root.is_dir() else root.parent


def prepare_corpus(config: PrepareConfig, progress: bool = True) -> PrepareResult:
    """Read the corpus, save the manifest at :func:`featstore.paths.manifest_path`, and
    with ``config.check`` decode every file and save the bad ones beside it.

    A bad-file table left from an earlier manifest with another fingerprint is removed,
    so later steps never skip files on stale information. Utterances whose path leaves
    the corpus root are never opened and never enter the manifest: they are listed in the
    bad-file table (reason ``path outside the corpus root ...``), with or without the
    audio check, unless ``config.allow_outside_root``.
    """
    frame, messages, refused = read_corpus_refused(config)
    path = manifest_path(config.corpus_name, config.cache_root)
    try:
        save_manifest(frame, path, root=Path(config.root).resolve())
    except OSError as err:  # cache root is a file, not writable, disk full
        raise PrepareError(f"{path}: cannot write the manifest ({err})") from err
    fingerprint = manifest_fingerprint(frame)
    if config.check:
        root = None if config.allow_outside_root else audio_root(config.root)
        bad = pl.concat([refused, check_audio(frame, root=root, progress=progress)])
        bad_path = save_bad_files(bad, path, fingerprint)
        return PrepareResult(frame, path, fingerprint, tuple(messages), bad, bad_path, refused=refused)
    if not refused.is_empty():
        bad_path = save_bad_files(refused, path, fingerprint)
        return PrepareResult(frame, path, fingerprint, tuple(messages), refused, bad_path, refused=refused)
    stale = bad_files_fingerprint(path)
    removed = stale is not None and stale != fingerprint
    if removed:
        bad_files_path(path).unlink()
    return PrepareResult(frame, path, fingerprint, tuple(messages), removed_stale_bad_files=removed,
                         refused=refused)


def count_table(frame: pl.DataFrame) -> pl.DataFrame:
    """Utterances per emotion (rows, canonical ones first) and per speaker (columns),
    with a ``total`` column and a ``total`` row."""
    counts = frame.group_by("emotion", "speaker").len()
    speakers = sorted(frame["speaker"].unique().to_list())
    present = frame["emotion"].unique().to_list()
    emotions = [e for e in CANONICAL_EMOTIONS if e in present] + sorted(
        e for e in present if e not in CANONICAL_EMOTIONS)
    lookup = {(e, s): n for e, s, n in counts.iter_rows()}
    rows = []
    for emotion in emotions:
        per = [lookup.get((emotion, s), 0) for s in speakers]
        rows.append([emotion, *per, sum(per)])
    column_totals = [sum(r[i + 1] for r in rows) for i in range(len(speakers) + 1)]
    rows.append(["total", *column_totals])
    return pl.DataFrame(rows, schema=["emotion", *speakers, "total"], orient="row")
