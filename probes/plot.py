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

from featstore.io import atomic_write  # noqa: E402
from probes.settings import SETTINGS  # noqa: E402

_COLOURS = {"mono": "tab:blue", "cross": "tab:red", "trans": "tab:green"}
# one line style and marker per line of a setting (the test corpus, or train->test for
# cross), so two lines of one colour never look alike, in colour or in grey print
_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
FONT_PT = 9  # the smallest text in the figure, at the size the report shows it
PAGE_WIDTH_IN = 10.5
"""The widest a figure is drawn (inches): the report's column is 1068 CSS px (11.1 in at
96 px/in) at 1280 px and wider, so a figure this wide is shown at its print size."""
PNG_DPI = 150
MIN_FONT_KEY = "crossling:min_font_pt"
DPI_KEY = "crossling:dpi"
"""PNG text chunks written by :func:`save_figure`: the smallest font of the figure (pt at
print size) and the dots per inch, so a page can show it at print size and a test can
compute the size its text is rendered at."""


def min_font_pt(fig: plt.Figure) -> float:
    """The smallest font size (pt) of any visible, non-empty text of ``fig`` (legends,
    ticks and titles included); ``inf`` when the figure has no text."""
    from matplotlib.text import Text

    sizes = [t.get_fontsize() for t in fig.findobj(Text) if _shown(t)]
    return float(min(sizes)) if sizes else float("inf")


def _shown(text: object) -> bool:
    ax = getattr(text, "axes", None)
    return bool(text.get_visible() and text.get_text().strip() and (ax is None or ax.get_visible()))


def save_figure(fig: plt.Figure, stem: str | Path, dpi: int = PNG_DPI, tight: bool = True) -> tuple[Path, Path]:
    """Save ``fig`` as ``<stem>.png`` (``dpi`` dots per inch, with :data:`MIN_FONT_KEY` and
    :data:`DPI_KEY` in its text chunks) and ``<stem>.svg``, atomically; close it."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    extra = {"bbox_inches": "tight", "pad_inches": 0.05} if tight else {}
    try:
        fig.canvas.draw()  # lays the texts out, so the smallest font is the one drawn
        meta = {MIN_FONT_KEY: f"{min_font_pt(fig):g}", DPI_KEY: str(dpi)}
        atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, metadata=meta, **extra))
        atomic_write(svg, lambda tmp: fig.savefig(tmp, format="svg", **extra))
    finally:
        plt.close(fig)
    return png, svg


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
    frame: pl.DataFrame, out_dir: str | Path, per_corpus: bool = True, stem: str = "figure1",
    weighted: pl.DataFrame | None = None,
) -> tuple[Path, Path]:
    """Draw Figure 1 from a results table and save ``<stem>.png`` and ``<stem>.svg``.

    Parameters
    ----------
    frame : results table (columns model, setting, train_corpus, test_corpus, layer, fold, ua)
    out_dir : directory to write into
    per_corpus : one line per corpus of a setting (else averaged over corpora)
    weighted : weighted-sum probes' results (``probes.weighted``): each line's UA drawn as a
        thin horizontal line of its colour and style

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
    # at most three panels a row, together PAGE_WIDTH_IN wide: shown at print size
    n_cols = min(3, len(models))
    n_panel_rows = -(-len(models) // n_cols)
    panel_in = PAGE_WIDTH_IN / 3 if len(models) > 1 else 5.0
    width_in = panel_in * n_cols
    extra = ["chance (25 %)"] + ([WEIGHTED_LABEL] if weighted is not None and not weighted.is_empty() else [])
    n_entries = lines["label"].n_unique() + len(extra)  # + the chance line (and the weighted sums)
    longest = max(len(str(x)) for x in lines["label"].unique().to_list() + extra)
    entry_in = 0.75 + 0.075 * longest  # a legend entry's width at FONT_PT: sample line + text
    ncol = max(1, min(n_entries, int(width_in // entry_in)))
    n_rows = -(-n_entries // ncol)
    legend_in = 0.22 * n_rows + 0.15
    fig, axes = plt.subplots(n_panel_rows, n_cols, figsize=(width_in, 3.0 * n_panel_rows + legend_in),
                             sharey=True, squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    handles: dict[str, object] = {}
    # one style and marker per line label over the whole figure (so "mono: esd" and "mono: pavoque"
    # never look alike, in one panel or across panels of the shared legend)
    style_of = {label: k for setting in SETTINGS for k, label in enumerate(
        sorted(lines.filter(pl.col("setting") == setting)["label"].unique().to_list()))}
    for ax, model in zip(axes.flat, models, strict=False):
        sub = lines.filter(pl.col("model") == model)
        for setting in SETTINGS:
            for label in sorted(sub.filter(pl.col("setting") == setting)["label"].unique().to_list()):
                k = style_of[label]
                part = sub.filter(pl.col("label") == label).sort("layer")
                x = part["layer"].to_numpy()
                mean = part["ua_mean"].to_numpy() * 100
                std = part["ua_std"].to_numpy() * 100
                colour = _COLOURS[setting]
                (line,) = ax.plot(x, mean, _STYLES[k % len(_STYLES)], color=colour,
                                  marker=_MARKERS[k % len(_MARKERS)], markersize=4, linewidth=1.3, label=label)
                handles.setdefault(label, line)
                ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.07, linewidth=0)
        _weighted_lines(ax, model, weighted, per_corpus, style_of, handles)
        chance = ax.axhline(chance_pct, color="0.45", linestyle=(0, (1, 2)), linewidth=1.0)
        handles.setdefault(f"chance ({chance_pct:.0f} %)", chance)
        ax.set_title(model, fontsize=FONT_PT + 1)
        ax.set_xlabel("layer", fontsize=FONT_PT)
        ax.set_xticks(np.unique(sub["layer"].to_numpy()))
        ax.tick_params(labelsize=FONT_PT)
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("UA %: mean, band ± std over folds", fontsize=FONT_PT)
    # one legend for all panels, below them: it never covers a line or a band
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=ncol, fontsize=FONT_PT,
               frameon=False)
    fig.tight_layout(rect=(0, legend_in / fig.get_figheight(), 1, 1))
    out = Path(out_dir)
    return save_figure(fig, out / stem, tight=False)


WEIGHTED_LABEL = "weighted sum: flat line"


def _weighted_lines(ax: plt.Axes, model: str, weighted: pl.DataFrame | None, per_corpus: bool,
                    style_of: dict[str, int], handles: dict[str, object]) -> None:
    """The weighted-sum probes' UA (mean over folds) of ``model``: one thin horizontal line
    per Figure-1 line, in its colour and style; one legend entry says what they are."""
    if weighted is None or weighted.is_empty():
        return
    for row in figure1_lines(weighted.filter(pl.col("model") == model), per_corpus).iter_rows(named=True):
        k = style_of.get(row["label"], 0)
        line = ax.axhline(row["ua_mean"] * 100, color=_COLOURS[row["setting"]], linestyle=_STYLES[k % len(_STYLES)],
                          linewidth=0.9, alpha=0.55)
        handles.setdefault(WEIGHTED_LABEL, line)
