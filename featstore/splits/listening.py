"""The listening-test subset: 12 test utterances per emotion per corpus, as in the paper
(improvised utterances only for IEMOCAP)."""

from __future__ import annotations

import numpy as np
import polars as pl

from featstore.manifest import CANONICAL_EMOTIONS
from featstore.splits._draw import round_robin
from featstore.splits.folds import FoldError, FoldTable, _by_speaker


def select_listening_subset(
    manifest: pl.DataFrame,
    folds: FoldTable | pl.DataFrame,
    per_emotion: int = 12,
    seed: int = 0,
    improvised_only: bool | None = None,
    emotions: tuple[str, ...] = CANONICAL_EMOTIONS,
) -> pl.DataFrame:
    """Pick the utterances of a listening test from the folds' test data.

    Parameters
    ----------
    manifest : polars.DataFrame
        The corpus's manifest.
    folds : FoldTable or polars.DataFrame
        Its fold table; candidates are the utterances of any fold's ``test`` part.
    per_emotion : int
        Utterances per emotion (paper: 12).
    seed : int
        Seed of the numpy Generator of the draw.
    improvised_only : bool or None
        Keep only ``mode == "improvised"`` rows. ``None``: yes when the manifest has
        improvised rows (IEMOCAP), no otherwise.
    emotions : tuple[str, ...]
        The emotions to draw (paper: angry, happy, neutral, sad).

    Returns
    -------
    polars.DataFrame
        ``per_emotion * len(emotions)`` manifest rows, spread as evenly as possible over
        speakers, ordered by emotion (in ``emotions`` order) then ``utt_id``.

    Raises
    ------
    FoldError
        (a ``ValueError``) When an emotion has fewer than ``per_emotion`` candidates (the message gives the
        numbers found).
    """
    if per_emotion <= 0:
        raise FoldError(f"per_emotion must be positive, got {per_emotion}")
    table = folds.table if isinstance(folds, FoldTable) else folds
    test_ids = table.filter(pl.col("part") == "test")["utt_id"].unique().to_list()
    candidates = manifest.filter(pl.col("utt_id").is_in(test_ids) & pl.col("emotion").is_in(list(emotions)))
    if improvised_only is None:
        improvised_only = "mode" in manifest.columns and (manifest["mode"] == "improvised").any()
    if improvised_only:
        candidates = candidates.filter(pl.col("mode") == "improvised")
    candidates = candidates.sort("utt_id")
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    found = {e: candidates.filter(pl.col("emotion") == e).height for e in emotions}
    short = {e: n for e, n in found.items() if n < per_emotion}
    if short:
        raise FoldError(
            f"not enough test utterances for {per_emotion} per emotion"
            + (" (improvised only)" if improvised_only else "")
            + f": found {found}"
        )
    for e in emotions:
        chosen += round_robin(_by_speaker(candidates.filter(pl.col("emotion") == e)), per_emotion, rng)
    order = {e: i for i, e in enumerate(emotions)}
    return (
        manifest.filter(pl.col("utt_id").is_in(chosen))
        .with_columns(pl.col("emotion").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
        .sort("_o", "utt_id").drop("_o")
    )
