"""The paper's Figure 1: UA against layer, one line per setting, one panel per model.

Each line is the mean over folds with the fold spread (mean +- std) as a light band.
``cross`` and ``trans`` have several corpora in the paper's grid; by default each gets its
own line (``cross: esd->pavoque``), or ``per_corpus=False`` averages them per fold first.
Colour = setting; line style and marker = the line within its setting; a dotted grey line
marks chance (100 / number of classes); one legend below the panels covers them all.
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
# one line style and marker per line of a setting (the test corpus, or train->test for
# cross), so two lines of one colour never look alike, in colour or in grey print
_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
FONT_PT = 9  # the smallest text in the figure, at the size the report shows it


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
    n_classes = int(frame["n_classes"].max()) if "n_classes" in frame.columns else 4
    chance_pct = 100.0 / n_classes
    n_entries = lines["label"].n_unique() + 1  # + the chance line
    longest = max(len(str(x)) for x in lines["label"].unique().to_list() + ["chance (25 %)"])
    entry_in = 0.75 + 0.075 * longest  # a legend entry's width at FONT_PT: sample line + text
    ncol = max(1, min(n_entries, int(4.6 * len(models) // entry_in)))
    n_rows = -(-n_entries // ncol)
    legend_in = 0.22 * n_rows + 0.12
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 3.4 + legend_in), sharey=True,
                             squeeze=False)
    handles: dict[str, object] = {}
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
                (line,) = ax.plot(x, mean, _STYLES[k % len(_STYLES)], color=colour,
                                  marker=_MARKERS[k % len(_MARKERS)], markersize=4, linewidth=1.3, label=label)
                handles.setdefault(label, line)
                ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.07, linewidth=0)
        chance = ax.axhline(chance_pct, color="0.45", linestyle=(0, (1, 2)), linewidth=1.0)
        handles.setdefault(f"chance ({chance_pct:.0f} %)", chance)
        ax.set_title(model, fontsize=FONT_PT + 1)
        ax.set_xlabel("layer", fontsize=FONT_PT)
        ax.set_xticks(np.unique(sub["layer"].to_numpy()))
        ax.tick_params(labelsize=FONT_PT)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("UA (%): mean, band ± std over folds", fontsize=FONT_PT)
    # one legend for all panels, below them: it never covers a line or a band
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=ncol, fontsize=FONT_PT,
               frameon=False)
    fig.tight_layout(rect=(0, legend_in / fig.get_figheight(), 1, 1))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, svg = out / f"{stem}.png", out / f"{stem}.svg"
    try:
        for path, dpi in ((png, 150), (svg, None)):
            atomic_write(path, lambda tmp, dpi=dpi: fig.savefig(tmp, dpi=dpi))  # the suffix picks the format
    finally:
        plt.close(fig)
    return png, svg
