"""The paper's fold protocol: 5 folds of 1600 train / 200 validation / 200 test, balanced
per emotion, with held-out speaker groups where the corpus has several speakers.

Schemes (named in the fold table's metadata and in the command's output):

``held-out-speakers`` / ``held-out-sessions``
    Speakers (or IEMOCAP sessions) are sorted and cut into ``n_folds`` contiguous groups
    (ESD's ten Mandarin speakers give 0001+0002, 0003+0004, ...). A fixed pool is drawn per
    group and emotion, spread evenly over the group's speakers (ESD: 50 per emotion per
    speaker; IEMOCAP: 100 per emotion per session). Fold ``i`` holds out group ``i``: its
    pool is split into validation and test (balanced per emotion and speaker); the other
    groups' pools give the training set. Speaker- (session-) independent.
``random-draws``
    Single-speaker corpora (PAVOQUE): each fold is an independent balanced random draw, so
    test sets of different folds may overlap, as in the paper.

When the paper's counts do not fit a small corpus (the demo corpus), ``scale="auto"``
keeps the proportions (80/10/10 by default) at the largest size that fits and records it
(``scaled``, ``note``) in the metadata.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from featstore.errors import CrosslingError
from featstore.io import TableError, parquet_key_values, write_parquet
from featstore.manifest import CANONICAL_EMOTIONS, manifest_fingerprint
from featstore.splits._draw import round_robin, spread

PARTS: tuple[str, ...] = ("train", "valid", "test")
FOLD_SCHEMA: dict[str, pl.DataType] = {"fold": pl.Int64, "part": pl.Utf8, "utt_id": pl.Utf8}
GROUP_BY: tuple[str, ...] = ("auto", "speaker", "session", "none")
SCALE: tuple[str, ...] = ("auto", "off")


class FoldError(CrosslingError, ValueError):
    """The corpus cannot give the folds asked for (the message says what was found)."""


class FoldTableNotFoundError(CrosslingError, FileNotFoundError):
    """No fold table where one was expected."""


@dataclass(frozen=True)
class FoldConfig:
    """How to cut a corpus into folds; defaults are the paper's protocol.

    Attributes
    ----------
    n_folds : int
        Number of folds (paper: 5).
    n_train, n_valid, n_test : int
        Utterances per fold and part (paper: 1600/200/200); each must divide evenly over
        the emotions.
    seed : int
        Seed of the numpy Generator that makes every random choice.
    group_by : str
        ``auto`` (session if the manifest has several, else speaker if several, else
        none), ``speaker``, ``session`` or ``none`` (independent random draws).
    scale : str
        ``auto``: keep the proportions at the largest size that fits when the counts do
        not; ``off``: the exact counts or a :class:`FoldError`.
    languages : tuple[str, ...]
        Keep only these language codes (empty: all), e.g. ``("cn",)`` for ESD's Mandarin half.
    emotions : tuple[str, ...]
        The classes balanced over (paper: angry, happy, neutral, sad).
    """

    n_folds: int = 5
    n_train: int = 1600
    n_valid: int = 200
    n_test: int = 200
    seed: int = 0
    group_by: str = "auto"
    scale: str = "auto"
    languages: tuple[str, ...] = ()
    emotions: tuple[str, ...] = field(default=CANONICAL_EMOTIONS)

    def __post_init__(self) -> None:
        if self.n_folds < 2:
            raise FoldError(f"n_folds must be at least 2, got {self.n_folds}")
        if self.group_by not in GROUP_BY:
            raise FoldError(f"group_by must be one of {GROUP_BY}, got {self.group_by!r}")
        if self.scale not in SCALE:
            raise FoldError(f"scale must be one of {SCALE}, got {self.scale!r}")
        if not self.emotions or len(set(self.emotions)) != len(self.emotions):
            raise FoldError(f"emotions must be distinct and non-empty, got {self.emotions}")
        n_emo = len(self.emotions)
        for name in ("n_train", "n_valid", "n_test"):
            value = getattr(self, name)
            if value <= 0 or value % n_emo:
                raise FoldError(f"{name}={value} must be a positive multiple of {n_emo} (one share per emotion)")


@dataclass(frozen=True)
class FoldTable:
    """A fold table (columns ``fold``, ``part``, ``utt_id``) and its metadata."""

    table: pl.DataFrame
    meta: dict

    @property
    def scheme(self) -> str:
        """Name of the scheme that made the folds."""
        return str(self.meta.get("scheme", ""))

    def ids(self, fold: int, part: str) -> list[str]:
        """Utterance ids of one fold's part, sorted."""
        sel = self.table.filter((pl.col("fold") == fold) & (pl.col("part") == part))
        return sorted(sel["utt_id"].to_list())


def _grouping(frame: pl.DataFrame, config: FoldConfig) -> tuple[str, str]:
    """Pick the grouping column; returns (column or "", note)."""
    n_sessions = frame["session"].drop_nulls().n_unique()
    n_speakers = frame["speaker"].n_unique()
    if config.group_by == "none":
        return "", ""
    if config.group_by == "auto":
        if n_sessions >= 2:
            column, n_groups = "session", n_sessions
        elif n_speakers >= 2:
            column, n_groups = "speaker", n_speakers
        else:
            return "", ""
        if n_groups < config.n_folds:
            return "", (
                f"only {n_groups} {column}s for {config.n_folds} folds: independent balanced draws, "
                f"not {column}-independent"
            )
        return column, ""
    column = config.group_by
    n_groups = n_sessions if column == "session" else n_speakers
    if n_groups < config.n_folds:
        raise FoldError(
            f"group_by={column!r} needs at least {config.n_folds} {column}s for {config.n_folds} folds, "
            f"found {n_groups}; use --group-by none for independent draws"
        )
    return column, ""


def _candidate_counts(config: FoldConfig) -> list[tuple[int, int, int]]:
    """Per-emotion (train, valid, test) counts to try, the paper's first then scaled ones."""
    n_emo = len(config.emotions)
    exact = (config.n_train // n_emo, config.n_valid // n_emo, config.n_test // n_emo)
    if config.scale == "off":
        return [exact]
    smallest = min(exact)
    out = [exact]
    for m in range(smallest - 1, 0, -1):
        factor = m / smallest
        out.append(tuple(max(1, round(c * factor)) for c in exact))
    return out


def _group_fits(avail: dict, n_folds: int, counts: tuple[int, int, int]) -> bool:
    train, valid, test = counts
    need = max(valid + test, math.ceil(train / (n_folds - 1)))
    return all(n >= need for per_emo in avail.values() for n in per_emo.values())


def _random_fits(avail: dict, counts: tuple[int, int, int]) -> bool:
    return all(n >= sum(counts) for n in avail.values())


def _by_speaker(frame: pl.DataFrame) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for spk, utt in zip(frame["speaker"].to_list(), frame["utt_id"].to_list(), strict=True):
        out.setdefault(str(spk), []).append(utt)
    return out


def _availability_text(avail: dict) -> str:
    return json.dumps(avail, ensure_ascii=False)


def make_folds(
    manifest: pl.DataFrame, config: FoldConfig = FoldConfig(), exclude: Mapping[str, str] | None = None
) -> FoldTable:
    """Cut a manifest into balanced folds following the paper's protocol.

    Parameters
    ----------
    manifest : polars.DataFrame
        A manifest (``featstore.manifest``); rows outside ``config.emotions`` and
        ``config.languages`` are ignored.
    config : FoldConfig
        Counts, seed, grouping and scaling.
    exclude : Mapping[str, str], optional
        Utterances to leave out, ``{utt_id: reason}``: the unusable files that
        ``featstore prepare --check-audio`` found (``featstore.audio.load_bad_files``).

    Returns
    -------
    FoldTable
        ``n_folds * (n_train + n_valid + n_test)`` rows (fewer when scaled down) and the
        metadata ``scheme``, ``seed``, ``manifest_fingerprint``, ``counts`` (fold -> part ->
        utterances), ``per_emotion``, ``requested``, ``scaled``, ``note``, ``group_by``,
        ``held_out`` (fold -> held-out speakers/sessions), ``emotions``, ``languages``,
        ``excluded`` (the left-out utterance ids among the rows the folds draw from).

    Raises
    ------
    FoldError
        When the corpus is too small even for the smallest balanced folds (or, with
        ``scale="off"``, for the counts asked), with the numbers found.
    """
    frame = manifest.filter(pl.col("emotion").is_in(list(config.emotions)))
    if config.languages:
        frame = frame.filter(pl.col("language").is_in(list(config.languages)))
    excluded = sorted(set(exclude or {}) & set(frame["utt_id"].to_list()))
    if excluded:
        frame = frame.filter(~pl.col("utt_id").is_in(excluded))
    if frame.is_empty():
        raise FoldError(
            f"no utterances with emotions {list(config.emotions)}"
            + (f" and languages {list(config.languages)}" if config.languages else "")
        )
    frame = frame.sort("utt_id")
    rng = np.random.default_rng(config.seed)
    column, note = _grouping(frame, config)
    n_folds = config.n_folds

    if column:
        keys = sorted({str(k) for k in frame[column].drop_nulls().to_list()}, key=_natural)
        groups = [list(map(str, g)) for g in np.array_split(np.array(keys, dtype=object), n_folds)]
        frame = frame.with_columns(pl.col(column).cast(pl.Utf8).alias("_group"))
        avail = {
            "+".join(g): {e: frame.filter(pl.col("_group").is_in(g) & (pl.col("emotion") == e)).height
                          for e in config.emotions}
            for g in groups
        }
        counts = next((c for c in _candidate_counts(config) if _group_fits(avail, n_folds, c)), None)
        if counts is None:
            need = _candidate_counts(config)[-1 if config.scale == "auto" else 0]
            raise FoldError(
                f"not enough utterances for {n_folds} folds held out by {column}: each group needs "
                f"{max(need[1] + need[2], math.ceil(need[0] / (n_folds - 1)))} per emotion"
                + (" (the smallest folds in these proportions)" if config.scale == "auto" else "")
                + ", "
                f"found {_availability_text(avail)}"
            )
        rows, held_out = _group_folds(frame, groups, counts, config, rng)
        scheme = f"held-out-{column}s"
    else:
        avail = {e: frame.filter(pl.col("emotion") == e).height for e in config.emotions}
        counts = next((c for c in _candidate_counts(config) if _random_fits(avail, c)), None)
        if counts is None:
            need = _candidate_counts(config)[-1 if config.scale == "auto" else 0]
            raise FoldError(
                f"not enough utterances for balanced folds: each emotion needs {sum(need)}"
                + (" (the smallest folds in these proportions)" if config.scale == "auto" else "")
                + ", "
                f"found {_availability_text(avail)}"
            )
        rows = _random_folds(frame, counts, config, rng)
        held_out = {}
        scheme = "random-draws"

    n_emo = len(config.emotions)
    exact = (config.n_train, config.n_valid, config.n_test)
    used = tuple(c * n_emo for c in counts)
    scaled = used != exact
    notes = [note] if note else []
    if excluded:
        notes.append(f"left out {len(excluded)} utterance(s) with unusable audio")
    if scaled:
        notes.append(
            f"the corpus is too small for {exact[0]}/{exact[1]}/{exact[2]} per fold: scaled down to "
            f"{used[0]}/{used[1]}/{used[2]} keeping the proportions"
        )
    table = pl.DataFrame(rows, schema=FOLD_SCHEMA, orient="row")
    order = {p: i for i, p in enumerate(PARTS)}
    table = (
        table.with_columns(pl.col("part").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
        .sort(["fold", "_o", "utt_id"])
        .drop("_o")
    )
    meta = {
        "scheme": scheme,
        "seed": config.seed,
        "manifest_fingerprint": manifest_fingerprint(manifest),
        "counts": {str(f): dict(zip(PARTS, used, strict=True)) for f in range(n_folds)},
        "per_emotion": dict(zip(PARTS, counts, strict=True)),
        "requested": dict(zip(PARTS, exact, strict=True)),
        "scaled": scaled,
        "note": "; ".join(notes),
        "group_by": column or "none",
        "held_out": held_out,
        "n_folds": n_folds,
        "emotions": list(config.emotions),
        "languages": list(config.languages),
        "excluded": excluded,
    }
    return FoldTable(table=table, meta=meta)


def _natural(key: str) -> tuple:
    """Sort numbers numerically (sessions 1..10) and text as text."""
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def _group_folds(
    frame: pl.DataFrame,
    groups: list[list[str]],
    counts: tuple[int, int, int],
    config: FoldConfig,
    rng: np.random.Generator,
) -> tuple[list[tuple[int, str, str]], dict[str, list[str]]]:
    n_train, n_valid, n_test = counts
    n_folds = config.n_folds
    pool_size = max(n_valid + n_test, math.ceil(n_train / (n_folds - 1)))
    # One fixed pool per group and emotion (as the paper's files show), spread over speakers.
    pools = {
        (g, e): round_robin(
            _by_speaker(frame.filter(pl.col("_group").is_in(groups[g]) & (pl.col("emotion") == e))),
            pool_size,
            rng,
        )
        for g in range(n_folds)
        for e in config.emotions
    }
    rows: list[tuple[int, str, str]] = []
    for fold in range(n_folds):
        others = [g for g in range(n_folds) if g != fold]
        for e in config.emotions:
            pool = pools[(fold, e)]
            rows += [(fold, "valid", u) for u in pool[:n_valid]]
            rows += [(fold, "test", u) for u in pool[n_valid:n_valid + n_test]]
            for g, quota in zip(others, spread(n_train, len(others), rng), strict=True):
                rows += [(fold, "train", u) for u in pools[(g, e)][:quota]]
    held_out = {str(fold): groups[fold] for fold in range(n_folds)}
    return rows, held_out


def _random_folds(
    frame: pl.DataFrame, counts: tuple[int, int, int], config: FoldConfig, rng: np.random.Generator
) -> list[tuple[int, str, str]]:
    n_train, n_valid, n_test = counts
    by_emotion = {e: _by_speaker(frame.filter(pl.col("emotion") == e)) for e in config.emotions}
    rows: list[tuple[int, str, str]] = []
    for fold in range(config.n_folds):
        for e in config.emotions:
            draw = round_robin(by_emotion[e], n_train + n_valid + n_test, rng)
            rows += [(fold, "valid", u) for u in draw[:n_valid]]
            rows += [(fold, "test", u) for u in draw[n_valid:n_valid + n_test]]
            rows += [(fold, "train", u) for u in draw[n_valid + n_test:]]
    return rows


def save_folds(folds: FoldTable, path: str | Path) -> Path:
    """Write a fold table to ``path`` (parquet) atomically; every metadata entry is stored
    as a JSON string under its own key."""
    meta = {key: json.dumps(value, ensure_ascii=False) for key, value in folds.meta.items()}
    return write_parquet(folds.table.select(list(FOLD_SCHEMA)), Path(path), extra=meta)


def load_folds(path: str | Path) -> tuple[pl.DataFrame, dict]:
    """Read a fold table written by :func:`save_folds`.

    Returns
    -------
    (polars.DataFrame, dict)
        The table (``fold``, ``part``, ``utt_id``) and its metadata (``scheme``, ``seed``,
        ``manifest_fingerprint``, ``counts`` ...).
    """
    path = Path(path)
    if not path.exists():
        raise FoldTableNotFoundError(f"{path}: no fold table here; run `featstore splits CORPUS` first")
    try:
        table = pl.read_parquet(path)
        key_values = parquet_key_values(path)
    except TableError as err:
        raise FoldError(str(err)) from err
    except Exception as err:  # polars raises several types for a damaged file
        raise FoldError(f"{path}: not a readable fold table ({err}); run `featstore splits` again") from err
    missing = [c for c in FOLD_SCHEMA if c not in table.columns]
    if missing:
        raise FoldError(f"{path}: not a fold table, missing column(s) {missing}")
    bad = sorted(set(table["part"].cast(pl.Utf8).unique().to_list()) - set(PARTS), key=str)
    if bad:
        raise FoldError(f"{path}: unknown part(s) {bad}, expected {list(PARTS)}")
    meta = {}
    for key, value in key_values.items():
        if key.startswith("ARROW:") or key == "pandas":
            continue
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    return table.select([pl.col(c).cast(t) for c, t in FOLD_SCHEMA.items()]), meta


def count_table(folds: FoldTable | pl.DataFrame, manifest: pl.DataFrame) -> pl.DataFrame:
    """Utterances per fold, part and emotion (one column per emotion plus ``total``)."""
    table = folds.table if isinstance(folds, FoldTable) else folds
    joined = table.join(manifest.select("utt_id", "emotion"), on="utt_id", how="left")
    wide = (
        joined.group_by("fold", "part", "emotion").len()
        .pivot(on="emotion", index=["fold", "part"], values="len")
        .fill_null(0)
    )
    emo_cols = [c for c in CANONICAL_EMOTIONS if c in wide.columns]
    emo_cols += sorted(c for c in wide.columns if c not in (*emo_cols, "fold", "part"))
    order = {p: i for i, p in enumerate(PARTS)}
    return (
        wide.with_columns(pl.sum_horizontal(emo_cols).alias("total"),
                          pl.col("part").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
        .sort("fold", "_o").select("fold", "part", *emo_cols, "total")
    )
