"""The report puts the paper's published Tables II and IV beside real-data results (with
the difference), and marks a demo run as not comparable."""

from __future__ import annotations

import json
import re

from test_report_layout import make_run

from probes.paper_values import paper_value
from study.report import build_report


def _section(page: str, key: str) -> str:
    return page.split(f"<section id='{key}'>")[1].split("</section>")[0]


def _cells(html_table: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", html_table, flags=re.S)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S) for row in rows]


def _real(tmp_path):
    run = make_run(tmp_path / "run")
    meta = json.loads((run / "study.json").read_text())
    for key in ("untrained_models", "demo"):
        meta.pop(key)
    (run / "study.json").write_text(json.dumps(meta))
    return run


def test_table_two_of_a_real_run_stands_beside_the_paper_with_the_difference(tmp_path):
    page = build_report(_real(tmp_path)).read_text()
    table2 = _section(page, "table2")
    assert "Table II ours beside the paper" in table2
    ours = 62.5  # the fixture's cn listeners on CN
    paper = paper_value("II", group="cn", language="cn")
    rows = [r for r in _cells(table2) if r[:2] == ["cn", "cn"]]
    assert rows, table2
    numbers = [float(c) for c in rows[0][2:5]]
    assert numbers == [ours, paper, round(ours - paper, 1)]


def test_table_four_is_converted_to_percent_and_compared(tmp_path):
    page = build_report(_real(tmp_path)).read_text()
    table4 = _section(page, "table4")
    assert "Table IV ours beside the paper" in table4
    rows = [r for r in _cells(table4) if r[:2] == ["average", "cn"]]
    ours, paper = 22.0, paper_value("IV", emotion="average", system="cn")  # listeners cn average EDER 0.22
    assert [float(c) for c in rows[0][2:5]] == [ours, paper, round(ours - paper, 1)]


def test_a_demo_run_is_marked_not_comparable(tmp_path):
    page = build_report(make_run(tmp_path / "run")).read_text()
    table2 = _section(page, "table2")
    assert "not comparable" in table2
    rows = [r for r in _cells(table2) if r[:2] == ["cn", "cn"]]
    assert rows and rows[0][4] == ""  # no difference for demo numbers


def test_finetune_layer_is_explained_where_best_layers_appear(tmp_path):
    import polars as pl

    run = make_run(tmp_path / "run")
    pl.DataFrame({"model": ["m"], "setting": ["mono"], "layer": [0], "ua_mean": [0.5], "finetune_layer": [3]}
                 ).write_csv(run / "probes" / "best_layers.csv")
    fig1 = _section(build_report(run).read_text(), "fig1")
    assert "finetune_layer: the layer `finetune peft --layer best` uses" in fig1
