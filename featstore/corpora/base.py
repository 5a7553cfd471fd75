"""What every corpus reader shares: the registry record, errors, warnings and helpers.

A reader is a function ``read_<corpus>(root: Path, **options) -> pl.DataFrame`` that
returns a manifest (see :mod:`featstore.manifest`). Readers never fail a whole corpus on
one odd line or file: they skip or keep it and emit a :class:`CorpusWarning` that says
what and where (``featstore prepare`` prints those warnings).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from featstore.audio import AudioError, probe_duration
from featstore.manifest import make_manifest


class CorpusNotFoundError(FileNotFoundError):
    """The corpus is not where the user said; the message says what belongs where."""


class CorpusFormatError(ValueError):
    """A label file or manifest that the reader cannot understand (names file and line)."""


class CorpusWarning(UserWarning):
    """Something odd but not fatal in a corpus (skipped line, label mismatch, missing wav)."""


@dataclass(frozen=True)
class ReaderSpec:
    """A registry entry: how to read one corpus layout.

    Attributes
    ----------
    name : str
        Reader name used on the command line (``featstore prepare <name>``).
    description : str
        One line for ``featstore corpora``.
    languages : tuple of str
        Language codes the corpus holds (``("any",)`` for the generic table reader).
    read : callable
        ``read(root, **options) -> pl.DataFrame``.
    options : dict
        Option name -> help text; the only keyword options ``read`` accepts besides ``name``.
    needs_name : bool
        The corpus has no natural name (generic tables): the user must give ``--name``.
    """

    name: str
    description: str
    languages: tuple[str, ...]
    read: Callable[..., pl.DataFrame]
    options: dict[str, str] = field(default_factory=dict)
    needs_name: bool = False

    def __post_init__(self) -> None:
        if not self.name or not self.name.isidentifier():
            raise ValueError(f"reader name must be an identifier, got {self.name!r}")
        if not self.languages:
            raise ValueError(f"reader {self.name}: languages must not be empty")


def warn(message: str) -> None:
    """Emit a :class:`CorpusWarning` (collected and printed by ``featstore prepare``)."""
    warnings.warn(message, CorpusWarning, stacklevel=3)


def summarize(items: list[str], limit: int = 5) -> str:
    """``a, b, c ... (+n more)`` for long lists in warnings."""
    head = ", ".join(items[:limit])
    return head + (f" ... (+{len(items) - limit} more)" if len(items) > limit else "")


class Prober:
    """Duration and sample rate of files from their headers, remembering the unreadable
    ones so that a reader can report them in one warning instead of failing.

    A file that cannot be probed gets ``duration=0.0`` and ``sample_rate=0``; the audio
    check (``--check-audio``) then names the reason.
    """

    def __init__(self) -> None:
        self.failed: list[str] = []
        self._cache: dict[str, tuple[float, int]] = {}

    def __call__(self, path: Path) -> tuple[float, int]:
        key = str(path)
        if key not in self._cache:
            try:
                self._cache[key] = probe_duration(path)
            except AudioError as err:
                self.failed.append(f"{path.name} ({err.reason})")
                self._cache[key] = (0.0, 0)
        return self._cache[key]

    def report(self, corpus: str) -> None:
        """Warn once about every file whose header could not be read."""
        if self.failed:
            warn(f"{corpus}: {len(self.failed)} file(s) with unreadable header, kept with "
                 f"duration 0 (run --check-audio): {summarize(self.failed)}")


def parse_label_map(text: str | dict[str, str] | None) -> dict[str, str]:
    """Parse ``"negation=angry,expectation=happy"`` into ``{"negation": "angry", ...}``.

    Keys are matched case-insensitively (stored lower case); values are lower-cased.
    """
    if text is None:
        return {}
    if isinstance(text, dict):
        return {str(k).strip().lower(): str(v).strip().lower() for k, v in text.items()}
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise ValueError(f"label map item {item!r} is not of the form original=emotion "
                             f"(e.g. 'negation=angry,expectation=happy')")
        mapping[source.strip().lower()] = target.strip().lower()
    return mapping


def to_manifest(rows: list[dict], extras: dict[str, pl.DataType], empty_message: str) -> pl.DataFrame:
    """Validated manifest of ``rows`` with corpus extra columns typed as ``extras``.

    Raises :class:`CorpusNotFoundError` with ``empty_message`` when there is no row: a
    reader that finds no utterance means the corpus is not where the user said.
    """
    if not rows:
        raise CorpusNotFoundError(empty_message)
    frame = make_manifest(rows)
    return frame.with_columns([
        pl.col(col).cast(dtype) if col in frame.columns else pl.lit(None, dtype=dtype).alias(col)
        for col, dtype in extras.items()
    ])
