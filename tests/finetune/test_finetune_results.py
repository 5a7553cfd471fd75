"""Table I in the paper's layout: conditions, UA % over folds, the paper's value beside each
cell and the difference, all computed here independently of finetune.table_one."""

from __future__ import annotations

import statistics

import polars as pl
import pytest

from featstore.errors import CrosslingError
from finetune.results import table_one, table_one_cell_keys, table_one_markdown
from finetune.table_one import table_one_cells, table_one_runs
from probes.paper_values import paper_value

LANG = {"esd": "cn", "pavoque": "de", "iemocap": "en"}


def _runs(spec: list[tuple]) -> pl.DataFrame:
    """(model, source_corpus|None, train_corpus, test_corpus, strategy, [ua per fold], layer)"""
    rows = []
    for model, source, train, test, strategy, uas, layer in spec:
        for fold, ua in enumerate(uas):
            rows.append({"model": model, "setting": "x", "train_corpus": train, "test_corpus": test,
                         "source_corpus": source, "two_stage": source is not None,
                         "train_language": LANG[train], "test_language": LANG[test],
                         "source_language": LANG[source] if source else None, "strategy": strategy,
                         "scope": "every-layer", "layer": layer, "fold": fold, "ua": ua})
    return pl.DataFrame(rows, schema_overrides={"source_corpus": pl.Utf8, "source_language": pl.Utf8})


def test_runs_differing_in_scope_or_layer_are_separate_rows():
    n = 6
    frame = pl.DataFrame({
        "model": ["m"] * n, "setting": ["mono"] * n, "train_corpus": ["c"] * n, "test_corpus": ["c"] * n,
        "train_language": ["cn"] * n, "test_language": ["cn"] * n,
        "strategy": ["lora"] * n, "two_stage": [False] * n,
        "scope": ["every-layer"] * 2 + ["target-layer"] * 2 + ["every-layer"] * 2,
        "layer": [6, 6, 6, 6, 3, 3], "ua": [0.5, 0.7, 0.9, 0.8, 0.4, 0.4],
    })
    table = table_one(frame)
    assert table.height == 3 and table["n_folds"].to_list() == [2, 2, 2]
    row = table.filter((pl.col("scope") == "every-layer") & (pl.col("layer") == 6)).row(0, named=True)
    assert row["ua_pct"] == pytest.approx(60.0)
    assert row["ua_std_pct"] == pytest.approx(100 * (((0.5 - 0.6) ** 2 + (0.7 - 0.6) ** 2) / 1) ** 0.5)
    assert row["comparison"] == "no paper cell" and row["paper_ua_pct"] is None
    assert "6 (target layer)" in table_one_markdown(table)


def test_paper_layout_values_differences_one_fold_and_two_stage_source():
    results = _runs([
        ("w2v2-cn", None, "esd", "esd", "lora", [0.90, 0.92, 0.95], 6),           # row 1
        ("w2v2-cn", "esd", "pavoque", "pavoque", "lora+ba+wg", [0.70], 6),      # 2-stg CN -> DE, one fold
        ("w2v2-de", None, "iemocap", "iemocap", "lora+ba+wg", [0.60, 0.64], 5),  # row 23
    ])
    table = table_one(results, reading="source-target", all_cells=True)
    assert table.height == 24  # every cell once: each run fills exactly one cell under this reading
    by_row = {r["row"]: r for r in table.iter_rows(named=True)}
    # row 1: mean and sample std over folds, the paper's value beside it, the difference
    r1 = by_row[1]
    assert r1["ua_pct"] == pytest.approx(100 * statistics.mean([0.90, 0.92, 0.95]))
    assert r1["ua_std_pct"] == pytest.approx(100 * statistics.stdev([0.90, 0.92, 0.95]))
    assert r1["paper_ua_pct"] == 91.4
    assert r1["diff_pct"] == pytest.approx(100 * statistics.mean([0.90, 0.92, 0.95]) - 91.4)
    # the two-stage run: Source = its stage-1 language, stage 2 named, one fold -> no std
    r6 = by_row[6]
    assert (r6["source"], r6["stage2"], r6["target"], r6["two_stage"]) == ("cn", "de", "de", True)
    assert r6["stage1_corpus"] == "esd" and r6["stage2_corpus"] == "pavoque"
    assert r6["ua_std_pct"] is None and r6["n_folds"] == 1
    assert r6["paper_ua_pct"] == 70.7 and r6["diff_pct"] == pytest.approx(70.0 - 70.7)
    assert by_row[23]["paper_ua_pct"] == 62.4 and by_row[23]["diff_pct"] == pytest.approx(62.0 - 62.4)
    # cells nobody ran: the paper value, ours empty
    r2 = by_row[2]
    assert r2["ua_pct"] is None and r2["paper_ua_pct"] == 87.0 and r2["comparison"] == "not run"
    md = table_one_markdown(table)
    assert "| LoRA | BA+WG | 2-stg |" in md and "LORA" not in md
    line6 = next(x for x in md.splitlines() if "| 70.0 |" in x)
    assert "±" not in line6 and "| CN | DE |" in line6 and "✓ →DE" in line6 and "-0.7" in line6
    line1 = next(x for x in md.splitlines() if "± " in x)
    assert f"{100 * statistics.mean([0.90, 0.92, 0.95]):.1f} ± {100 * statistics.stdev([0.90, 0.92, 0.95]):.1f}" in line1


def test_text_reading_fills_two_cells_with_one_run_and_demo_is_not_compared():
    results = _runs([("w2v2-cn", "esd", "pavoque", "pavoque", "lora+ba+wg", [0.70, 0.80], 6)])
    table = table_one(results, reading="text")
    assert table["row"].to_list() == [6, 9] and table["setting"].to_list() == ["cross", "trans"]
    assert table["paper_source"].to_list() == ["cn", "de"] and table["source"].to_list() == ["cn", "cn"]
    assert table["diff_pct"].to_list() == pytest.approx([75.0 - 70.7, 75.0 - 98.9])
    demo = table_one(results, reading="text", demo=True)
    assert demo["diff_pct"].null_count() == 2 and set(demo["comparison"]) == {"not comparable: demo"}
    # under the authors' reading the same run is row 6 only; row 9 is DE then CN
    assert table_one(results, reading="authors")["row"].to_list() == [6]


def test_logged_alignment_compares_with_the_row_below():
    results = _runs([("w2v2-cn", None, "esd", "pavoque", "lora", [0.65], 3)])  # row 4
    row = table_one(results, alignment="logged").row(0, named=True)
    assert row["row"] == 4 and row["paper_ua_pct"] == 65.3  # printed in row 5
    two = _runs([("w2v2-cn", "esd", "pavoque", "pavoque", "lora+ba+wg", [0.65], 3)])
    assert table_one(two, reading="authors", alignment="logged")["paper_ua_pct"].to_list() == [None]


def test_protocol_columns_keep_conditions_apart():
    results = pl.concat([
        _runs([("w2v2-cn", None, "esd", "esd", "lora", [0.9, 0.8], 6)]).with_columns(pl.lit("text").alias("protocol")),
        _runs([("w2v2-cn", None, "esd", "esd", "lora", [0.5, 0.6], 6)]).with_columns(pl.lit("authors").alias("protocol")),
    ])
    table = table_one(results)
    assert table.height == 2 and sorted(table["protocol"]) == ["authors", "text"]
    assert sorted(table["ua_pct"]) == pytest.approx([55.0, 85.0])


def test_stage_columns_from_the_protocol_branch_win():
    results = _runs([("w2v2-de", "pavoque", "esd", "esd", "lora+ba+wg", [0.5], 4)]).with_columns(
        pl.lit("pav-b").alias("stage1_corpus"), pl.lit("esd-b").alias("stage2_corpus"))
    row = table_one(results, reading="source-target").row(0, named=True)
    assert (row["stage1_corpus"], row["stage2_corpus"], row["row"]) == ("pav-b", "esd-b", 18)


def test_the_24_cells_are_addressable_and_match_the_paper():
    keys = table_one_cell_keys()
    assert len(keys) == 24 and len(set(keys)) == 24
    cells = table_one_cells()
    for key, cell in zip(keys, cells.iter_rows(named=True), strict=True):
        model, setting, target, ba_wg, two_stage = key
        assert paper_value("I", model=model, setting=setting, target=target, ba_wg=ba_wg,
                           two_stage=two_stage) == cell["paper_ua_pct"]
    assert cells["cell"].n_unique() == 24


@pytest.mark.parametrize("reading, impossible, shared", [
    ("text", [], [[6, 9], [18, 21]]), ("source-target", [], []), ("authors", [12, 24], [])])
def test_runs_of_each_reading(reading, impossible, shared):
    cells = table_one_cells(reading)
    assert cells.filter(pl.col("impossible").is_not_null())["row"].to_list() == impossible
    runs = table_one_runs(reading)
    filled = sorted(r for run in runs for r in run["rows"])
    assert filled == sorted(set(range(1, 25)) - set(impossible))
    assert [run["rows"] for run in runs if len(run["rows"]) > 1] == shared


def test_authors_reading_switches_to_the_other_of_cn_and_de():
    runs = {tuple(r["rows"]): r for r in table_one_runs("authors")}
    assert (runs[(3,)]["source_corpus"], runs[(3,)]["train_corpus"], runs[(3,)]["test_corpus"]) == ("esd", "pavoque", "esd")
    assert (runs[(9,)]["source_corpus"], runs[(9,)]["train_corpus"], runs[(9,)]["test_corpus"]) == ("pavoque", "esd", "pavoque")


def test_unknown_reading_is_a_clear_error():
    with pytest.raises(CrosslingError, match="source-target"):
        table_one_cells("source_target")
