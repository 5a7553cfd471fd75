"""Table I: one row per condition, UA mean and sample std over folds computed by hand."""

from __future__ import annotations

import polars as pl
import pytest

from finetune.results import table_one, table_one_markdown


def test_runs_differing_in_scope_or_layer_are_separate_rows():
    n = 6
    frame = pl.DataFrame({
        "model": ["m"] * n, "setting": ["mono"] * n, "train_language": ["cn"] * n, "test_language": ["cn"] * n,
        "strategy": ["lora"] * n, "two_stage": [False] * n,
        "scope": ["every-layer"] * 2 + ["target-layer"] * 2 + ["every-layer"] * 2,
        "layer": [6, 6, 6, 6, 3, 3], "ua": [0.5, 0.7, 0.9, 0.8, 0.4, 0.4],
    })
    table = table_one(frame)
    assert table.height == 3 and table["n_folds"].to_list() == [2, 2, 2]
    row = table.filter((pl.col("scope") == "every-layer") & (pl.col("layer") == 6)).row(0, named=True)
    assert row["ua_mean"] == pytest.approx(60.0)
    assert row["ua_std"] == pytest.approx(100 * (((0.5 - 0.6) ** 2 + (0.7 - 0.6) ** 2) / 1) ** 0.5)
    assert "6 (target layer)" in table_one_markdown(table)
