"""``probes layerwise``, ``probes plot`` and ``probes bench`` through Typer's test runner."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from cli import probes_app
from probes.synthetic import write_synthetic_study

runner = CliRunner()


def _flat(res) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(res.output.split())


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    write_synthetic_study(root, n_utts=80, n_layers=3, dim=8)
    return root


def test_layerwise_then_plot(root, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(probes_app, [
        "layerwise", "--setting", "mono,trans", "--models", "w2v2-cn", "--corpora", "esd,pavoque",
        "--layers", "0,2", "--folds", "2", "--max-epochs", "3", "--lr", "1e-3", "--seed", "4",
        "--cache-root", str(root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "UA (%) mean ± std" in res.output and "best layers" in res.output
    table = pl.read_parquet(out / "results.parquet")
    assert set(table["setting"]) == {"mono", "trans"} and set(table["layer"]) == {0, 2}
    assert set(table["fold"]) == {0, 1} and (table["seed"] == 4).all()
    assert json.loads(table["config_json"][0])["probe"]["max_epochs"] == 3
    assert (root / "runs" / "probes" / "best_layers.json").exists()
    res = runner.invoke(probes_app, ["plot", str(out / "results.csv"), "--out", str(tmp_path / "fig")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "fig" / "figure1.png").stat().st_size > 0 and (tmp_path / "fig" / "figure1.svg").exists()


@pytest.mark.parametrize("args, message", [
    (["--setting", "bogus"], "unknown setting"),
    (["--head", "svm"], "unknown head"),
    (["--layers", "a,b"], "layers must be"),
    (["--backend", "dask"], "scheduler"),
])
def test_layerwise_rejects_bad_options(root, args, message):
    res = runner.invoke(probes_app, ["layerwise", "--cache-root", str(root), *args])
    assert res.exit_code == 2
    assert message in _flat(res)


def test_layerwise_missing_cache_is_a_clear_error(root, tmp_path):
    res = runner.invoke(probes_app, ["layerwise", "--model", "w2v2-xx", "--cache-root", str(root),
                                     "--out", str(tmp_path)])
    assert res.exit_code == 2 and "no such cache file" in _flat(res)
    res = runner.invoke(probes_app, ["plot", str(tmp_path / "none.parquet")])
    assert res.exit_code == 2 and "no results table" in _flat(res)


def test_bench_quick_json():
    res = runner.invoke(probes_app, ["bench", "--n-utts", "48", "--n-layers", "2", "--dim", "8", "--folds", "2",
                                     "--quick", "--n-jobs", "1", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["heads_trained"] == 2 * 3 * 2 * 2 and report["conditions"] == 10
    base = report["b_baseline"]
    assert base["heads_timed"] == 2 and base["extrapolated"]
    # the plain loop draws the same init and shuffles: the same UA on the heads it trained
    assert base["max_abs_ua_diff_points"] < 1e-6
    assert report["forward_passes"]["cache"] == 2 * 3 * 48
    assert report["forward_passes"]["paper_code"] > report["forward_passes"]["cache"]
    assert {"a_le_300s", "b_over_a_ge_5", "ua_within_1_point", "c_le_30s"} <= set(report["targets"])
    stats = report["stats"]  # probes.stats: time over the grid's, pass/fail
    assert report["targets"]["stats_le_20pct"] == (stats["ratio"] <= 0.2) and stats["rows"]["layer_ci"] == 10 * 2
