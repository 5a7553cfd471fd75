"""The report's weighted-sum section shows the layer-weight figure and summary of a run."""

from __future__ import annotations

import polars as pl

from probes.plot_weights import plot_layer_weights
from study.report import SECTIONS, _section_html


def test_weights_section_shows_the_figure_and_the_summary(tmp_path):
    run_dir = tmp_path / "run"
    probes = run_dir / "probes"
    probes.mkdir(parents=True)
    weights = pl.DataFrame({"model": ["m"] * 6, "setting": ["mono"] * 6, "train_corpus": ["c"] * 6,
                            "fold": [0, 0, 0, 1, 1, 1], "layer": [0, 1, 2] * 2,
                            "weight": [0.2, 0.5, 0.3, 0.1, 0.6, 0.3]})
    plot_layer_weights(weights, probes)
    pl.DataFrame({"model": ["m"], "setting": ["mono"], "ua_mean": [0.61]}).write_csv(probes / "weighted_summary.csv")
    section = next(s for s in SECTIONS if s.key == "weights")
    page = _section_html(section, run_dir)
    assert "data:image/png;base64," in page and "probes/layer_weights.png" in page
    assert "weighted_summary.csv" in page and "61.0" in page  # the report shows rates in %
    assert "equal-weight line" in page  # the sentence on how to read it
