"""The study's human step writes the human-likeness per layer beside Tables II/III when the
probes' predictions are there, marks simulated answers, and the report shows it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import polars as pl
import pytest

from featstore.io import parquet_metadata
from probes.human import NoiseModel, simulate_answers
from study import steps
from study.report import build_report

_spec = importlib.util.spec_from_file_location(
    "likeness_data", Path(__file__).parents[1] / "probes" / "test_human_likeness.py")
_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_data)

NOTE = "simulated: 70 % right answers, the rest uniform"


@pytest.mark.slow
def test_human_step_writes_likeness_and_the_report_shows_it(tmp_path):
    run = tmp_path / "run"
    key = _data._key(per=3)
    key_path = tmp_path / "ser-test.key.csv"
    key.write_csv(key_path)
    simulate_answers(key, {"cn": 4, "de": 4}, NoiseModel(default=0.7), seed=3, out_dir=tmp_path / "web")
    answers = pl.DataFrame([{"listener": "x", "group": "cn", "stimulus": s, "language": lang, "answer": e}
                            for s, lang, e in key.select("stimulus", "language", "emotion").iter_rows()])
    (run / "probes").mkdir(parents=True)
    preds = _data._predictions(key, answers.with_columns(pl.lit("cn").alias("group")))
    preds.write_parquet(run / "probes" / "predictions.parquet")
    paths = steps.human_compare(sorted((tmp_path / "web").rglob("lss.csv")), key_path, None, run / "human",
                                group_languages={"cn": "cn", "de": "de"}, model_languages=_data.MODELS,
                                simulated=NOTE)
    like = run / "human" / "likeness"
    assert like / "likeness.parquet" in paths and like / "likeness_best.csv" in paths
    table = pl.read_parquet(like / "likeness.parquet")
    assert table.height == 4 * len(_data.LAYERS) and table["simulated"].all()
    assert parquet_metadata(like / "likeness.parquet")["simulated"] == NOTE
    prov = json.loads((like / "likeness.json").read_text())["provenance"]
    assert prov["simulated"] == NOTE and prov["probe_predictions"]["sha256"]
    best = pl.read_csv(like / "likeness_best.csv")
    assert best.height == 4
    for row in best.iter_rows(named=True):
        sub = table.filter((pl.col("model") == row["model"]) & (pl.col("setting") == row["setting"]))
        top = sub.filter(pl.col("kappa") == sub["kappa"].max())["layer"].min()  # ties: the lower layer
        assert row["kappa"] == sub["kappa"].max() and row["kappa_layer"] == top
        assert row["ua"] == sub["ua"].max()
    html = build_report(run).read_text()
    section = html[html.index("<section id='likeness'>"):]
    section = section[:section.index("</section>")]
    assert "human_likeness.png" in section and "likeness_best.csv" in section
    assert "SIMULATED LISTENERS" in section and "<img" in section
    # without the probes' predictions the step writes Tables II/III only
    paths = steps.human_compare(sorted((tmp_path / "web").rglob("lss.csv")), key_path, None, tmp_path / "h2",
                                group_languages={"cn": "cn", "de": "de"}, model_languages=_data.MODELS)
    assert not any("likeness" in str(p) for p in paths)
