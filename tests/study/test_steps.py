"""Study steps that do more than call one library function."""

from __future__ import annotations

import polars as pl

from study.steps import best_layer_predictions


def test_best_layer_predictions_take_the_best_mean_layer_ties_to_the_lower(tmp_path):
    # layer 1 and 2 tie on mean UA over two folds (0.7); layer 3 wins fold 0 alone
    rows = [(0, 0, 0.5), (0, 1, 0.8), (1, 1, 0.6), (0, 2, 0.6), (1, 2, 0.8), (0, 3, 0.9), (1, 3, 0.3)]
    pl.DataFrame({"model": ["m"] * 7, "setting": ["mono"] * 7, "fold": [r[0] for r in rows],
                  "layer": [r[1] for r in rows], "ua": [r[2] for r in rows]}).write_parquet(tmp_path / "results.parquet")
    pl.DataFrame({"model": ["m"] * 4, "setting": ["mono"] * 4, "layer": [0, 1, 2, 3],
                  "utt_id": ["a", "b", "c", "d"]}).write_parquet(tmp_path / "predictions.parquet")
    for _ in range(5):  # the same answer every time, not whichever tied layer a hash puts first
        assert best_layer_predictions(tmp_path)["utt_id"].to_list() == ["b"]
