"""Figures of the statistics: Figure 1's interval lines and the cross-lingual gap curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from probes.plot import FONT_PT, PAGE_WIDTH_IN, plt, save_figure
from probes.stats.tables import GAPS, StatsTables

_GAP_COLOURS = {"mono_minus_cross": "tab:red", "trans_minus_mono": "tab:green", "trans_minus_cross": "tab:purple"}
_STYLES = ("-", "--", ":", "-.")


def figure1_interval_lines(stats: StatsTables) -> pl.DataFrame:
    """Figure 1's lines from the statistics: model, setting, label, layer, ``ua_mean``
    (pooled UA), ``ua_std`` (0), ``ua_lo``, ``ua_hi`` and ``in_best_set`` (of the condition)."""
    best = stats.layer_tests.filter(pl.col("scope") == "condition").select(
        "model", "setting", "train_corpus", "test_corpus", "layer", "in_best_set")
    return (stats.layer_ci.join(best, on=["model", "setting", "train_corpus", "test_corpus", "layer"], how="left")
            .with_columns(
                pl.when(pl.col("setting") == "cross").then(pl.format("cross: {}→{}", "train_corpus", "test_corpus"))
                .otherwise(pl.format("{}: {}", "setting", "test_corpus")).alias("label"),
                pl.col("ua").alias("ua_mean"), pl.lit(0.0).alias("ua_std"), pl.col("in_best_set").fill_null(False))
            .select("model", "setting", "label", "layer", "ua_mean", "ua_std", "ua_lo", "ua_hi", "in_best_set")
            .sort("model", "setting", "label", "layer"))


def plot_gaps(gaps: pl.DataFrame, out_dir: str | Path, stem: str = "gaps") -> tuple[Path, Path]:
    """The cross-lingual gaps per layer (points of UA), one panel per model, one line per
    gap and foreign corpus, band = its 95 % interval; saves ``<stem>.png``/``.svg``."""
    if gaps.is_empty():
        raise ValueError("no gap to plot (a gap needs mono, cross and trans conditions of one model)")
    models = sorted(gaps["model"].unique().to_list())
    n_cols = min(3, len(models))
    n_rows = -(-len(models) // n_cols)
    panel_in = PAGE_WIDTH_IN / 3 if len(models) > 1 else 5.0
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(panel_in * n_cols, 3.0 * n_rows + 0.8), sharey=True,
                             squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    foreign = sorted(gaps["foreign_corpus"].unique().to_list())
    handles: dict[str, object] = {}
    for ax, model in zip(axes.flat, models, strict=False):
        sub = gaps.filter(pl.col("model") == model)
        for gap in GAPS:
            for k, corpus in enumerate(foreign):
                part = sub.filter((pl.col("gap") == gap) & (pl.col("foreign_corpus") == corpus)).sort("layer")
                if part.is_empty():
                    continue
                x = part["layer"].to_numpy()
                y, lo, hi = (part[c].to_numpy() * 100 for c in ("diff", "diff_lo", "diff_hi"))
                label = f"{gap.replace('_', ' ')} ({corpus})"
                (line,) = ax.plot(x, y, _STYLES[k % len(_STYLES)], color=_GAP_COLOURS[gap], marker="o", markersize=3,
                                  linewidth=1.2, label=label)
                ax.fill_between(x, lo, hi, color=_GAP_COLOURS[gap], alpha=0.12, linewidth=0)
                handles.setdefault(label, line)
        ax.axhline(0.0, color="0.45", linewidth=0.8)
        ax.set_title(model, fontsize=FONT_PT + 1)
        ax.set_xlabel("layer", fontsize=FONT_PT)
        ax.set_xticks(np.unique(sub["layer"].to_numpy()))
        ax.tick_params(labelsize=FONT_PT)
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("UA gap (points), band 95 % interval", fontsize=FONT_PT)
    ncol = max(1, min(len(handles), 3))
    legend_in = 0.22 * -(-len(handles) // ncol) + 0.15
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=ncol, fontsize=FONT_PT, frameon=False)
    fig.tight_layout(rect=(0, legend_in / fig.get_figheight(), 1, 1))
    return save_figure(fig, Path(out_dir) / stem, tight=False)
