"""The report in real headless Chromium at 1280 px: nothing wider than the window, no cell
that wraps, no figure text under 9 pt; simulated listeners flagged at every listener table
and figure; units in every header. The fixture run directory is made by the real writers
(Figure 1, the listener figures, Welch's tests, Table IV, provenance parquet files) with
the demo's names and long paths; each defect is also planted once to show the check fails."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from featstore.io import write_parquet
from probes.human import figures
from probes.plot import plot_figure1
from study.report import build_report
from study.report_check import check_layout, png_figure_info

LABELS = ("angry", "happy", "neutral", "sad")
MODELS = ("untrained-w2v2-cn", "untrained-w2v2-de", "untrained-w2v2-en")
SCREENSHOT = Path(__file__).resolve().parents[2] / "cache" / "report-screenshot.png"


def _table3(rng: np.random.Generator) -> pl.DataFrame:
    rows = []
    for g in ("cn", "de"):
        for lang in ("cn", "de", "en", "yue"):
            panels = [(f"Human: {g.upper()} (native on {lang.upper()})", "human", "native")]
            panels += [(f"Model: {m} {s} (on {lang.upper()}) [{m}/{s}]", "model", s)
                       for m, s in zip(MODELS, ("mono", "cross", "trans"), strict=True)]
            for title, who, setting in panels:
                for true in LABELS:
                    rows.append({"panel": title, "who": who, "group": g, "language": lang, "setting": setting,
                                 "variant": None, "true": true, **dict(zip(LABELS, rng.dirichlet(np.ones(4)), strict=True))})
    return pl.DataFrame(rows)


def make_run(run: Path, simulated_by: str = "meta") -> Path:
    """A demo-like run directory; ``simulated_by``: ``meta`` (study.json ``listeners``) or
    ``provenance`` (a ``simulated`` field in human/compare.json and the SED parquet)."""
    rng = np.random.default_rng(0)
    rows = []
    for m in MODELS:
        for setting, train, test in (("mono", "demo-cn", "demo-cn"), ("cross", "demo-cn", "demo-de"),
                                     ("cross", "demo-cn", "demo-en"), ("trans", "demo-de", "demo-de"),
                                     ("trans", "demo-en", "demo-en")):
            for layer in range(7):
                for fold in range(5):
                    rows.append({"model": m, "setting": setting, "train_corpus": train, "test_corpus": test,
                                 "layer": layer, "fold": fold, "ua": float(rng.uniform(0.2, 0.7)),
                                 "model_fingerprint": "f" * 16, "manifest_fingerprint": "a1b2c3d4e5f60718",
                                 "cache_fingerprint": "0123456789abcdef", "fold_scheme": "speaker-independent-5",
                                 "seed": 0})
    results = pl.DataFrame(rows)
    probes = run / "probes"
    probes.mkdir(parents=True)
    results.write_parquet(probes / "results.parquet")
    plot_figure1(results, probes)
    summary = results.group_by("model", "setting", "train_corpus", "test_corpus", "layer").agg(
        pl.col("ua").mean().alias("ua_mean"), pl.col("ua").std().alias("ua_std"))
    summary.sort("model", "setting", "layer").write_csv(probes / "summary.csv")  # fractions, as the probes write
    human = run / "human"
    table3 = _table3(rng)
    figures.confusion_grid(table3.filter(pl.col("language") == "cn"), human / "figures" / "confusion_grid")
    figures.recall_bars(table3, human / "figures" / "recall_bars")
    pl.DataFrame({"group": ["cn", "de"], "CN_ua": [0.625, 0.4125], "DE_ua": [0.3875, 0.70], "EN_ua": [0.55, 0.575],
                  "YUE_ua": [0.45, 0.30]}).write_csv(human / "table2_ua.csv")  # fractions, as compare writes
    tests = []
    for metric in ("ua", "wa", "recall_angry", "recall_happy"):
        for la, lb in (("cn", "de"), ("cn", "en"), ("de", "yue")):
            tests.append({"comparison": "between_languages", "metric": metric, "group_a": "cn", "group_b": "cn",
                          "language_a": la, "language_b": lb, "n_a": 6, "n_b": 6, "mean_a": 0.61, "mean_b": 0.43,
                          "sd_a": 0.05, "sd_b": 0.07, "t": 5.1234, "df": 9.87, "p": 8.97e-09 * (1 + len(tests)),
                          "p_adj": 1.2e-07, "correction": "holm", "significant": True})
    pl.DataFrame(tests).write_csv(human / "ttests.csv")
    sed = run / "sed"
    sed.mkdir()
    pl.DataFrame({"emotion": ["angry", "happy", "sad", "average"], "untrained-wavlm-emo_eder": [0.61, 0.58, 0.7, 0.63],
                  "listeners_cn_eder": [0.21, 0.25, 0.19, 0.22], "listeners_de_eder": [0.2, 0.3, 0.22, 0.24]}
                 ).write_csv(sed / "table_iv.csv")
    long_model = "untrained-w2v2-cn-with-a-long-name-from-a-folder"
    prov = pl.DataFrame({"model": [long_model, "listeners"], "model_fingerprint": ["9f8e7d6c5b4a39281706f5e4", None],
                         "train_manifest_fingerprint": ["1" * 16, "2" * 16], "test_manifest_fingerprint": ["3" * 16] * 2,
                         "cache_fingerprint": ["4" * 16, None], "fold_scheme": ["speaker-independent-5"] * 2,
                         "seed": [0, 0]})
    listener_meta = {"simulated": "simulated: demo answers"} if simulated_by == "provenance" else {}
    write_parquet(prov.with_columns(pl.lit("cn").alias("group")), sed / "per_answer.parquet", metadata=listener_meta)
    (sed / "model").mkdir()
    prov.head(1).write_parquet(sed / "model" / "per_utterance.parquet")  # the model's own output: not simulated
    finetune = run / "finetune" / "lora_ba_wg"
    finetune.mkdir(parents=True)
    prov.head(1).write_parquet(finetune / "predictions.parquet")
    compare = {"provenance": {"key": {"path": "/very/long/path/" * 6 + "key.csv"}}}
    meta = {"title": "Cross-lingual SER demo", "untrained_models": True, "demo": {"seed": 0},
            "models": {m: "wav2vec 2.0, 6 layers x 64 dims, random weights (seed 0), NO pre-training"
                       for m in MODELS},
            "margins": {"best_mono_probe_ua_pct": 71.25, "min_finetune_ua_pct": 47.5}}
    if simulated_by == "provenance":
        compare["provenance"]["simulated"] = True
    else:
        meta["listeners"] = "simulated: answers drawn from the paper's human confusion matrices (Table III)"
    (human / "compare.json").write_text(json.dumps(compare))
    (run / "study.json").write_text(json.dumps(meta))
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    return build_report(make_run(tmp_path_factory.mktemp("layout") / "run"))


@pytest.mark.browser
def test_report_fits_1280px_in_chromium_and_keeps_a_screenshot(report):
    found = check_layout(report, screenshot=SCREENSHOT)
    assert found.viewport == 1280
    assert found.problems() == []
    assert found.figures >= 3 and found.cells > 50
    # the t-tests and provenance fit without scrolling (nothing cut at the page edge)
    assert not [s for s in found.scrolling if "ttests" in s or "fingerprint" in s], found.scrolling
    assert SCREENSHOT.is_file() and SCREENSHOT.stat().st_size > 10_000


@pytest.mark.browser
@pytest.mark.parametrize("defect, expect", [
    ("<div style='width:1900px'>a deliberately wide element</div>", "wider than the window"),
    ("<table><tr><td class='num' style='white-space:normal;max-width:3em'>36.2 ± 13.5</td></tr></table>",
     "cell wraps"),
    ("<img alt='tiny text' data-dpi='150' data-min-font-pt='9' style='width:300px' src='SMALL'>",
     "figure text below 9 pt"),
    ("<img alt='no metadata' style='width:300px' src='SMALL'>", "without font/dpi metadata"),
])
def test_the_layout_check_fails_on_each_defect(report, tmp_path, defect, expect):
    page = report.read_text()
    small = re.search(r"src='(data:image/png;base64,[^']+)'", page).group(1)  # a figure ~1500 px wide
    bad = tmp_path / "bad.html"
    bad.write_text(page.replace("</h1>", "</h1>" + defect.replace("SMALL", small), 1))
    problems = check_layout(bad).problems()
    assert any(expect in p for p in problems), problems


def test_figures_carry_their_font_and_dpi_and_fit_the_column(report):
    run = report.parent
    for png in sorted(run.rglob("*.png")):
        info = png_figure_info(png)
        assert info["min_font_pt"] >= 9, png
        assert info["width_px"] / info["dpi"] <= 11.1, png  # shown at print size in a 1068 px column
    bars = png_figure_info(run / "human" / "figures" / "recall_bars.png")
    assert bars["height_px"] > bars["width_px"] / 2  # a grid of panels, not one strip


def _section(page: str, key: str) -> str:
    return page.split(f"<section id='{key}'>")[1].split("</section>")[0]


@pytest.mark.parametrize("simulated_by", ["meta", "provenance"])
def test_simulated_listeners_are_flagged_at_every_listener_table_and_figure(tmp_path, simulated_by):
    page = build_report(make_run(tmp_path / "run", simulated_by)).read_text()
    human, sed = _section(page, "table2"), _section(page, "table4")
    for part in (human, sed):
        captions = re.findall(r"<figcaption>(.*?)</figcaption>", part)
        assert captions and all("SIMULATED LISTENER" in c for c in captions), captions
    assert "SIMULATED" not in _section(page, "fig1")  # model-only numbers are not flagged
    assert "SIMULATED listeners" in page.split("<ul>")[0]  # and the banner says it too
    prov = page.split("<section id=\"provenance\">")[1]
    assert re.search(r"sed/per_answer\.parquet</td>(<td[^>]*>[^<]*</td>)*<td>simulated</td>", prov)
    model_row = re.search(r"title='sed/model/per_utterance\.parquet'>[^<]*</td>((<td[^>]*>[^<]*</td>)*)</tr>", prov)
    assert model_row and "simulated" not in model_row.group(1)  # a model's own output is not flagged


def test_no_flag_without_a_mark(tmp_path):
    run = make_run(tmp_path / "run")
    meta = json.loads((run / "study.json").read_text())
    del meta["listeners"]
    (run / "study.json").write_text(json.dumps(meta))
    assert "SIMULATED" not in build_report(run).read_text()


def test_units_in_every_header_and_fractions_converted_once(report):
    page = report.read_text()
    fig1 = _section(page, "fig1")
    assert "layer 0 UA %" in fig1 and "layer 6 UA %" in fig1
    cells = re.findall(r"<td class='num'>(\d+\.\d) ± (\d+\.\d)</td>", fig1)
    assert cells and all(20 <= float(m) <= 70 for m, _ in cells)  # fractions became percent, once
    table4 = _section(page, "table4")
    assert "untrained-wavlm-emo EDER %" in table4 and "listeners cn EDER %" in table4
    assert "<td class='num'>63.0</td>" in table4  # 0.63 -> 63.0
    table2 = _section(page, "table2")
    assert "CN UA %" in table2 and "<td class='num'>62.5</td>" in table2  # a fraction in the file, % shown
    about = _section(page, "about")
    assert "71.2" in about and "+46.2" in about and "NO pre-training" in about  # margin over chance 25 %


def test_chromium_is_needed_and_named(monkeypatch, report):
    from study import report_check

    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(report_check.BrowserError, match="apt-get install chromium"):
        report_check.check_layout(report)


@pytest.mark.slow
@pytest.mark.browser
def test_the_demo_report_passes_the_layout_check(tmp_path):
    """The demo's own report (small settings) in Chromium at 1280 px; its screenshot is the
    CI artifact cache/report-screenshot-demo.png."""
    from study.demo import DemoConfig, run_demo

    lines: list[str] = []
    report = run_demo(DemoConfig(out=tmp_path / "run", cache_root=tmp_path / "cache", per_emotion=4,
                                 finetune_epochs=1, listeners_per_group=3), log=lines.append)
    found = check_layout(report, screenshot=SCREENSHOT.with_name("report-screenshot-demo.png"))
    assert found.problems() == [] and found.figures >= 4
    page = report.read_text()
    for key in ("table2", "table4"):
        captions = re.findall(r"<figcaption>(.*?)</figcaption>", _section(page, key))
        assert captions and all("SIMULATED LISTENER" in c for c in captions), (key, captions)
    # the listener result files carry the mark in their provenance too
    from featstore.io import parquet_metadata

    human = report.parent / "human"
    assert json.loads((human / "compare.json").read_text())["provenance"]["simulated"].startswith("simulated")
    assert parquet_metadata(human / "ingest" / "answers.parquet")["simulated"].startswith("simulated")
    # fine-tuning and diarization said how far they were while they ran
    assert any(line.startswith("fine-tuning fold 0") and "valid" in line for line in lines)
    assert any(line.startswith("diarizing demo-zed:") for line in lines)
