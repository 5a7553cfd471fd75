"""The paper's Figure 1: UA against layer, one line per setting, one panel per model.

Each line is the mean over folds with the fold spread (mean +- std) as a band. ``cross``
and ``trans`` have several corpora in the paper's grid; by default each gets its own line
(``cross: esd->pavoque``), or ``per_corpus=False`` averages them per fold first.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from featstore.io import atomic_write
from probes.settings import SETTINGS  # noqa: E402

_COLOURS = {"mono": "tab:blue", "cross": "tab:red", "trans": "tab:green"}
_STYLES = ("-", "--", ":", "-.")


def figure1_lines(frame: pl.DataFrame, per_corpus: bool = True) -> pl.DataFrame:
    """The plotted numbers: model, setting, label, layer, ua_mean, ua_std, n_folds.

    With ``per_corpus=False`` the corpora of a setting are first averaged per fold.
    """
    if per_corpus:
        lines = frame.with_columns(
            pl.when(pl.col("setting") == "cross")
            .then(pl.format("cross: {}→{}", "train_corpus", "test_corpus"))
            .otherwise(pl.format("{}: {}", "setting", "test_corpus")).alias("label"))
    else:
        lines = (frame.group_by(["model", "setting", "layer", "fold"]).agg(pl.col("ua").mean())
                 .with_columns(pl.format("{} (mean over corpora)", "setting").alias("label")))
    return (lines.group_by(["model", "setting", "label", "layer"])
            .agg(pl.col("ua").mean().alias("ua_mean"), pl.col("ua").std(ddof=1).fill_null(0.0).alias("ua_std"),
                 pl.len().alias("n_folds"))
            .sort(["model", "setting", "label", "layer"]))


def plot_figure1(
    frame: pl.DataFrame, out_dir: str | Path, per_corpus: bool = True, stem: str = "figure1"
) -> tuple[Path, Path]:
    """Draw Figure 1 from a results table and save ``<stem>.png`` and ``<stem>.svg``.

    Parameters
    ----------
    frame : results table (columns model, setting, train_corpus, test_corpus, layer, fold, ua)
    out_dir : directory to write into
    per_corpus : one line per corpus of a setting (else averaged over corpora)

    Returns
    -------
    (png path, svg path)
    """
    if frame.is_empty():
        raise ValueError("empty results table: nothing to plot")
    lines = figure1_lines(frame, per_corpus)
    models = sorted(lines["model"].unique().to_list())
    fig, axes = plt.subplots(1, len(models), figsize=(5.0 * len(models), 3.8), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        sub = lines.filter(pl.col("model") == model)
        for setting in SETTINGS:
            labels = sorted(sub.filter(pl.col("setting") == setting)["label"].unique().to_list())
            for k, label in enumerate(labels):
                part = sub.filter(pl.col("label") == label).sort("layer")
                x = part["layer"].to_numpy()
                mean = part["ua_mean"].to_numpy() * 100
                std = part["ua_std"].to_numpy() * 100
                colour = _COLOURS[setting]
                ax.plot(x, mean, _STYLES[k % len(_STYLES)], color=colour, marker="o", markersize=3, label=label)
                ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
        ax.set_title(model)
        ax.set_xlabel("layer")
        ax.set_xticks(np.unique(sub["layer"].to_numpy()))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    axes[0][0].set_ylabel("UA (%) — mean ± std over folds")
    fig.tight_layout()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, svg = out / f"{stem}.png", out / f"{stem}.svg"
    try:
        for path, dpi in ((png, 150), (svg, None)):
            atomic_write(path, lambda tmp, dpi=dpi: fig.savefig(tmp, dpi=dpi))  # the suffix picks the format
    finally:
        plt.close(fig)
    return png, svg
