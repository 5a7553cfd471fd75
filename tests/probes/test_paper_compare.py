"""Tables II and IV beside the paper's: every printed cell present, differences computed
here by hand, demo data labelled and never compared."""

from __future__ import annotations

import polars as pl
import pytest

from probes.paper_compare import (
    NOT_COMPARABLE_DEMO,
    PaperCompareError,
    compare_table_four,
    compare_table_two,
)

PAPER_II = {("cn", "cn"): 79.5, ("cn", "de"): 73.3, ("cn", "en"): 63.5, ("cn", "tj"): 67.5,
            ("de", "cn"): 82.6, ("de", "de"): 91.7, ("de", "en"): 73.6, ("de", "tj"): 29.2}
PAPER_IV = {("angry", "wavlm"): 36.6, ("angry", "cn"): 25.8, ("angry", "de"): 27.5,
            ("happy", "wavlm"): 27.5, ("happy", "cn"): 31.8, ("happy", "de"): 28.7,
            ("sad", "wavlm"): 50.3, ("sad", "cn"): 38.6, ("sad", "de"): 28.3,
            ("average", "wavlm"): 38.2, ("average", "cn"): 32.1, ("average", "de"): 28.2}


def test_table_two_wide_with_tj_column():
    ours = pl.DataFrame({"group": ["cn", "de"], "CN_ua": [0.80, 0.81], "DE_ua": [0.70, 0.90],
                         "EN_ua": [0.60, 0.75], "TJ_ua": [0.66, None]})  # table2_ua.csv: fractions
    out = compare_table_two(ours)
    assert out.height == 8
    got = {(r["group"], r["language"]): r for r in out.iter_rows(named=True)}
    assert {k: r["paper_ua_pct"] for k, r in got.items()} == PAPER_II
    assert got[("cn", "tj")]["diff_pct"] == pytest.approx(66.0 - 67.5)
    assert got[("de", "de")]["diff_pct"] == pytest.approx(90.0 - 91.7)
    assert got[("de", "tj")]["ua_pct"] is None and got[("de", "tj")]["comparison"] == "not run"
    assert got[("cn", "cn")]["comparison"] == ""


def test_table_two_long_fractions_and_extra_groups():
    ours = pl.DataFrame({"group": ["cn", "en"], "language": ["cn", "cn"], "mean": [0.75, 0.5]})
    out = compare_table_two(ours)
    assert out.filter((pl.col("group") == "cn") & (pl.col("language") == "cn"))["diff_pct"][0] == pytest.approx(75.0 - 79.5)
    extra = out.filter(pl.col("group") == "en").row(0, named=True)
    assert extra["paper_ua_pct"] is None and extra["comparison"] == "no paper cell" and out.height == 9


def test_table_two_demo_is_not_comparable():
    ours = pl.DataFrame({"group": ["cn"], "CN_ua": [0.80]})
    out = compare_table_two(ours, demo=True)
    assert out["diff_pct"].null_count() == out.height and set(out["comparison"]) == {NOT_COMPARABLE_DEMO}
    assert out["paper_ua_pct"].null_count() == 0  # the paper's values stay for reference


def test_table_four_from_sed_table_iv_fractions():
    ours = pl.DataFrame({"emotion": ["angry", "happy", "sad", "average"],
                         "wavlm-emo_eder": [0.40, 0.30, 0.50, 0.40], "listeners_cn_eder": [0.25, 0.30, 0.40, 0.3167],
                         "listeners_de_eder": [0.20, 0.30, 0.30, 0.2667]})
    out = compare_table_four(ours)
    got = {(r["emotion"], r["system"]): r for r in out.iter_rows(named=True)}
    assert out.height == 12 and {k: r["paper_eder_pct"] for k, r in got.items()} == PAPER_IV
    assert got[("angry", "wavlm")]["eder_pct"] == pytest.approx(40.0)
    assert got[("angry", "wavlm")]["diff_pct"] == pytest.approx(40.0 - 36.6)
    assert got[("sad", "de")]["diff_pct"] == pytest.approx(30.0 - 28.3)
    # the unit is read from the name: ``_eder_pct`` is percent, whatever the values
    pct = compare_table_four(ours.with_columns((pl.col("wavlm-emo_eder") * 100).alias("wavlm-emo_eder_pct"))
                             .drop("wavlm-emo_eder"), model_column="wavlm-emo")
    assert pct.filter(pl.col("system") == "wavlm")["eder_pct"].to_list() == pytest.approx([40.0, 30.0, 50.0, 40.0])
    demo = compare_table_four(ours, demo=True)
    assert set(demo["comparison"]) == {NOT_COMPARABLE_DEMO} and demo["diff_pct"].null_count() == 12


def test_table_four_bad_shapes_are_clear_errors():
    with pytest.raises(PaperCompareError, match="emotion"):
        compare_table_four(pl.DataFrame({"x": [1.0]}))
    two_models = pl.DataFrame({"emotion": ["angry"], "a_eder": [0.1], "b_eder": [0.2]})
    with pytest.raises(PaperCompareError, match="model_column"):
        compare_table_four(two_models)
    with pytest.raises(PaperCompareError, match="group"):
        compare_table_two(pl.DataFrame({"CN": [1.0]}))
    with pytest.raises(PaperCompareError, match="do not say their unit"):  # bare language: unit unknown
        compare_table_two(pl.DataFrame({"group": ["cn"], "CN": [0.8]}))
    with pytest.raises(PaperCompareError, match="do not say their unit"):
        compare_table_four(pl.DataFrame({"emotion": ["angry"], "wavlm": [0.4]}))


def test_compare_table_one_lists_all_24_cells():
    from finetune.table_one import table_one

    out = table_one(pl.DataFrame(schema={"model": pl.Utf8, "ua": pl.Float64}), all_cells=True)
    assert out.height == 24 and out["ua_pct"].null_count() == 24
    assert out["paper_ua_pct"].sum() == pytest.approx(sum(
        [91.4, 87.0, 93.9, 62.8, 65.3, 70.7, 98.5, 98.8, 98.9, 65.5, 66.3, 67.7,
         98.9, 97.8, 97.9, 52.2, 58.5, 56.0, 84.2, 83.6, 87.5, 85.8, 62.4, 66.0]))
