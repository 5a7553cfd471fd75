"""The HTML report: self-contained, rendered by a real headless browser with its images."""

from __future__ import annotations

import re
import shutil
import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pytest  # noqa: E402

from study.report import build_report, collect_provenance  # noqa: E402

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Debian's chromium is needed for the report tests: run .ci/setup-browser (apt-get install chromium)"
    return exe


@pytest.fixture()
def run_dir(tmp_path):
    run = tmp_path / "run"
    (run / "probes").mkdir(parents=True)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(np.arange(13), np.linspace(0.3, 0.8, 13), label="mono")
    ax.legend()
    fig.savefig(run / "probes" / "figure1.png", dpi=60)
    plt.close(fig)
    pl.DataFrame({"layer": [0, 1], "ua_mean": [0.5, 0.7]}).write_csv(run / "probes" / "summary.csv")
    pl.DataFrame({
        "model": ["w2v2-cn", "w2v2-cn"], "model_fingerprint": ["abc", "abc"],
        "manifest_fingerprint": ["m1", "m1"], "seed": [0, 0], "layer": [0, 1],
    }).write_parquet(run / "probes" / "results.parquet")
    (run / "study.json").write_text('{"title": "Test study", "untrained_models": true}')
    return run


def test_report_is_self_contained_and_complete(run_dir):
    out = build_report(run_dir)
    page = out.read_text()
    assert "data:image/png;base64," in page
    assert "src='http" not in page and 'src="http' not in page
    assert "Figure 1" in page and "Table I" in page and "Table IV" in page
    assert "UNTRAINED" in page
    assert "probes layerwise" not in page.split("Figure 1")[1].split("Table I")[0]  # fig1 ran
    assert "finetune peft" in page  # Table I not run: says which command makes it
    prov = collect_provenance(run_dir)
    assert prov.height == 1 and prov["model_fingerprint"].to_list() == ["abc"]


@pytest.mark.browser
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    out = build_report(run_dir)
    profile = tmp_path / "profile"
    dom = subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
         "--dump-dom", out.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    match = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert match, "the page's load script did not run"
    loaded, total = map(int, match.groups())
    assert total >= 1 and loaded == total


def test_report_screenshot(run_dir, tmp_path):
    out = build_report(run_dir)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'p2'}", "--window-size=900,700",
         f"--screenshot={shot}", out.as_uri()],
        capture_output=True, timeout=120, check=False,
    )
    assert shot.exists(), "chromium wrote no screenshot"
    image = plt.imread(shot)
    assert image.shape[0] == 700 and image.shape[1] == 900
    # a rendered page has text and a figure: far from one flat colour
    assert image[..., :3].std() > 0.05
