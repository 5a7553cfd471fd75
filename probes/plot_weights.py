"""The learned layer weights of the weighted-sum probes: one panel per model.

One line per training corpus (the probes serve every setting tested with them; mono and
cross share the probes of the model's own-language corpus): the weight of each hidden state, mean over folds, with the fold range (min to
max) as a light band. A dashed grey line marks equal weights (1 / number of layers): a line
above it is a layer the probe leans on. Weights are shown in % (each probe's sum to 100).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from probes.plot import _MARKERS, _STYLES, FONT_PT, PAGE_WIDTH_IN, plt, save_figure

_COLOURS = ("tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:olive", "tab:cyan")


def weight_lines(weights: pl.DataFrame) -> pl.DataFrame:
    """The plotted numbers: model, train_corpus, settings, layer, weight_mean, weight_min,
    weight_max, n_folds (weights as fractions)."""
    probes = weights.unique(["model", "train_corpus", "fold", "layer"], keep="first", maintain_order=True)
    settings = (weights.select("model", "train_corpus", "setting").unique()
                .group_by("model", "train_corpus").agg(pl.col("setting").sort().str.join(", ").alias("settings")))
    return (probes.group_by("model", "train_corpus", "layer")
            .agg(pl.col("weight").mean().alias("weight_mean"), pl.col("weight").min().alias("weight_min"),
                 pl.col("weight").max().alias("weight_max"), pl.len().alias("n_folds"))
            .join(settings, on=["model", "train_corpus"]).sort("model", "train_corpus", "layer"))


def plot_layer_weights(weights: pl.DataFrame, out_dir: str | Path, stem: str = "layer_weights") -> tuple[Path, Path]:
    """Draw the layer weights of ``weights`` (:data:`probes.weighted.WEIGHT_COLUMNS`) and save
    ``<stem>.png`` and ``<stem>.svg`` in ``out_dir``; returns (png path, svg path)."""
    if weights.is_empty():
        raise ValueError("empty layer-weights table: nothing to plot")
    lines = weight_lines(weights)
    models = sorted(lines["model"].unique().to_list())
    corpora = sorted(lines["train_corpus"].unique().to_list())
    n_cols = min(3, len(models))
    n_rows = -(-len(models) // n_cols)
    width_in = (PAGE_WIDTH_IN / 3 if len(models) > 1 else 5.0) * n_cols
    legend_in = 0.22 * -(-(len(corpora) + 1) // 2) + 0.15
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width_in, 2.8 * n_rows + legend_in), sharey=True,
                             squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    handles: dict[str, object] = {}
    for ax, model in zip(axes.flat, models, strict=False):
        sub = lines.filter(pl.col("model") == model)
        n_layers = sub["layer"].n_unique()
        for k, corpus in enumerate(corpora):
            part = sub.filter(pl.col("train_corpus") == corpus).sort("layer")
            if part.is_empty():
                continue
            x = part["layer"].to_numpy()
            colour = _COLOURS[k % len(_COLOURS)]
            (line,) = ax.plot(x, part["weight_mean"].to_numpy() * 100, _STYLES[k % len(_STYLES)], color=colour,
                              marker=_MARKERS[k % len(_MARKERS)], markersize=4, linewidth=1.3)
            handles.setdefault(f"trained on {corpus}", line)
            ax.fill_between(x, part["weight_min"].to_numpy() * 100, part["weight_max"].to_numpy() * 100,
                            color=colour, alpha=0.12, linewidth=0)
        equal = ax.axhline(100.0 / n_layers, color="0.45", linestyle="--", linewidth=1.0)
        handles.setdefault("equal weights (100 % / layers)", equal)
        ax.set_title(model, fontsize=FONT_PT + 1)
        ax.set_xlabel("layer", fontsize=FONT_PT)
        ax.set_xticks(np.unique(sub["layer"].to_numpy()))
        ax.tick_params(labelsize=FONT_PT)
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("weight %: fold mean, min-max", fontsize=FONT_PT)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=2, fontsize=FONT_PT, frameon=False)
    fig.tight_layout(rect=(0, legend_in / fig.get_figheight(), 1, 1))
    return save_figure(fig, Path(out_dir) / stem, tight=False)
