"""The one base class of every user error, and the small checks that raise it.

A :class:`CrosslingError` is something the user can fix (a missing file, a bad value, an
unknown name): the command line prints its message alone, with exit code 2 and no
traceback (``featstore.console``). Every package's error classes derive from it, so a
caller can catch all user errors with one ``except``. Programming errors stay ordinary
exceptions and keep their tracebacks.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path


class CrosslingError(Exception):
    """A user error: its message names the file, key or value and what is allowed."""


class UnknownNameError(CrosslingError, KeyError):
    """A name (model, corpus, reader, setting ...) that is not one of the known ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnsafeIdError(CrosslingError, ValueError):
    """An id that would leave its folder (or name no file) if used as a file name."""


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, else ``""``."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=n, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def known_as_hint(name: str, known_as: Mapping[str, str], kind: str, label: str, close: bool = True) -> str:
    """Point from another name of a known one to the known name: ``known_as`` maps such
    names to known ones (a model's Hugging Face repository -> its alias; ``label``:
    ``"Hugging Face repository"``). `` ('x' is the <label> of <kind> 'a': give 'a')`` when
    ``name`` is one of them (case aside), `` (did you mean 'a' (x)?)`` for the closest
    (with ``close``), else ``""``."""
    lowered = {str(k).lower(): str(v) for k, v in known_as.items()}
    if str(name).lower() in lowered:
        known = lowered[str(name).lower()]
        return f" ({name!r} is the {label} of {kind} {known!r}: give {known!r})"
    nearest = difflib.get_close_matches(str(name).lower(), list(lowered), n=2, cutoff=0.8) if close else []
    if not nearest:
        return ""
    return " (did you mean " + " or ".join(f"{lowered[c]!r} ({c})" for c in nearest) + "?)"


def unknown_name(kind: str, name: str, choices: Iterable[str], hint: str = "",
                 known_as: Mapping[str, str] | None = None, known_as_label: str = "other name") -> UnknownNameError:
    """An :class:`UnknownNameError` that lists what exists (and the closest match);
    ``known_as``: other names of known ones, pointed to the known name
    (:func:`known_as_hint`)."""
    known = sorted({str(c) for c in choices})
    listed = ", ".join(known) if known else "none"
    tail = f"; {hint}" if hint else ""
    closest = ""
    if known_as:
        closest = known_as_hint(name, known_as, kind, known_as_label, close=False)
    closest = closest or did_you_mean(name, known)
    if known_as and not closest:
        closest = known_as_hint(name, known_as, kind, known_as_label)
    return UnknownNameError(f"unknown {kind} {name!r}{closest}; known: {listed}{tail}")


def check_choice(kind: str, name: str, choices: Iterable[str], hint: str = "") -> str:
    """Return ``name`` if it is one of ``choices``, else raise :func:`unknown_name`."""
    choices = list(choices)
    if name not in choices:
        raise unknown_name(kind, name, choices, hint)
    return name


_BAD_CHARS = set('/\\\x00:*?"<>|')


def safe_file_stem(value: str, what: str = "id") -> str:
    """``value`` if it can be used as one file name inside a folder, else
    :class:`UnsafeIdError`: no path separators, no ``..``, no NUL or control characters,
    not empty, at most 200 characters."""
    text = str(value)
    problem = None
    if not text or text.strip() != text:
        problem = "is empty or starts/ends with white space"
    elif text in {".", ".."} or text.startswith("."):
        problem = "starts with '.'"
    elif any(ch in _BAD_CHARS or ord(ch) < 32 for ch in text):
        problem = "contains a path separator or a character not allowed in file names"
    elif len(text) > 200:
        problem = "is longer than 200 characters"
    if problem:
        raise UnsafeIdError(f"{what} {text!r} cannot be used as a file name: it {problem}")
    return text


def path_inside(path: str | Path, root: str | Path, what: str = "path") -> Path:
    """``path`` (relative to ``root`` when not absolute) resolved, if it stays inside
    ``root`` after following ``..`` and symbolic links; else :class:`UnsafeIdError`."""
    root_r = Path(root).resolve()
    p = Path(path)
    full = (p if p.is_absolute() else root_r / p).resolve()
    if full != root_r and root_r not in full.parents:
        raise UnsafeIdError(f"{what} {str(path)!r} leaves {root_r} (resolves to {full})")
    return full
