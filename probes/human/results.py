"""Writing the comparison: CSV tables, figures and a provenance JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from featstore.errors import CrosslingError
from featstore.io import atomic_write, atomic_write_text, parquet_key_values
from probes.human import figures
from probes.human.build import file_sha256
from probes.human.compare import CompareResult


class ResultsError(CrosslingError, ValueError):
    """An answers or predictions table that cannot be read; the message names the file."""


def file_provenance(path: str | Path) -> dict:
    """sha256 of a file and the ``crossling`` parquet metadata it carries (if any)."""
    path = Path(path)
    out: dict = {"path": str(path), "sha256": file_sha256(path)}
    if path.suffix == ".parquet":
        raw = parquet_key_values(path).get("crossling")
        if raw:
            try:
                out["metadata"] = json.loads(raw)
            except ValueError:
                out["metadata"] = raw
    return out


def save_compare(result: CompareResult, out_dir: str | Path, provenance: Mapping,
                 labels: Sequence[str]) -> dict[str, Path]:
    """Write every table (CSV), the figures (PNG + SVG) and ``compare.json``.

    ``labels`` is the class order of the figures; labels the comparison added (a category
    kept as its own answer, :attr:`CompareResult.labels`) follow it."""
    labels = (*labels, *(lab for lab in result.labels if lab not in labels))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {
        "per_listener": result.per_listener, "group_summary": result.group_summary,
        "table2_ua": result.table2, "confusions": result.confusions, "ttests": result.ttests,
        "model_metrics": result.model_metrics, "table3": result.table3, "pairs": result.pairs,
        "per_listener_pooled": result.per_listener_pooled,
    }
    paths: dict[str, Path] = {}
    for name, frame in tables.items():
        path = out_dir / f"{name}.csv"
        atomic_write(path, lambda tmp, frame=frame: frame.write_csv(tmp))
        paths[name] = path
    from probes.paper_compare import PaperCompareError, compare_table_two, write_beside_paper

    try:  # Table II beside the paper's (simulated answers: shown, not compared)
        beside = compare_table_two(result.table2, demo=bool(provenance.get("simulated")))
    except PaperCompareError:
        beside = None  # no language of the paper's Table II was heard
    if beside is not None:
        paths |= {f"table2_vs_paper_{k}": v for k, v in write_beside_paper(beside, out_dir, "table2_vs_paper").items()}
    fig_dir = out_dir / "figures"
    for name, made in (
        ("confusion_grid", figures.confusion_grid(result.table3, fig_dir / "confusion_grid", labels)),
        ("recall_bars", figures.recall_bars(result.table3, fig_dir / "recall_bars", labels)),
        ("ua_by_group", figures.ua_bars(result.group_summary, fig_dir / "ua_by_group")),
    ):
        if made:
            paths[name] = made[0]
    summary = {"provenance": dict(provenance), "report": result.report,
               "table2_ua": result.table2.to_dicts(), "files": {k: str(v) for k, v in paths.items()}}
    path = out_dir / "compare.json"
    atomic_write_text(path, json.dumps(summary, indent=2, default=str))
    paths["summary"] = path
    return paths


def read_answers(path: str | Path) -> pl.DataFrame:
    """Read the answers parquet written by ``probes human ingest`` and check its columns."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"{path}: no answers table here; run `probes human ingest` first")
    try:
        frame = pl.read_parquet(path)
    except Exception as err:  # polars and pyarrow raise several types for bad files
        raise ResultsError(f"{path}: cannot read the answers parquet ({err})") from None
    need = [c for c in ("listener", "group", "stimulus", "corpus", "utt_id", "language", "true", "answer")
            if c not in frame.columns]
    if need:
        raise ResultsError(f"{path}: answers table lacks column(s) {need}")
    return frame


def read_predictions(paths: Sequence[str | Path]) -> pl.DataFrame:
    """Concatenate prediction tables (parquet or CSV) with at least utt_id, pred, model,
    setting."""
    frames = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise ResultsError(f"{p}: no predictions table here")
        try:
            frame = pl.read_parquet(p) if p.suffix == ".parquet" else pl.read_csv(p)
        except Exception as err:  # polars raises several types for bad files
            raise ResultsError(f"{p}: cannot read the predictions table ({err})") from None
        need = [c for c in ("utt_id", "pred", "model", "setting") if c not in frame.columns]
        if need:
            raise ResultsError(f"{p}: predictions lack column(s) {need}")
        frames.append(frame)
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
