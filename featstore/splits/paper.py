"""Import the paper's own folds (``split_id/<CORPUS>/{train,eval,test}/metadata_fold<k>.csv``).

Each csv has the header ``file,answer``: a wav base name (``0003_001041.wav``,
``spike0013-angry.wav``, ``Ses01F_impro01_F000.wav``) and a capitalised label. A name is
matched to the manifest by its stem, first against ``utt_id`` and then against the stem of
the manifest's ``path`` (when that stem names one row only). ``eval`` becomes ``valid``.
Some of the paper's files end lines with CRLF: the csv module reads both.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from featstore.errors import CrosslingError
from featstore.manifest import manifest_fingerprint
from featstore.splits.folds import FOLD_SCHEMA, PARTS, FoldTable

PAPER_PARTS: dict[str, str] = {"train": "train", "eval": "valid", "test": "test"}
"""Folder name in the paper's layout -> part in the fold table."""

_FOLD_FILE = re.compile(r"metadata_fold(\d+)\.csv$")
SHOWN_MISSING = 20
"""Missing names listed in an error message; the rest are counted (all are in ``.missing``)."""


class SplitFileError(CrosslingError, ValueError):
    """A split folder or fold file that is not in the paper's layout (names the file)."""


class SplitFolderNotFoundError(CrosslingError, FileNotFoundError):
    """The split folder (or one of its part folders) does not exist."""


def _listing(names: list[str], reasons: dict[str, str], limit: int = SHOWN_MISSING) -> str:
    shown = [f"{name} ({reasons[name]})" if name in reasons else name for name in names[:limit]]
    more = f"\n  ... and {len(names) - limit} more" if len(names) > limit else ""
    return "\n  ".join(shown) + more


class MissingFilesError(CrosslingError, FileNotFoundError):
    """The split names files the corpus lacks; ``missing`` lists every one of them (the
    message shows the first :data:`SHOWN_MISSING` and the counts)."""

    def __init__(
        self, directory: Path, missing: list[str], n_listed: int, reasons: dict[str, str] | None = None,
        corpus_examples: list[str] | None = None,
    ) -> None:
        self.missing = missing
        self.directory = directory
        reasons = reasons or {}
        hint = ""
        if corpus_examples is not None and len(missing) * 2 > n_listed:
            hint = (f"\nmost names are absent: is {directory} the split folder of this corpus? the corpus "
                    f"has ids like {', '.join(corpus_examples[:3]) or '(none)'}")
        super().__init__(
            f"{directory}: {len(missing)} of the {n_listed} files its splits list are not in the corpus"
            + (" or have unusable audio" if reasons else "")
            + f" (use --allow-missing to import the rest):\n  {_listing(missing, reasons)}{hint}"
        )


class NoOverlapError(CrosslingError, FileNotFoundError):
    """Not one file the split lists is in the corpus (even with ``allow_missing``)."""

    def __init__(self, directory: Path, missing: list[str], n_listed: int, corpus_examples: list[str],
                 n_corpus: int) -> None:
        self.missing = missing
        self.directory = directory
        split_like = ", ".join(missing[:3])
        corpus_like = ", ".join(corpus_examples[:3]) or "(none)"
        super().__init__(
            f"{directory}: none of the {n_listed} files its splits list is in the corpus "
            f"({n_corpus} utterances); the split names files like {split_like}, the corpus has ids "
            f"like {corpus_like}. Check that --import points at this corpus's split folder (e.g. "
            f"split_id/CN_ESD for ESD) and that the manifest is the corpus you mean (featstore prepare)"
        )


@dataclass(frozen=True)
class PaperSplitEntry:
    """One line of a paper split file."""

    fold: int
    part: str
    file: str
    answer: str
    source: Path


def read_paper_splits(directory: str | Path) -> list[PaperSplitEntry]:
    """Read every ``{train,eval,test}/metadata_fold<k>.csv`` under ``directory``.

    Raises
    ------
    SplitFolderNotFoundError
        If the folder or one of its part folders is missing, or holds no fold files.
    SplitFileError
        If a file is not UTF-8 CSV, lacks the ``file,answer`` header or a fold lacks one of the parts.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SplitFolderNotFoundError(f"{directory}: no such split folder")
    entries: list[PaperSplitEntry] = []
    folds_per_part: dict[str, set[int]] = {}
    for folder, part in PAPER_PARTS.items():
        sub = directory / folder
        if not sub.is_dir():
            raise SplitFolderNotFoundError(f"{sub}: missing; expected {list(PAPER_PARTS)} folders in {directory}")
        folds_per_part[part] = set()
        for path in sorted(sub.iterdir()):
            match = _FOLD_FILE.fullmatch(path.name)
            if not match:
                continue
            fold = int(match.group(1))
            folds_per_part[part].add(fold)
            try:
                with path.open(newline="", encoding="utf-8-sig") as handle:
                    reader = csv.DictReader(handle)
                    if reader.fieldnames is None or not {"file", "answer"} <= set(reader.fieldnames):
                        raise SplitFileError(f"{path}: expected a header `file,answer`, got {reader.fieldnames}")
                    for line in reader:
                        name = (line["file"] or "").strip()
                        if name:
                            entries.append(PaperSplitEntry(fold, part, name, (line["answer"] or "").strip(), path))
            except UnicodeDecodeError as err:
                raise SplitFileError(f"{path}: not UTF-8 text ({err})") from err
            except csv.Error as err:
                raise SplitFileError(f"{path}: not a readable CSV file ({err})") from err
            except OSError as err:
                raise SplitFileError(f"{path}: cannot be read ({err})") from err
    all_folds = set().union(*folds_per_part.values())
    if all_folds and not entries:
        raise SplitFileError(f"{directory}: its metadata_fold<k>.csv files list no file (header only?)")
    if not all_folds:
        raise SplitFolderNotFoundError(f"{directory}: no metadata_fold<k>.csv files under "
                                       f"{', '.join(PAPER_PARTS)}/")
    for part, folds in folds_per_part.items():
        lacking = sorted(all_folds - folds)
        if lacking:
            raise SplitFileError(f"{directory}: part {part!r} has no file for fold(s) {lacking}")
    return entries


def _stem_index(manifest: pl.DataFrame) -> dict[str, str]:
    """Stem -> utt_id: every utt_id, then path stems that name exactly one row."""
    index = {u: u for u in manifest["utt_id"].to_list()}
    stems: dict[str, list[str]] = {}
    for utt, path in zip(manifest["utt_id"].to_list(), manifest["path"].to_list(), strict=True):
        stems.setdefault(Path(path).stem, []).append(utt)
    for stem, utts in stems.items():
        if len(utts) == 1:
            index.setdefault(stem, utts[0])
    return index


def import_paper_folds(
    manifest: pl.DataFrame,
    directory: str | Path,
    allow_missing: bool = False,
    exclude: Mapping[str, str] | None = None,
) -> FoldTable:
    """Reproduce the paper's folds on a prepared corpus.

    Parameters
    ----------
    manifest : polars.DataFrame
        The corpus's manifest.
    directory : str or Path
        A folder in the paper's layout, e.g. ``shared/paper/split_id/CN_ESD``.
    allow_missing : bool
        Import the files the corpus holds and list the rest in ``meta["missing"]``
        instead of raising.
    exclude : Mapping[str, str], optional
        ``{utt_id: reason}`` of unusable audio (``featstore.audio.load_bad_files``): such
        utterances, when the split lists them, count as missing and are listed with their
        reason in ``meta["unusable"]``.

    Returns
    -------
    FoldTable
        Scheme ``paper-import``; metadata also holds ``source``, ``missing`` (every listed
        file the corpus lacks), ``label_disagreements`` (``file``, ``answer``,
        ``emotion`` where the split's label is not the manifest's emotion) and
        ``counts`` (per fold and part, as imported).

    Raises
    ------
    MissingFilesError
        When files are missing and ``allow_missing`` is false: counts, the first
        :data:`SHOWN_MISSING` names (every one in ``.missing``) and, when most are
        absent, ids of the corpus to compare with.
    NoOverlapError
        When not one listed file is in the corpus (with or without ``allow_missing``).
    """
    directory = Path(directory)
    entries = read_paper_splits(directory)
    exclude = dict(exclude or {})
    index_all = _stem_index(manifest)
    listed = {index_all.get(Path(e.file).stem) for e in entries}
    unusable = {u: exclude[u] for u in manifest["utt_id"].to_list() if u in exclude and u in listed}
    manifest_all = manifest
    if unusable:
        manifest = manifest.filter(~pl.col("utt_id").is_in(list(unusable)))
    index = _stem_index(manifest)
    emotion = dict(zip(manifest["utt_id"].to_list(), manifest["emotion"].to_list(), strict=True))
    rows: list[tuple[int, str, str]] = []
    missing: list[str] = []
    disagreements: list[dict] = []
    seen_missing: set[str] = set()
    for entry in entries:
        utt = index.get(Path(entry.file).stem)
        if utt is None:
            if entry.file not in seen_missing:
                seen_missing.add(entry.file)
                missing.append(entry.file)
            continue
        rows.append((entry.fold, entry.part, utt))
        if entry.answer.lower() != str(emotion[utt]).lower():
            disagreements.append(
                {"file": entry.file, "fold": entry.fold, "part": entry.part,
                 "answer": entry.answer, "emotion": emotion[utt]}
            )
    missing.sort()
    n_listed = len({e.file for e in entries})
    examples = sorted(manifest_all["utt_id"].to_list())[:3]
    if not rows:
        raise NoOverlapError(directory, missing, n_listed, examples, manifest_all.height)
    if missing and not allow_missing:
        reasons = {name: f"unusable audio: {unusable[index_all[Path(name).stem]]}" for name in missing
                   if index_all.get(Path(name).stem) in unusable}
        raise MissingFilesError(directory, missing, n_listed, reasons, examples)
    order = {p: i for i, p in enumerate(PARTS)}
    table = (
        pl.DataFrame(rows, schema=FOLD_SCHEMA, orient="row").unique()
        .with_columns(pl.col("part").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
        .sort(["fold", "_o", "utt_id"]).drop("_o")
    )
    counts = {
        str(fold): {part: table.filter((pl.col("fold") == fold) & (pl.col("part") == part)).height
                    for part in PARTS}
        for fold in sorted(set(table["fold"].to_list()))
    }
    meta = {
        "scheme": "paper-import",
        "seed": None,
        "manifest_fingerprint": manifest_fingerprint(manifest_all),
        "source": str(directory),
        "unusable": unusable,
        "counts": counts,
        "missing": missing,
        "label_disagreements": disagreements,
        "n_folds": len(counts),
    }
    return FoldTable(table=table, meta=meta)
