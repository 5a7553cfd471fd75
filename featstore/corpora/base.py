"""What every corpus reader shares: the registry record, errors, warnings and helpers.

A reader is a function ``read_<corpus>(root: Path, **options) -> pl.DataFrame`` that
returns a manifest (see :mod:`featstore.manifest`). Readers never fail a whole corpus on
one odd line or file: they skip or keep it and emit a :class:`CorpusWarning` that says
what and where (``featstore prepare`` prints those warnings).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from featstore.audio import AudioError, probe_duration
from featstore.errors import CrosslingError, UnsafeIdError, path_inside, safe_file_stem
from featstore.manifest import make_manifest

OUTSIDE_REASON = "path outside the corpus root"
"""Reason recorded in the bad-file table for an audio path refused by :class:`RootGuard`."""


class CorpusNotFoundError(CrosslingError, FileNotFoundError):
    """The corpus is not where the user said; the message says what belongs where."""


class CorpusFormatError(CrosslingError, ValueError):
    """A label file or manifest that the reader cannot understand (names file and line)."""


class CorpusWarning(UserWarning):
    """Something odd but not fatal in a corpus (skipped line, label mismatch, missing wav)."""


class OutsideRootWarning(CorpusWarning):
    """Audio paths refused because they leave the corpus root (``..``, an absolute path
    elsewhere, a symbolic link pointing out). ``refused`` holds one ``{utt_id, path,
    reason}`` dict per refused utterance: ``featstore prepare`` writes them to the
    bad-file table."""

    def __init__(self, message: str, refused: list[dict]) -> None:
        super().__init__(message)
        self.refused = refused


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


def _absolute(path: Path) -> Path:
    """``path`` joined to the working directory when relative, ``..`` kept (resolving
    them is :func:`featstore.errors.path_inside`'s job, symbolic links included)."""
    path = Path(path)
    return path if path.is_absolute() else Path.cwd() / path


def normal_path(path: Path) -> Path:
    """``path`` made absolute with no ``..`` left (resolved when it had one, so that the
    stored path is the file that was checked)."""
    path = Path(path)
    return path.resolve() if ".." in path.parts else Path(os.path.abspath(path))


class RootGuard:
    """Checks that every audio path a reader is about to use stays inside the corpus root.

    A path that climbs out (``../../x.wav``), is absolute elsewhere, or is (or lies under)
    a symbolic link pointing out of the root is refused: the reader leaves the utterance
    out *without opening or probing the file*, and :meth:`report` emits one
    :class:`OutsideRootWarning` listing every refused path. ``allow_outside=True`` (the
    user's explicit ``--allow-outside-root``) admits them, still reported in a warning.
    """

    def __init__(self, root: Path, allow_outside: bool = False) -> None:
        self.root = Path(root).resolve()
        self.allow_outside = allow_outside
        self.refused: list[dict] = []
        self.admitted_outside: list[str] = []
        self.skipped: list[str] = []

    def readable(self, path: Path) -> bool:
        """Whether a label/transcript file or a folder may be read or listed: inside the
        root (or allowed out).
        A refused one is not read and is named by :meth:`report`."""
        path = _absolute(path)
        try:
            path_inside(path, self.root, what="file")
            return True
        except (OSError, RuntimeError, ValueError):  # UnsafeIdError is a ValueError
            if self.allow_outside:
                if str(path) not in self.admitted_outside:
                    self.admitted_outside.append(str(path))
                return True
            if str(path) not in self.skipped:
                self.skipped.append(str(path))
            return False

    def admit(self, path: Path, utt_id: str) -> Path | None:
        """The normalized absolute path to store for ``utt_id``, or None when refused.
        A relative ``path`` is relative to the working directory (like ``open``)."""
        path = _absolute(path)
        try:
            path_inside(path, self.root, what="audio path")
        except UnsafeIdError:
            if self.allow_outside:
                self.admitted_outside.append(f"{utt_id} ({path})")
                return normal_path(path)
            self.refused.append({"utt_id": str(utt_id), "path": str(path),
                                 "reason": f"{OUTSIDE_REASON} {self.root}"})
            return None
        except (OSError, RuntimeError, ValueError) as err:  # symlink loop, NUL byte, too long
            self.refused.append({"utt_id": str(utt_id), "path": repr(str(path))[1:-1],
                                 "reason": f"unusable path: {err}"})
            return None
        return normal_path(path)

    def report(self, corpus: str) -> None:
        """Warn once about refused (or explicitly admitted) outside paths."""
        if self.refused:
            listed = [f"{r['utt_id']} ({r['path']})" for r in self.refused]
            message = (f"{corpus}: {len(self.refused)} audio path(s) leave the corpus root {self.root} "
                       f"(.., absolute path elsewhere or symbolic link out); refused, never opened, "
                       f"listed in the bad-file table (pass --allow-outside-root to admit them): "
                       f"{summarize(listed)}")
            warnings.warn(OutsideRootWarning(message, list(self.refused)), stacklevel=3)
        if self.skipped:
            warn(f"{corpus}: {len(self.skipped)} file(s) or folder(s) leave the corpus root "
                 f"{self.root} (symbolic link out); not read (pass --allow-outside-root to read "
                 f"them): {summarize(self.skipped)}")
        if self.admitted_outside:
            warn(f"{corpus}: {len(self.admitted_outside)} audio path(s) outside the corpus root "
                 f"{self.root} admitted (--allow-outside-root): {summarize(self.admitted_outside)}")


def flag_unsafe_ids(ids: list[str], corpus: str, where: str) -> None:
    """Warn about utterance ids that cannot be used as one file name (``/``, ``..``, NUL,
    control characters, leading dot): tools that write one file per utterance refuse them."""
    unsafe = []
    for utt_id in ids:
        try:
            safe_file_stem(utt_id)
        except UnsafeIdError:
            unsafe.append(repr(utt_id))
    if unsafe:
        warn(f"{corpus}: {len(unsafe)} utt_id(s) in {where} cannot be used as file names (path "
             f"separator, '..', leading '.', control character or over 200 characters); writing one "
             f"file per utterance (e.g. extract_release) will refuse them: {summarize(unsafe)}")


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
            raise CorpusFormatError(f"label map item {item!r} is not of the form original=emotion "
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
