"""The Table I study presets load as study configs and their runs fill the paper's 24 cells
exactly as their two_stage_reading says (docs/fidelity.md, "Table I cells")."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
import tomllib

from finetune.table_one import PAPER_CORPORA, table_one_cells
from study.config import load_study_config

ROOT = Path(__file__).resolve().parents[2]
LANGUAGE = {corpus: lang for lang, corpus in PAPER_CORPORA.items()}


def _load(name: str, tmp_path: Path):
    """The preset with its /data paths moved under tmp_path (folders created)."""
    text = (ROOT / name).read_text(encoding="utf-8")
    text = text.replace('"/data/', f'"{tmp_path.as_posix()}/data/')
    for path in re.findall(r'"(' + re.escape(tmp_path.as_posix()) + r'/data/[^"]*)"', text):
        Path(path).mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_study_config(path)


def _cell_rows(run, reading: str) -> list[int]:
    """The Table I rows whose run (by the reading) is this study run."""
    stage1 = run.source_corpus if run.two_stage else run.train_corpus
    stage2 = run.train_corpus if run.two_stage else None
    cells = table_one_cells(reading).filter(
        (pl.col("model") == run.model) & (pl.col("strategy") == run.strategy)
        & (pl.col("two_stage") == run.two_stage) & (pl.col("run_stage1") == LANGUAGE[stage1])
        & pl.col("run_stage2").eq_missing(LANGUAGE[stage2] if stage2 else None)
        & (pl.col("run_test") == LANGUAGE[run.test_corpus]) & pl.col("impossible").is_null())
    return cells["row"].to_list()


@pytest.mark.parametrize("name, protocol, reading", [
    ("study.table1.toml", "authors", "text"), ("study.table1-text.toml", "text", "text"),
    ("study.table1-authors-logs.toml", "authors", "authors")])
def test_preset_runs_fill_the_24_cells(name, protocol, reading, tmp_path):
    raw = tomllib.loads((ROOT / name).read_text(encoding="utf-8"))
    assert raw["finetune"]["protocol"] == protocol
    config = _load(name, tmp_path)
    assert config.finetune.two_stage_reading == reading  # the study builds table1.csv with it
    runs = config.finetune.runs
    assert {run.protocol for run in runs} == {protocol}
    per_run = [_cell_rows(run, reading) for run in runs]
    assert all(per_run), "every run fills a Table I cell"
    filled = sorted(r for rows in per_run for r in rows)
    assert len(filled) == len(set(filled)), "no cell filled twice"
    cells = table_one_cells(reading)
    impossible = cells.filter(pl.col("impossible").is_not_null())["row"].to_list()
    # every cell is either filled by exactly one run or impossible under the reading, with a reason
    assert sorted(filled + impossible) == list(range(1, 25))
    assert all("CN and DE" in why for why in cells.filter(pl.col("impossible").is_not_null())["impossible"])
    if name == "study.table1.toml":  # the all-cells preset under the authors' protocol
        assert impossible == [] and sorted(filled) == list(range(1, 25))
    assert {r.scope for r in runs} == {"every-layer"} and config.finetune.folds == 5
