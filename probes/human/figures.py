"""Figures of the human-model comparison (matplotlib Agg; each saved as PNG and SVG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from featstore.io import atomic_write  # noqa: E402
from featstore.manifest import CANONICAL_EMOTIONS  # noqa: E402

ABBREV = {"angry": "A", "happy": "H", "neutral": "N", "sad": "S"}


def _save(fig: plt.Figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    try:
        for p in paths:
            atomic_write(p, lambda tmp, fig=fig: fig.savefig(tmp, dpi=120, bbox_inches="tight"))
    finally:
        plt.close(fig)
    return paths


def confusion_grid(table3: pl.DataFrame, stem: Path,
                   labels: Sequence[str] = CANONICAL_EMOTIONS) -> list[Path]:
    """Heatmaps in the Table III layout: one row per (group, language) cell, the human
    panel first and its paired model panels beside it."""
    if table3.is_empty():
        return []
    cells = table3.select("group", "language").unique(maintain_order=True).rows()
    layout = []
    for g, lang in cells:
        sub = table3.filter((pl.col("group") == g) & (pl.col("language") == lang))
        layout.append([(title, sub.filter(pl.col("panel") == title))
                       for title in sub["panel"].unique(maintain_order=True).to_list()])
    n_cols = max(len(r) for r in layout)
    fig, axes = plt.subplots(len(layout), n_cols, figsize=(3.2 * n_cols, 3.0 * len(layout)), squeeze=False)
    ticks = [ABBREV.get(lab, lab[:3]) for lab in labels]
    for i, row in enumerate(layout):
        for j in range(n_cols):
            ax = axes[i][j]
            if j >= len(row):
                ax.axis("off")
                continue
            title, panel = row[j]
            order = {lab: i for i, lab in enumerate(labels)}
            mat = panel.sort(pl.col("true").replace_strict(order, default=len(order)),
                             maintain_order=True).select(list(labels)).to_numpy()
            ax.imshow(mat, vmin=0, vmax=1, cmap="Blues")
            for (r, c), v in np.ndenumerate(mat):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if v > 0.6 else "black")
            ax.set_xticks(range(len(labels)), ticks)
            ax.set_yticks(range(len(labels)), ticks)
            ax.set_title(title.split(" [")[0], fontsize=8)
            ax.set_xlabel("answer", fontsize=7)
            ax.set_ylabel("true", fontsize=7)
    fig.tight_layout()
    return _save(fig, stem)


def recall_bars(table3: pl.DataFrame, stem: Path, labels: Sequence[str] = CANONICAL_EMOTIONS) -> list[Path]:
    """Per-emotion recall (diagonal of each panel), humans beside their paired models."""
    if table3.is_empty():
        return []
    cells = table3.select("group", "language").unique(maintain_order=True).rows()
    fig, axes = plt.subplots(1, len(cells), figsize=(3.6 * len(cells), 3.0), squeeze=False)
    for ax, (g, lang) in zip(axes[0], cells, strict=True):
        sub = table3.filter((pl.col("group") == g) & (pl.col("language") == lang))
        panels = sub["panel"].unique(maintain_order=True).to_list()
        width = 0.8 / max(len(panels), 1)
        for k, title in enumerate(panels):
            p = sub.filter(pl.col("panel") == title)
            recall = [float(p.filter(pl.col("true") == lab)[lab][0]) if p.filter(pl.col("true") == lab).height
                      else 0.0 for lab in labels]
            who = p["who"][0]
            ax.bar(np.arange(len(labels)) + k * width, recall, width,
                   label=title.split(" (")[0] if who == "human" else title.split(" [")[0][7:],
                   hatch=None if who == "human" else "//")
        ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, [ABBREV.get(lab, lab) for lab in labels])
        ax.set_ylim(0, 1)
        ax.set_title(f"{g.upper()} listeners on {lang.upper()}", fontsize=8)
        ax.set_ylabel("recall")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return _save(fig, stem)


def ua_bars(summary: pl.DataFrame, stem: Path) -> list[Path]:
    """Mean UA (+- SD over listeners) by listener group and test language."""
    if summary.is_empty():
        return []
    groups = sorted(set(summary["group"].to_list()))
    langs = sorted(set(summary["language"].to_list()))
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(langs) * max(1, len(groups)) / 2, 3.0))
    width = 0.8 / len(groups)
    for k, g in enumerate(groups):
        sub = {r["language"]: r for r in summary.filter(pl.col("group") == g).iter_rows(named=True)}
        means = [100 * sub[lang]["mean"] if lang in sub else np.nan for lang in langs]
        sds = [100 * (sub[lang]["sd"] or 0.0) if lang in sub else 0.0 for lang in langs]
        ax.bar(np.arange(len(langs)) + k * width, means, width, yerr=sds, capsize=2,
               label=f"{g.upper()} listeners")
    ax.set_xticks(np.arange(len(langs)) + 0.4 - width / 2, [lang.upper() for lang in langs])
    ax.set_ylabel("UA %")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, stem)
