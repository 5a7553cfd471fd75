"""Figures of the human-model comparison (matplotlib Agg; each saved as PNG and SVG).

Every figure is at most :data:`probes.plot.PAGE_WIDTH_IN` wide with no text under
:data:`probes.plot.FONT_PT`, so the report shows it at print size with readable text; the
PNG carries its smallest font and dpi (:func:`probes.plot.save_figure`). ``note`` (e.g.
"simulated listeners") is printed above the panels when given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from featstore.manifest import CANONICAL_EMOTIONS  # noqa: E402
from probes.plot import FONT_PT, PAGE_WIDTH_IN, save_figure  # noqa: E402

ABBREV = {"angry": "A", "happy": "H", "neutral": "N", "sad": "S"}


def _save(fig: plt.Figure, stem: Path, note: str | None = None) -> list[Path]:
    if note:
        fig.suptitle(note, fontsize=FONT_PT, color="#8a4b00")
    return list(save_figure(fig, stem))


def _model_label(title: str) -> str:
    """``Model: w2v2-cn mono (on DE) [v]`` -> ``w2v2-cn mono``."""
    return title.split(" [")[0].removeprefix("Model: ").split(" (on")[0]


def _human_label(title: str, with_language: bool = False) -> str:
    """``Human: CN (native on DE)`` -> ``CN listeners (native)``, with the language
    ``CN listeners on DE (native)``."""
    group, _, rest = title.removeprefix("Human: ").partition(" (")
    setting, _, language = rest.rstrip(")").partition(" on ")
    where = f" on {language}" if with_language and language else ""
    return f"{group} listeners{where}" + (f" ({setting})" if setting else "")


def confusion_grid(table3: pl.DataFrame, stem: Path,
                   labels: Sequence[str] = CANONICAL_EMOTIONS, note: str | None = None) -> list[Path]:
    """Heatmaps in the Table III layout: each (group, language) cell is the human panel
    followed by its paired model panels; as many cells share a row as fit in four panels."""
    if table3.is_empty():
        return []
    cells = table3.select("group", "language").unique(maintain_order=True).rows()
    layout = []
    for g, lang in cells:
        sub = table3.filter((pl.col("group") == g) & (pl.col("language") == lang))
        layout.append([(title, sub.filter(pl.col("panel") == title))
                       for title in sub["panel"].unique(maintain_order=True).to_list()])
    per_cell = max(len(r) for r in layout)
    per_row = max(1, 4 // per_cell)  # cells side by side
    layout = [sum((cell + [None] * (per_cell - len(cell)) for cell in layout[k:k + per_row]), [])
              for k in range(0, len(layout), per_row)]
    n_cols = max(len(r) for r in layout)
    panel_in = min(2.9, PAGE_WIDTH_IN / n_cols)
    fig, axes = plt.subplots(len(layout), n_cols, figsize=(panel_in * n_cols, (panel_in + 0.2) * len(layout)),
                             squeeze=False, layout="constrained")
    ticks = [ABBREV.get(lab, lab[:3]) for lab in labels]
    for i, row in enumerate(layout):
        for j in range(n_cols):
            ax = axes[i][j]
            if j >= len(row) or row[j] is None:
                ax.set_visible(False)
                continue
            title, panel = row[j]
            order = {lab: i for i, lab in enumerate(labels)}
            mat = panel.sort(pl.col("true").replace_strict(order, default=len(order)),
                             maintain_order=True).select(list(labels)).to_numpy()
            ax.imshow(mat, vmin=0, vmax=1, cmap="Blues")
            for (r, c), v in np.ndenumerate(mat):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=FONT_PT,
                        color="white" if v > 0.6 else "black")
            ax.set_xticks(range(len(labels)), ticks)
            ax.set_yticks(range(len(labels)), ticks)
            ax.tick_params(labelsize=FONT_PT)
            human = panel["who"][0] == "human" if "who" in panel.columns else True
            ax.set_title(_human_label(title, with_language=True) if human else _model_label(title), fontsize=FONT_PT)
            ax.set_xlabel("answer", fontsize=FONT_PT)
            ax.set_ylabel("true", fontsize=FONT_PT)
    return _save(fig, stem, note)


def recall_bars(table3: pl.DataFrame, stem: Path, labels: Sequence[str] = CANONICAL_EMOTIONS,
                note: str | None = None) -> list[Path]:
    """Per-emotion recall (diagonal of each panel), humans beside their paired models: one
    panel per (listener group, language), three panels a row, each with its legend below
    its bars."""
    if table3.is_empty():
        return []
    cells = table3.select("group", "language").unique(maintain_order=True).rows()
    n_cols = min(3, len(cells))
    n_rows = -(-len(cells) // n_cols)
    most = max(table3.filter((pl.col("group") == g) & (pl.col("language") == lang))["panel"].n_unique()
               for g, lang in cells)
    legend_in = 0.19 * most + 0.3
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(PAGE_WIDTH_IN / 3 * n_cols, n_rows * (2.4 + legend_in)),
                             squeeze=False, sharey=True, layout="constrained")
    for ax in axes.flat[len(cells):]:
        ax.set_visible(False)
    for ax, (g, lang) in zip(axes.flat, cells, strict=False):
        sub = table3.filter((pl.col("group") == g) & (pl.col("language") == lang))
        panels = sub["panel"].unique(maintain_order=True).to_list()
        width = 0.8 / max(len(panels), 1)
        for k, title in enumerate(panels):
            p = sub.filter(pl.col("panel") == title)
            recall = [float(p.filter(pl.col("true") == lab)[lab][0]) if p.filter(pl.col("true") == lab).height
                      else 0.0 for lab in labels]
            human = p["who"][0] == "human"
            ax.bar(np.arange(len(labels)) + k * width, recall, width,
                   label=_human_label(title) if human else _model_label(title), hatch=None if human else "//",
                   edgecolor="white" if human else "0.3", linewidth=0.5)
        ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, [ABBREV.get(lab, lab) for lab in labels])
        ax.set_ylim(0, 1)
        ax.set_title(f"{g.upper()} listeners on {lang.upper()}", fontsize=FONT_PT + 1)
        ax.tick_params(labelsize=FONT_PT)
        ax.grid(axis="y", alpha=0.3)
        # below the axes: a legend never covers a bar
        ax.legend(fontsize=FONT_PT, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1, frameon=False,
                  handlelength=1.5)
    for row in axes:
        row[0].set_ylabel("recall (fraction)", fontsize=FONT_PT)
    return _save(fig, stem, note)


def ua_bars(summary: pl.DataFrame, stem: Path, note: str | None = None) -> list[Path]:
    """Mean UA (+- SD over listeners) by listener group and test language."""
    if summary.is_empty():
        return []
    groups = sorted(set(summary["group"].to_list()))
    langs = sorted(set(summary["language"].to_list()))
    fig, ax = plt.subplots(figsize=(min(PAGE_WIDTH_IN, 2.2 + 0.6 * len(langs) * max(1, len(groups))), 3.0),
                           layout="constrained")
    width = 0.8 / len(groups)
    for k, g in enumerate(groups):
        sub = {r["language"]: r for r in summary.filter(pl.col("group") == g).iter_rows(named=True)}
        means = [100 * sub[lang]["mean"] if lang in sub else np.nan for lang in langs]
        sds = [100 * (sub[lang]["sd"] or 0.0) if lang in sub else 0.0 for lang in langs]
        ax.bar(np.arange(len(langs)) + k * width, means, width, yerr=sds, capsize=2,
               label=f"{g.upper()} listeners")
    ax.set_xticks(np.arange(len(langs)) + 0.4 - width / 2, [lang.upper() for lang in langs])
    ax.set_ylabel("UA %", fontsize=FONT_PT)
    ax.set_ylim(0, 100)
    ax.tick_params(labelsize=FONT_PT)
    ax.legend(fontsize=FONT_PT, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return _save(fig, stem, note)


LIKENESS_PANELS: tuple[tuple[str, str, str], ...] = (
    ("kappa", "kappa", "Cohen's kappa with the\nmajority listener answer"),
    ("confusion_r", "confusion r", "r of the confusion matrices\n(model vs listeners)"),
    ("ua", "UA", "UA % of the model\n(pooled test predictions)"),
)
"""The columns of the human-likeness figure, their short titles and axis labels."""
LISTENERS_OF_SETTING: dict[str, str] = {"mono": "native listeners", "cross": "non-native listeners",
                                        "trans": "second-language listeners"}


def likeness_figure(table: pl.DataFrame, stem: Path, note: str | None = None) -> list[Path]:
    """Human-likeness per layer beside the accuracy curve (the table of
    :func:`probes.human.likeness.human_likeness`): one row of panels per model setting that
    has listeners (mono, cross, trans), columns kappa | confusion r | UA %; one line per
    model (and training corpus) and listener group, a band for the 95 % bootstrap interval
    over stimuli; the dashed line in the kappa panel is 0 (chance agreement). ``note``
    (simulated listeners) is printed above the panels."""
    if table.is_empty():
        return []
    order = {s: i for i, s in enumerate(("mono", "cross", "trans"))}
    settings = sorted(set(table["setting"].to_list()), key=lambda s: (order.get(s, 9), s))
    line_cols = [c for c in ("model", "train_corpus", "listener_group") if c in table.columns]
    labels = sorted(set(table.select(line_cols).unique().rows()))
    style = {lab: k for k, lab in enumerate(labels)}
    n_rows = len(settings)
    legend_in = 0.22 * -(-len(labels) // 2) + 0.2
    fig, axes = plt.subplots(n_rows, len(LIKENESS_PANELS), squeeze=False, layout="constrained",
                             figsize=(PAGE_WIDTH_IN, 2.6 * n_rows + legend_in))
    handles: dict[str, object] = {}
    for i, setting in enumerate(settings):
        sub = table.filter(pl.col("setting") == setting)
        for j, (col, short, ylabel) in enumerate(LIKENESS_PANELS):
            ax = axes[i][j]
            for lab in labels:
                part = sub.filter(pl.all_horizontal([pl.col(c) == v for c, v in zip(line_cols, lab, strict=True)]))
                if part.is_empty():
                    continue
                part = part.sort("layer")
                x = part["layer"].to_numpy()
                scale = 100.0 if col == "ua" else 1.0
                y = part[col].to_numpy().astype(float) * scale
                k = style[lab]
                name = " / ".join(str(v) for v in lab[:-1]) + f" vs {str(lab[-1]).upper()} listeners"
                (line,) = ax.plot(x, y, marker="o", markersize=3, linestyle=("-", "--", ":", "-.")[k % 4],
                                  color=f"C{k % 10}", label=name)
                if f"{col}_lo" in part.columns:
                    ax.fill_between(x, part[f"{col}_lo"].to_numpy().astype(float),
                                    part[f"{col}_hi"].to_numpy().astype(float), color=f"C{k % 10}", alpha=0.18,
                                    linewidth=0)
                handles.setdefault(name, line)
            if col == "kappa":
                ax.axhline(0.0, color="0.5", linestyle="--", linewidth=0.8)
            ax.set_ylabel(ylabel, fontsize=FONT_PT)
            ax.set_xlabel("layer", fontsize=FONT_PT)
            who = LISTENERS_OF_SETTING.get(setting, "listeners")
            ax.set_title(f"{short}, {setting} model ({who})", fontsize=FONT_PT)
            ax.tick_params(labelsize=FONT_PT)
            ax.grid(alpha=0.3)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=2, fontsize=FONT_PT,
               frameon=False)
    return _save(fig, stem, note)
