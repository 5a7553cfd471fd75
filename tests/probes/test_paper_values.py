"""The paper's published numbers (probes.paper_values): structure, and every value read back
from the paper's text (../shared/paper) so that a transcription slip fails."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from featstore.errors import CrosslingError
from probes import paper_values as pv

PAPER = Path(__file__).resolve().parents[2].parent / "shared" / "paper" / "crosslingual-ser-humans-vs-ssl.txt"
NUMBER = re.compile(r"(?<![\w.])\d+\.\d+")


def _paper_lines() -> list[str]:
    return PAPER.read_text(encoding="utf-8").splitlines()


def _section(start: str, stop: str) -> list[str]:
    lines = _paper_lines()
    i = next(k for k, line in enumerate(lines) if line.startswith(start))
    j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith(stop))
    return lines[i + 1:j]


def _table_rows(lines: list[str]) -> list[str]:
    """Markdown table rows that hold at least one decimal number."""
    return [line for line in lines if line.startswith("|") and NUMBER.search(line)]


# ------------------------------------------------------------------ structure
def test_table_one_has_the_24_printed_cells_with_unique_keys():
    frame = pv.paper_table_one()
    assert frame.height == 24
    assert frame["row"].to_list() == list(range(1, 25))
    keys = frame.select("model", "setting", "target", "ba_wg", "two_stage").unique()
    assert keys.height == 24
    assert frame["lora"].all()
    assert frame["ua_pct"].min() > 0 and frame["ua_pct"].max() <= 100
    # eight blocks of three: LoRA / +BA+WG / +2-stg
    per_model = frame.group_by("model").len().sort("model")
    assert per_model["len"].to_list() == [12, 12]
    assert sorted(frame["setting"].unique().to_list()) == ["cross", "mono", "trans"]
    assert frame.filter(pl.col("two_stage")).height == 8
    assert set(frame["model_label"].to_list()) == {"W2V2-CN", "W2V2-DE"}


def test_table_two_three_four_have_the_printed_shapes():
    two = pv.paper_table_two()
    assert two.height == 8
    assert sorted(two["language"].unique().to_list()) == ["cn", "de", "en", "tj"]
    assert two.select("group", "language").unique().height == 8
    assert two["ua_pct"].is_between(0, 100).all()

    three = pv.paper_table_three()
    assert three.height == 12 * 16
    assert [p.panel for p in pv.TABLE_III] == list("abcdefgh") + list("klmn")
    assert three["rate"].is_between(0, 1).all()
    for panel in pv.TABLE_III:
        for row in panel.rows:
            # printed to two decimals: each row sums to 1 within rounding of four entries
            assert sum(row) == pytest.approx(1.0, abs=0.021), panel.panel

    four = pv.paper_table_four()
    assert four.height == 12
    assert four.select("emotion", "system").unique().height == 12
    assert four["eder_pct"].is_between(0, 100).all()
    for system in ("wavlm", "cn", "de"):
        rows = {c.emotion: c.eder_pct for c in pv.TABLE_IV if c.system == system}
        mean = (rows["angry"] + rows["happy"] + rows["sad"]) / 3
        # each printed value is rounded (+-0.05), so the mean of three is too: +-0.1 in all
        assert rows["average"] == pytest.approx(mean, abs=0.1), system


# ------------------------------------------------------------------ values against the paper text
def test_every_table_one_value_and_tick_count_matches_the_paper_in_order():
    rows = _table_rows(_section("TABLE I:", "TABLE II:"))
    assert len(rows) == 24
    for cell, line in zip(pv.TABLE_I, rows, strict=True):
        numbers = [float(x) for x in NUMBER.findall(line)]
        assert numbers == [cell.ua_pct], (cell.row, line)
        ticks = line.count("✓")
        want = int(cell.lora) + int(cell.ba_wg) + int(cell.two_stage)
        if cell.note:
            # the one row whose printed ticks differ from the block pattern (see its note)
            assert (cell.row, ticks, want) == (23, 3, 2)
        else:
            assert ticks == want, (cell.row, line)


def test_table_one_row_labels_sit_on_the_right_blocks():
    lines = _section("TABLE I:", "TABLE II:")
    rows = _table_rows(lines)
    by_row = {c.row: c for c in pv.TABLE_I}
    assert "W2V2 -CN" in rows[0] and "Mono" in rows[0] and by_row[1].model == "w2v2-cn"
    assert "Cross | CN | DE" in rows[3] and (by_row[4].setting, by_row[4].target) == ("cross", "de")
    assert "Trans | DE | DE" in rows[6] and (by_row[7].setting, by_row[7].source) == ("trans", "de")
    assert "Trans | EN | EN" in rows[9] and by_row[10].target == "en"
    assert "W2V2 -DE" in rows[12] and "Mono | DE | DE" in rows[12] and by_row[13].model == "w2v2-de"
    assert "Cross | DE | CN" in rows[15] and by_row[16].target == "cn"
    assert "Trans | CN | CN" in rows[18] and by_row[19].target == "cn"
    assert "Trans | EN | EN" in rows[21] and by_row[22].model == "w2v2-de"


def test_table_two_values_match_the_participant_rows():
    lines = _section("TABLE II:", "In terms of overall accuracy")
    for group, label in (("cn", "CN participants"), ("de", "DE participants")):
        line = next(x for x in lines if label in x)
        printed = [float(x) for x in NUMBER.findall(line)]
        ours = [pv.paper_value("II", group=group, language=lang) for lang in ("cn", "de", "en", "tj")]
        assert ours == printed, group


def test_table_three_panels_match_the_printed_matrices():
    lines = _paper_lines()
    start = next(k for k, x in enumerate(lines) if x.startswith("TABLE III:"))
    matrices, current = [], []
    for line in lines[start:]:
        if re.match(r"\| [AHNS] \|", line):
            current.append(tuple(float(x) for x in NUMBER.findall(line)))
            if len(current) == 4:
                matrices.append(tuple(current))
                current = []
        if line.startswith("(n) Model"):
            break
    assert len(matrices) == 12
    assert matrices == [p.rows for p in pv.TABLE_III]
    captions = [x for x in lines[start:] if re.match(r"\([a-n]\) (Human|Model)", x)]
    assert [c[1] for c in captions] == [p.panel for p in pv.TABLE_III]
    for caption, panel in zip(captions, pv.TABLE_III, strict=True):
        assert caption.split()[1].lower().rstrip(":") == panel.subject


def test_table_four_values_match_the_printed_rows():
    lines = _section("TABLE IV:", "V. CONCLUSION")
    for emotion in ("angry", "happy", "sad", "average"):
        line = next(x for x in lines if x.startswith(f"| {emotion.capitalize()} "))
        printed = [float(x) for x in NUMBER.findall(line)]
        ours = [pv.paper_value("IV", emotion=emotion, system=s) for s in ("wavlm", "cn", "de")]
        assert ours == printed, emotion


def test_quoted_t_tests_appear_in_the_text():
    text = PAPER.read_text(encoding="utf-8")
    for test in pv.PAPER_TTESTS:
        p = f"p = {test.p:.3f}" if test.p is not None else f"p < {test.p_below:.3f}"
        needle = f"$t({int(test.df)}) = {test.t:.3f}, {p}$"
        assert needle in text, needle
    assert text.count("t(10) = -7.511") == 2  # the repeated value the notes point at


# ------------------------------------------------------------------ lookup API
def test_paper_value_finds_one_cell_and_none_for_cells_the_paper_lacks():
    assert pv.paper_value("I", model="w2v2-cn", setting="cross", target="de", ba_wg=True, two_stage=True) == 70.7
    assert pv.paper_value(1, model="w2v2-de", setting="trans", target="en", ba_wg=False) == 85.8
    assert pv.paper_value("table2", group="de", language="tj") == 29.2
    assert pv.paper_value("III", panel="h", true="sad", pred="sad") == 0.37
    assert pv.paper_value("IV", emotion="sad", system="wavlm") == 50.3
    # the paper has no cross-lingual cell tested on EN
    assert pv.paper_value("I", model="w2v2-cn", setting="cross", target="en", ba_wg=False, two_stage=False) is None


def test_paper_value_refuses_ambiguous_keys_and_unknown_names():
    with pytest.raises(CrosslingError, match="matches 3 cells"):
        pv.paper_value("I", model="w2v2-cn", setting="mono")
    with pytest.raises(CrosslingError, match="column"):
        pv.paper_value("I", modle="w2v2-cn")
    with pytest.raises(CrosslingError, match="paper table"):
        pv.paper_value("V", model="w2v2-cn")
    with pytest.raises(CrosslingError):
        pv.paper_value("I", ua_pct=91.4)


def test_layer_evidence_counts_hidden_states_one_above_the_authors_index():
    for ev in pv.AUTHORS_LAYERS:
        assert ev.hidden_state == ev.authors_layer + 1
    assert any(ev.verified for ev in pv.AUTHORS_LAYERS)


def test_record_fields_name_the_value_columns():
    assert pv.record_fields("I")[-2:] == ["ua_pct", "note"]
    assert "eder_pct" in pv.record_fields(4)


def test_logged_runs_match_their_printed_rows():
    by_row = {c.row: c for c in pv.TABLE_I}
    offsets = []
    for run in pv.AUTHORS_LOG_RUNS:
        assert len(run.fold_acc) == 5
        own = by_row[run.own_row]
        assert (own.model, own.setting, own.target) == (run.model, run.setting, run.test)
        if run.printed_row is None:
            # no printed cell of the run's model has this mean
            assert all(c.ua_pct != run.mean_pct for c in pv.TABLE_I if c.model == run.model), run
            continue
        cell = by_row[run.printed_row]
        assert cell.ua_pct == run.mean_pct, run
        assert (cell.model, cell.setting, cell.target) == (run.model, run.setting, run.test)
        offsets.append(run.printed_row - run.own_row)
    # the one-row-off pattern: five runs printed one row below their own, one on its own row
    assert sorted(offsets) == [0, 1, 1, 1, 1, 1]
    means = {(r.log, r.model): r.mean_pct for r in pv.AUTHORS_LOG_RUNS}
    assert means[("various_twostage.out", "w2v2-cn")] == 69.4
    assert means[("various_twostage.out", "w2v2-de")] == 57.5
    assert means[("en_trans.out", "w2v2-de")] == 65.0
