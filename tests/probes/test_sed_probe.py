"""Frame-level diarization probes per layer on synthetic frame caches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from featstore.cache import open_cache, write_cache
from featstore.manifest import make_manifest
from featstore.paths import features_path
from probes.sed import (
    ProbeConfig,
    eder,
    frame_targets,
    frames_to_segments,
    pad_like_recipe,
    recipe_frame_count,
    reference_segments,
    run_frame_probe,
    run_probe,
)

DIM = 8
EMOS = ("angry", "happy", "neutral", "sad")
# Layer 1 carries the emotion along one axis per class; layer 0 is noise only.
CENTRES = {e: 3.0 * np.eye(DIM)[i] for i, e in enumerate(EMOS)}


def _frames(labels: list[str], rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal((2, len(labels), DIM)).astype(np.float32)
    noise[1] += np.stack([CENTRES[lab] for lab in labels]).astype(np.float32)
    return noise


def _write(path: Path, rows: list[dict], frames: list[np.ndarray]) -> None:
    manifest = make_manifest(rows)
    ids = [r["utt_id"] for r in rows]
    mean = np.stack([f.mean(axis=1) for f in frames], axis=1)
    write_cache(path, ids, mean, mean, {"model_fingerprint": "synthetic", "manifest_fingerprint": "m"}, manifest,
                frames=frames, dtype="float32")


def _base_row(utt_id: str, emotion: str, duration: float, corpus: str) -> dict:
    return {"utt_id": utt_id, "corpus": corpus, "language": "en", "speaker": "s", "emotion": emotion,
            "label": emotion, "path": f"/x/{utt_id}.wav", "duration": duration, "sample_rate": 16000}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cache")
    rng = np.random.default_rng(0)
    for corpus in ("ua", "ub"):
        rows, frames = [], []
        for k in range(24):
            emo = EMOS[k % 4]
            n = int(rng.integers(20, 40))
            rows.append(_base_row(f"{corpus}{k}", emo, n * 0.02 + 0.005, corpus))
            frames.append(_frames([emo] * n, rng))
        _write(features_path("toy", corpus, root), rows, frames)
    rows, frames = [], []
    for k in range(9):
        emo = ("angry", "happy", "sad")[k % 3]
        n = int(rng.integers(60, 90))
        duration = n * 0.02 + 0.005
        s, e = int(n * 0.3), int(n * 0.7)
        labels = ["neutral"] * s + [emo] * (e - s) + ["neutral"] * (n - e)
        rows.append(_base_row(f"z{k}", emo, duration, "zz") | {
            "events": json.dumps([{"emotion": emo, "start": s * 0.02, "end": e * 0.02}])})
        frames.append(_frames(labels, rng))
    _write(features_path("toy", "zz", root), rows, frames)
    return root


def test_frame_targets() -> None:
    assert frame_targets({"emotion": "sad"}, 3, 0.02, 0.02) == ["sad"] * 3
    row = {"emotion": "angry", "duration": 0.1, "events": json.dumps([{"emotion": "angry", "start": 0.04, "end": 0.08}])}
    assert frame_targets(row, 5, 0.02, 0.02) == ["neutral", "neutral", "angry", "angry", "neutral"]


def test_probe_finds_the_informative_layer(root: Path) -> None:
    config = ProbeConfig(model="toy", train_corpora=("ua", "ub"), test_corpus="zz", max_train_frames=500,
                         layer_chunk=1)
    train = {c: open_cache(features_path("toy", c, root)) for c in config.train_corpora}
    test = open_cache(features_path("toy", "zz", root))
    per_utt, per_layer = run_probe(config, train, test)
    assert sorted(per_layer["layer"].to_list()) == [0, 1]
    e0, e1 = per_layer.sort("layer")["eder"].to_list()
    assert e1 < 0.1 < 0.4 < e0
    # the per-layer table is the plain mean of the per-utterance rows
    for layer in (0, 1):
        sub = per_utt.filter(pl.col("layer") == layer)
        assert per_layer.filter(pl.col("layer") == layer)["eder"][0] == pytest.approx(sub["eder"].mean())
        w = (sub["eder"] * sub["duration"]).sum() / sub["duration"].sum()
        assert per_layer.filter(pl.col("layer") == layer)["eder_duration_weighted"][0] == pytest.approx(w)
    # each per-utterance EDER is the metric of its own hypothesis
    manifest = test.manifest()
    for row in per_utt.filter(pl.col("layer") == 1).head(3).to_dicts():
        item = manifest.filter(pl.col("utt_id") == row["utt_id"]).row(0, named=True)
        hyp = [tuple(h) for h in json.loads(row["hypothesis"])]
        ref = reference_segments(json.loads(item["events"]), item["duration"])
        assert eder(hyp, ref, item["duration"]).eder == row["eder"]
    assert per_utt["n_train_frames"][0] <= 500


def test_oracle_frames_score_like_the_metric(root: Path) -> None:
    """With the true frame labels, the EDER is only the frame-grid rounding."""
    test = open_cache(features_path("toy", "zz", root))
    for row in test.manifest().to_dicts():
        n = int(test.num_frames[test.utt_ids.index(row["utt_id"])])
        labels = pad_like_recipe(frame_targets(row, n, 0.02, 0.02), recipe_frame_count(row["duration"]))
        res = eder(frames_to_segments(labels, 0.02, 0.02), reference_segments(json.loads(row["events"]),
                                                                               row["duration"]), row["duration"])
        assert res.eder < 0.03


def test_run_frame_probe_writes_tables_and_checks_inputs(root: Path, tmp_path: Path) -> None:
    config = ProbeConfig(model="toy", train_corpora=("ua",), test_corpus="zz", layers=(1,), max_train_frames=300)
    paths = run_frame_probe(config, root=root, out_dir=tmp_path / "p")
    per_layer = pl.read_parquet(paths["per_layer_parquet"])
    assert per_layer["layer"].to_list() == [1] and per_layer["seed"][0] == 0
    assert json.loads(per_layer["config_json"][0])["layers"] == [1]
    assert "zz" in json.loads(per_layer["cache_fingerprint"][0])
    with pytest.raises(ValueError, match="not stored"):
        run_frame_probe(ProbeConfig(model="toy", train_corpora=("ua",), test_corpus="zz", layers=(5,)), root=root)
    with pytest.raises(FileNotFoundError, match="extract"):
        run_frame_probe(ProbeConfig(model="toy", train_corpora=("nope",), test_corpus="zz"), root=root)
    with pytest.raises(ValueError, match="no events"):
        run_frame_probe(ProbeConfig(model="toy", train_corpora=("ua",), test_corpus="ub"), root=root)
    with pytest.raises(ValueError):
        ProbeConfig(model="toy", train_corpora=("zz",), test_corpus="zz")


@pytest.mark.slow  # importing cli loads every command module (~10 s)
def test_probe_command(root: Path, tmp_path: Path) -> None:
    from cli import app

    pl.DataFrame({"model": ["wavlm-emo"] * 2, "eder": [0.25, 0.5]}).write_parquet(tmp_path / "m.parquet")
    res = CliRunner().invoke(app, ["probes", "sed", "probe", "--model", "toy", "--train-corpora", "ua,ub",
                                   "--test", "zz", "--max-train-frames", "400", "--cache", str(root),
                                   "--out", str(tmp_path / "o"), "--model-results", str(tmp_path / "m.parquet")])
    assert res.exit_code == 0, res.output
    assert "best layer: 1" in res.output
    assert "wavlm-emo: EDER 37.5 %" in res.output
    res = CliRunner().invoke(app, ["probes", "sed", "probe", "--model", "toy", "--layers", "x", "--cache", str(root)])
    assert res.exit_code == 2


def test_probe_with_no_test_utterance_in_the_cache_is_a_clear_error(root: Path) -> None:
    config = ProbeConfig(model="toy", train_corpora=("ua",), test_corpus="zz", layers=(1,), max_train_frames=300)
    with open_cache(features_path("toy", "ua", root)) as train, open_cache(features_path("toy", "zz", root)) as test:
        manifest = test.manifest().with_columns(pl.lit("elsewhere").alias("utt_id"))
        with pytest.raises(ValueError, match="no utterance with events is in its cache"):
            run_probe(config, {"ua": train}, test, test_manifest=manifest)
