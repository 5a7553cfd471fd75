"""The paper's Figure 1: UA against layer, one line per setting, one panel per model.

Each line is the mean over folds with the fold spread (mean +- std) as a light band.
``cross`` and ``trans`` have several corpora in the paper's grid; by default each gets its
own line (``cross: esd->pavoque``), or ``per_corpus=False`` averages them per fold first.
Colour = setting; line style and marker = the line within its setting; a dotted grey line
marks chance (100 / number of classes); one legend below the panels covers them all.
Given the run's statistics (:mod:`probes.stats`), each line is the UA of the pooled test
predictions, its band the 95 % speaker-level bootstrap interval, and filled markers the
layers of the condition's best-layer set (not significantly worse than its best layer).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from featstore.io import atomic_write  # noqa: E402
from probes.settings import SETTINGS  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from probes.stats.tables import StatsTables

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


def _test_of(label: str) -> str:
    """The test corpus a Figure 1 line label names (``cross: esd→iemocap`` -> ``iemocap``,
    ``mono: esd`` -> ``esd``); a label without one (``mono (mean over corpora)``) is itself."""
    if ": " not in label:
        return label
    return label.split(": ", 1)[1].split("→")[-1]


def plot_figure1(
    frame: pl.DataFrame, out_dir: str | Path, per_corpus: bool = True, stem: str = "figure1",
    stats: StatsTables | None = None,
    weighted: pl.DataFrame | None = None,
) -> tuple[Path, Path]:
    """Draw Figure 1 from a results table and save ``<stem>.png`` and ``<stem>.svg``.

    Parameters
    ----------
    frame : results table (columns model, setting, train_corpus, test_corpus, layer, fold, ua)
    out_dir : directory to write into
    per_corpus : one line per corpus of a setting (else averaged over corpora)
    stats : the run's statistics (:mod:`probes.stats`): with ``per_corpus`` the lines are
        the pooled UA, the bands its bootstrap interval and filled markers the best-layer set
    weighted : weighted-sum probes' results (``probes.weighted``): each line's UA drawn as a
        thin horizontal line of its colour and style

    Returns
    -------
    (png path, svg path)
    """
    if frame.is_empty():
        raise ValueError("empty results table: nothing to plot")
    lines = figure1_lines(frame, per_corpus)
    banded = stats is not None and per_corpus and not stats.layer_ci.is_empty()
    if banded:  # pooled UA, its interval, and the best-layer set (probes.stats)
        from probes.stats.plot import figure1_interval_lines

        lines = figure1_interval_lines(stats)
    models = sorted(lines["model"].unique().to_list())
    n_classes = int(frame["n_classes"].max()) if "n_classes" in frame.columns else 4
    chance_pct = 100.0 / n_classes
    # one row of panels per setting (mono, cross, trans), one column per model (at most three a
    # row, together PAGE_WIDTH_IN wide, shown at print size): a panel holds the few lines of one
    # setting, so bands never pile up into one mass
    settings = [s for s in SETTINGS if s in set(lines["setting"].to_list())]
    n_cols = min(3, len(models))
    chunks = [models[k:k + n_cols] for k in range(0, len(models), n_cols)]
    grid = [(setting, chunk) for chunk in chunks for setting in settings]
    panel_in = PAGE_WIDTH_IN / 3 if len(models) > 1 else 5.0
    width_in = panel_in * n_cols
    # line style and marker name the TEST corpus, the same in every panel; colour names the setting
    tests = sorted({_test_of(label) for label in lines["label"].unique().to_list()})
    style_of = {t: k for k, t in enumerate(tests)}
    has_weighted = weighted is not None and not weighted.is_empty()
    entries = ([f"test: {t}" for t in tests] + [f"chance ({chance_pct:.0f} %)"] + ["filled marker: best-layer set"] * banded
               + [WEIGHTED_LABEL] * has_weighted)
    longest = max(len(e) for e in entries)
    entry_in = 0.75 + 0.075 * longest  # a legend entry's width at FONT_PT: sample line + text
    ncol = max(1, min(len(entries), int(width_in // entry_in)))
    legend_in = 0.22 * -(-len(entries) // ncol) + 0.15
    fig, axes = plt.subplots(len(grid), n_cols, figsize=(width_in, 2.3 * len(grid) + legend_in),
                             sharey=True, squeeze=False)
    from matplotlib.lines import Line2D

    handles: dict[str, object] = {f"test: {t}": Line2D([], [], linestyle=_STYLES[style_of[t] % len(_STYLES)],
                                                      marker=_MARKERS[style_of[t] % len(_MARKERS)], color="0.3",
                                                      markersize=4, linewidth=1.3) for t in tests}
    for row, (setting, chunk) in zip(axes, grid, strict=True):
        for col, ax in enumerate(row):
            if col >= len(chunk):
                ax.set_visible(False)
                continue
            model = chunk[col]
            sub = lines.filter((pl.col("model") == model) & (pl.col("setting") == setting))
            colour = _COLOURS[setting]
            if sub.is_empty():  # e.g. a multilingual model has no mono/cross condition
                ax.axis("off")
                ax.text(0.5, 0.5, f"{model}: no {setting} condition", ha="center", va="center",
                        fontsize=FONT_PT, color="0.45", transform=ax.transAxes)
                continue
            for label in sorted(sub["label"].unique().to_list()):
                k = style_of[_test_of(label)]
                part = sub.filter(pl.col("label") == label).sort("layer")
                x = part["layer"].to_numpy()
                mean = part["ua_mean"].to_numpy() * 100
                std = part["ua_std"].to_numpy() * 100
                lo, hi = (part["ua_lo"].to_numpy() * 100, part["ua_hi"].to_numpy() * 100) if banded else (
                    mean - std, mean + std)
                ax.plot(x, mean, _STYLES[k % len(_STYLES)], color=colour, marker=_MARKERS[k % len(_MARKERS)],
                        markersize=4, linewidth=1.3, label=label, markerfacecolor="white" if banded else colour)
                ax.fill_between(x, lo, hi, color=colour, alpha=0.10, linewidth=0)
                if banded:  # the best-layer set: filled markers
                    keep = part["in_best_set"].to_numpy()
                    ax.plot(x[keep], mean[keep], linestyle="none", marker=_MARKERS[k % len(_MARKERS)],
                            markersize=4, color=colour)
            _weighted_lines(ax, model, setting, weighted, per_corpus, style_of, handles)
            chance = ax.axhline(chance_pct, color="0.45", linestyle=(0, (1, 2)), linewidth=1.0)
            handles.setdefault(f"chance ({chance_pct:.0f} %)", chance)
            train = sorted(set(sub["label"].to_list()))
            trained_on = {lab.split(": ", 1)[-1].split("→")[0] for lab in train if "→" in lab}
            extra = f"\n(trained on {', '.join(sorted(trained_on))})" if trained_on else ""
            ax.set_title(f"{model}: {setting}{extra}", fontsize=FONT_PT + 1, color=colour)
            ax.set_xlabel("layer", fontsize=FONT_PT)
            ax.set_xticks(np.unique(sub["layer"].to_numpy()))
            ax.tick_params(labelsize=FONT_PT)
            ax.grid(alpha=0.3)
        row[0].set_ylabel("UA % (pooled, 95 % CI)" if banded else "UA % (mean ± std)", fontsize=FONT_PT)
    # one legend for all panels, below them: it never covers a line or a band
    if banded:
        handles.setdefault("filled marker: best-layer set", Line2D([], [], linestyle="none", marker="o",
                                                                    color="0.3", markersize=4))
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=ncol, fontsize=FONT_PT,
               frameon=False)
    fig.tight_layout(rect=(0, legend_in / fig.get_figheight(), 1, 1))
    out = Path(out_dir)
    return save_figure(fig, out / stem, tight=False)


WEIGHTED_LABEL = "weighted sum: flat line"


def _weighted_lines(ax: plt.Axes, model: str, setting: str, weighted: pl.DataFrame | None, per_corpus: bool,
                    style_of: dict[str, int], handles: dict[str, object]) -> None:
    """The weighted-sum probes' UA (mean over folds) of ``model`` in ``setting``: one thin
    horizontal line per Figure-1 line, in its colour and its test corpus's style; one legend
    entry says what they are."""
    if weighted is None or weighted.is_empty():
        return
    part = weighted.filter((pl.col("model") == model) & (pl.col("setting") == setting))
    for row in figure1_lines(part, per_corpus).iter_rows(named=True) if part.height else []:
        k = style_of.get(_test_of(row["label"]), 0)
        line = ax.axhline(row["ua_mean"] * 100, color=_COLOURS[row["setting"]], linestyle=_STYLES[k % len(_STYLES)],
                          linewidth=0.9, alpha=0.55)
        handles.setdefault(WEIGHTED_LABEL, line)
