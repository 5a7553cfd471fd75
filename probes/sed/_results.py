"""SED results: tables with provenance, the Table-IV-shaped summary, timeline figures.

Every per-utterance table carries :data:`PROVENANCE_COLUMNS` (model, weights fingerprint,
corpus, manifest and cache fingerprints, split, seed, config JSON) and is written as parquet
(provenance also in the file's key-value metadata) and CSV, each under a temporary name
then renamed, so an interrupted run never leaves half a table behind.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from featstore.io import atomic_write, write_parquet
from probes.sed._eder import EMOTIONS

PROVENANCE_COLUMNS: tuple[str, ...] = (
    "model", "model_fingerprint", "corpus", "manifest_fingerprint", "cache_fingerprint",
    "split", "seed", "config_json",
)
"""Provenance recorded on every row of a SED results table."""

TABLE_IV_ROWS: tuple[str, ...] = (*EMOTIONS, "average")
"""Rows of the paper's Table IV: angry, happy, sad, average."""

EMOTION_COLOURS: dict[str, str] = {
    "angry": "#d62728", "happy": "#ffbf00", "neutral": "#c7c7c7", "sad": "#1f77b4",
}


def with_provenance(frame: pl.DataFrame, provenance: Mapping[str, object]) -> pl.DataFrame:
    """``frame`` with one constant column per :data:`PROVENANCE_COLUMNS` entry (missing
    entries become null; ``seed`` is an integer column, the rest strings)."""
    cols = []
    for name in PROVENANCE_COLUMNS:
        value = provenance.get(name)
        dtype = pl.Int64 if name == "seed" else pl.Utf8
        cols.append(pl.lit(None if value is None else (int(value) if name == "seed" else str(value)),
                           dtype=dtype).alias(name))
    return frame.with_columns(cols)


def write_table(frame: pl.DataFrame, out_dir: str | Path, name: str,
                provenance: Mapping[str, object] | None = None) -> dict[str, Path]:
    """Write ``frame`` as ``<out_dir>/<name>.parquet`` and ``.csv`` atomically.

    Returns ``{"parquet": path, "csv": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"parquet": out / f"{name}.parquet", "csv": out / f"{name}.csv"}
    meta = {"crossling_sed": json.dumps(dict(provenance or {}), sort_keys=True, default=str)}
    write_parquet(frame, paths["parquet"], extra=meta)
    atomic_write(paths["csv"], frame.write_csv)
    return paths


def per_emotion(frame: pl.DataFrame, by: Sequence[str] = ()) -> pl.DataFrame:
    """Mean EDER per event emotion (and per ``by`` columns), plus an ``average`` row.

    ``average`` is the plain mean over all utterances (the paper's corpus figure); the
    duration-weighted mean is given beside it as ``eder_duration_weighted``.
    """
    by = list(by)
    aggs = [
        pl.col("eder").mean().alias("eder"),
        ((pl.col("eder") * pl.col("duration")).sum() / pl.col("duration").sum()).alias("eder_duration_weighted"),
        pl.len().alias("n"),
    ]
    parts = frame.group_by([*by, "emotion"]).agg(aggs)
    total = frame.group_by(by).agg(aggs).with_columns(pl.lit("average").alias("emotion")) if by else \
        frame.select(aggs).with_columns(pl.lit("average").alias("emotion"))
    out = pl.concat([parts, total.select(parts.columns)], how="vertical_relaxed")
    order = {e: i for i, e in enumerate(TABLE_IV_ROWS)}
    return out.with_columns(pl.col("emotion").replace_strict(order, default=len(order)).alias("_o")) \
        .sort([*by, "_o"]).drop("_o")


def table_iv(
    model_rows: pl.DataFrame | None = None,
    listener_rows: pl.DataFrame | None = None,
    model_name: str = "model",
    utt_ids: Sequence[str] | None = None,
) -> pl.DataFrame:
    """A table shaped like the paper's Table IV: mean EDER per emotion.

    Parameters
    ----------
    model_rows : per-utterance model results (``utt_id``, ``emotion``, ``eder``, ``duration``).
    listener_rows : per-answer listener results (also ``group``); each group is one column.
    model_name : header of the model's column.
    utt_ids : restrict the model to these utterances (e.g. the listening-test stimuli, so
        that model and listeners are compared on the same 24 utterances).

    Returns
    -------
    Rows ``angry``, ``happy``, ``sad``, ``average`` (plain mean over utterances or answers);
    columns ``emotion``, ``<model>_eder``, then ``listeners_<group>_eder`` per group, every
    EDER a FRACTION 0-1 as the ``_eder`` in the name says (the report shows %).
    """
    table = pl.DataFrame({"emotion": list(TABLE_IV_ROWS)})
    if model_rows is not None:
        rows = model_rows if utt_ids is None else model_rows.filter(pl.col("utt_id").is_in(list(utt_ids)))
        if rows.is_empty():
            raise ValueError("no model results for the requested utterances")
        summary = per_emotion(rows).select("emotion", pl.col("eder").alias(f"{model_name}_eder"))
        table = table.join(summary, on="emotion", how="left")
    if listener_rows is not None and not listener_rows.is_empty():
        summary = per_emotion(listener_rows, by=["group"])
        for group in sorted(summary["group"].unique().to_list()):
            col = summary.filter(pl.col("group") == group).select(
                "emotion", pl.col("eder").alias(f"listeners_{group}_eder"))
            table = table.join(col, on="emotion", how="left")
    return table


def consensus_segments(hypotheses: Sequence[Sequence[Sequence]], duration: float,
                       resolution_s: float = 0.01) -> list[tuple[float, float, str]]:
    """One timeline for a group of listeners: the most frequent label at each time.

    Parameters
    ----------
    hypotheses : one segment list ``(start_s, end_s, label)`` per listener.
    duration : utterance length in seconds.
    resolution_s : time step of the vote.

    Returns
    -------
    Segments of the majority label on a ``resolution_s`` grid (ties go to the label that
    comes first in ``angry, happy, neutral, sad``; uncovered time is left out).
    """
    from featstore.manifest import CANONICAL_EMOTIONS

    n = max(1, int(math.ceil(duration / resolution_s)))
    centres = (np.arange(n) + 0.5) * resolution_s
    votes = np.zeros((len(CANONICAL_EMOTIONS), n), dtype=int)
    for segs in hypotheses:
        for s, e, lab in segs:
            votes[CANONICAL_EMOTIONS.index(str(lab))] += (centres >= float(s)) & (centres < float(e))
    winner = np.where(votes.sum(axis=0) > 0, votes.argmax(axis=0), -1)
    out, pos = [], 0
    for index, run in itertools.groupby(winner.tolist()):
        length = len(list(run))
        if index >= 0:
            out.append((pos * resolution_s, min((pos + length) * resolution_s, duration), CANONICAL_EMOTIONS[index]))
        pos += length
    return out


def plot_timelines(
    references: Mapping[str, Sequence[Sequence]],
    tracks: Mapping[str, Sequence[tuple[str, Sequence[Sequence]]]],
    durations: Mapping[str, float],
    out_stem: str | Path,
    max_utterances: int = 24,
) -> dict[str, Path]:
    """Per-utterance timelines: the reference, then one bar per hypothesis track.

    Parameters
    ----------
    references : utt_id -> reference segments ``(start_s, end_s, label)``.
    tracks : utt_id -> ``[(track name, segments), ...]`` (model, each listener group ...).
    durations : utt_id -> seconds.
    out_stem : path without suffix; ``.png`` and ``.svg`` are written.
    max_utterances : at most this many panels (the first in ``references`` order), laid
        out in three columns beyond six.

    Returns
    -------
    ``{"png": path, "svg": path}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    utts = list(references)[:max_utterances]
    if not utts:
        raise ValueError("no utterances to plot")
    n_cols = 1 if len(utts) <= 6 else 3
    n_rows = int(math.ceil(len(utts) / n_cols))
    n_tracks = 1 + max(len(tracks.get(u, ())) for u in utts)
    from probes.plot import FONT_PT, PAGE_WIDTH_IN, save_figure

    fig, axes = plt.subplots(n_rows, n_cols, figsize=(min(6.0, PAGE_WIDTH_IN / n_cols) * n_cols,
                                                      n_rows * (0.3 * n_tracks + 0.8) + 0.8),
                             squeeze=False)
    for ax in axes.flat[len(utts):]:
        ax.set_visible(False)
    for ax, utt in zip(axes.flat, utts, strict=False):
        rows = [("reference", references[utt]), *tracks.get(utt, ())]
        for y, (_, segs) in enumerate(rows):
            for s, e, lab in segs:
                ax.broken_barh([(float(s), float(e) - float(s))], (len(rows) - 1 - y - 0.4, 0.8),
                               color=EMOTION_COLOURS.get(str(lab), "#000000"))
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([name for name, _ in reversed(rows)], fontsize=FONT_PT)
        ax.set_xlim(0, float(durations[utt]))
        ax.set_title(utt, fontsize=FONT_PT, loc="left")
        ax.tick_params(axis="x", labelsize=FONT_PT)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)", fontsize=FONT_PT)
    fig.legend(handles=[Patch(color=c, label=n) for n, c in EMOTION_COLOURS.items()],
               loc="upper right", ncol=4, fontsize=FONT_PT)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    png, svg = save_figure(fig, Path(out_stem), dpi=120, tight=False)  # the smallest font and dpi in the PNG
    return {"png": png, "svg": svg}
