"""The SED listening test on a synthetic ZED: build, answers -> hypotheses -> EDER, Table IV."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import soundfile as sf
from typer.testing import CliRunner

from featstore.corpora.testing import write_tone
from featstore.manifest import make_manifest, save_manifest
from featstore.paths import manifest_path
from probes.sed import (
    ANSWER_COLUMNS,
    KEY_COLUMNS,
    SedTestConfig,
    answer_hypothesis,
    build_sed_test,
    read_answers,
    read_key,
    score_answers,
    score_listeners,
    table_iv,
)


def _zed_manifest(root: Path, n_per_emotion: int = 3) -> pl.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    for emo in ("angry", "happy", "sad"):
        for k in range(n_per_emotion):
            dur = float(rng.uniform(1.0, 2.0))
            start = float(rng.uniform(0.1, 0.4))
            end = float(rng.uniform(start + 0.2, dur - 0.1))
            path = write_tone(root / f"{emo}{k}.wav", dur, 16000, 300.0 + 50 * k)
            rows.append({"utt_id": f"zed_{emo}_{k}", "corpus": "zed", "language": "en", "speaker": "zed",
                         "emotion": emo, "label": emo, "path": str(path), "duration": dur, "sample_rate": 16000,
                         "events": json.dumps([{"emotion": emo, "start": start, "end": end}])})
    return make_manifest(rows)


def _load(row: dict) -> np.ndarray:
    wave, _ = sf.read(row["path"], dtype="float32")
    return wave


def _grid_eder(label: str, start: float, end: float, key_row: dict, dt: float = 1e-4) -> float:
    """Independent: fraction of a fine time grid where the answer's label differs from the truth."""
    dur = float(key_row["duration"])
    t = (np.arange(int(dur / dt)) + 0.5) * dt
    truth = np.where((t >= key_row["event_start"]) & (t < key_row["event_end"]), key_row["emotion"], "neutral")
    guess = np.where((t >= start) & (t < end), label, "neutral") if label != "neutral" else np.full(t.size, "neutral")
    return float((truth != guess).mean())


def test_build_selects_balanced_seeded(tmp_path: Path) -> None:
    manifest = _zed_manifest(tmp_path / "wav")
    paths = build_sed_test(manifest, tmp_path / "t", _load, SedTestConfig(n_per_emotion=2, seed=5))
    key = read_key(paths["key"])
    assert tuple(key.columns) == KEY_COLUMNS
    assert key.height == 6 and key.group_by("emotion").len()["len"].to_list() == [2, 2, 2]
    template = pl.read_csv(paths["template"])
    assert tuple(template.columns) == ANSWER_COLUMNS and template["stimulus"].to_list() == key["stimulus"].to_list()
    for stim in key["stimulus"]:
        assert (paths["stimuli"] / f"{stim}.wav").exists()
    again = build_sed_test(manifest, tmp_path / "t2", _load, SedTestConfig(n_per_emotion=2, seed=5))
    assert read_key(again["key"]).equals(key)
    other = build_sed_test(manifest, tmp_path / "t3", _load, SedTestConfig(n_per_emotion=2, seed=6))
    assert not read_key(other["key"]).equals(key)
    with pytest.raises(ValueError, match="needed"):
        build_sed_test(manifest, tmp_path / "t4", _load, SedTestConfig(n_per_emotion=4))


def test_answer_hypothesis() -> None:
    assert answer_hypothesis("Angry", 0.5, 1.0, 2.0) == [(0.0, 0.5, "neutral"), (0.5, 1.0, "angry"),
                                                         (1.0, 2.0, "neutral")]
    assert answer_hypothesis("sad", 0.0, 2.0, 2.0) == [(0.0, 2.0, "sad")]
    assert answer_hypothesis("neutral", 0.3, 0.4, 2.0) == [(0.0, 2.0, "neutral")]


def _answers(key: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for group, listeners in (("en", ["l1", "l2"]), ("zh", ["l3"])):
        for listener in listeners:
            for item in key.to_dicts():
                label = item["emotion"] if rng.random() < 0.7 else str(rng.choice(["angry", "happy", "sad", "neutral"]))
                start = float(rng.uniform(0, item["duration"] / 2))
                end = float(rng.uniform(start + 0.1, item["duration"]))
                rows.append({"listener": listener, "group": group, "stimulus": item["stimulus"], "label": label,
                             "start": f"{start:.3f}", "end": f"{end:.3f}"})
    return pl.DataFrame(rows)


def test_score_against_time_grid_and_table_iv(tmp_path: Path) -> None:
    manifest = _zed_manifest(tmp_path / "wav")
    paths = build_sed_test(manifest, tmp_path / "t", _load, SedTestConfig(n_per_emotion=2, seed=1))
    key = read_key(paths["key"])
    answers = _answers(key)
    sheet = tmp_path / "answers.csv"
    answers.write_csv(sheet)
    scored = score_answers(read_answers(sheet), key)
    assert scored.height == answers.height
    by_stim = {r["stimulus"]: r for r in key.to_dicts()}
    for row in scored.to_dicts():
        assert row["eder"] == pytest.approx(_grid_eder(row["label"], row["start"], row["end"],
                                                       by_stim[row["stimulus"]]), abs=5e-4)
        assert row["missed_s"] + row["false_alarm_s"] + row["confusion_s"] + row["overlap_s"] == pytest.approx(
            row["eder"] * row["duration"], abs=1e-9)
    table = table_iv(listener_rows=scored)
    assert table.columns == ["emotion", "listeners_en_eder", "listeners_zh_eder"]
    for group in ("en", "zh"):
        sub = scored.filter(pl.col("group") == group)
        for emo in ("angry", "happy", "sad"):
            want = sub.filter(pl.col("emotion") == emo)["eder"].mean()
            assert table.filter(pl.col("emotion") == emo)[f"listeners_{group}_eder"][0] == pytest.approx(want)
        assert table.filter(pl.col("emotion") == "average")[f"listeners_{group}_eder"][0] == pytest.approx(sub["eder"].mean())


def test_score_errors_name_the_line(tmp_path: Path) -> None:
    manifest = _zed_manifest(tmp_path / "wav")
    paths = build_sed_test(manifest, tmp_path / "t", _load, SedTestConfig(n_per_emotion=1))
    key = read_key(paths["key"])
    stim = key["stimulus"][0]
    cases = [
        ({"label": "surprise", "start": "0.1", "end": "0.5"}, "line 2.*surprise"),
        ({"label": "angry", "start": "0.5", "end": "0.1"}, "line 2.*start < end"),
        ({"label": "angry", "start": "0.1", "end": "99"}, "stimulus length"),
        ({"label": "angry", "start": "x", "end": "1"}, "seconds"),
    ]
    for fields, pattern in cases:
        sheet = tmp_path / "a.csv"
        pl.DataFrame([{"listener": "l1", "group": "g", "stimulus": stim, **fields}]).write_csv(sheet)
        with pytest.raises(ValueError, match=pattern):
            score_answers(read_answers(sheet), key, source=sheet)
    sheet = tmp_path / "b.csv"
    pl.DataFrame([{"listener": "l1", "group": "g", "stimulus": "nope", "label": "sad", "start": "0", "end": "1"}]
                 ).write_csv(sheet)
    with pytest.raises(ValueError, match="not in the key"):
        score_answers(read_answers(sheet), key)
    # the blank template scores to a clear error, not a crash
    with pytest.raises(ValueError, match="no filled answers"):
        score_answers(read_answers(paths["template"]), key)


@pytest.mark.slow  # importing cli loads every command module (~10 s)
def test_listener_commands(tmp_path: Path) -> None:
    from cli import app

    root = tmp_path / "cache"
    save_manifest(_zed_manifest(tmp_path / "wav"), manifest_path("zed", root))
    runner = CliRunner()
    res = runner.invoke(app, ["probes", "sed", "listeners", "build", "--per-emotion", "2", "--cache", str(root),
                              "--out", str(tmp_path / "test")])
    assert res.exit_code == 0, res.output
    key = read_key(tmp_path / "test" / "key.csv")
    _answers(key).write_csv(tmp_path / "answers.csv")
    res = runner.invoke(app, ["probes", "sed", "listeners", "score", str(tmp_path / "answers.csv"),
                              "--key", str(tmp_path / "test" / "key.csv"), "--out", str(tmp_path / "scores")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "scores" / "timelines.svg").exists()
    assert pl.read_parquet(tmp_path / "scores" / "per_answer.parquet")["config_json"][0]
    res = runner.invoke(app, ["probes", "sed", "listeners", "score", str(tmp_path / "missing.csv"),
                              "--key", str(tmp_path / "test" / "key.csv")])
    assert res.exit_code == 2 and "missing.csv" in res.output


def test_score_with_model_results(tmp_path: Path) -> None:
    manifest = _zed_manifest(tmp_path / "wav")
    paths = build_sed_test(manifest, tmp_path / "t", _load, SedTestConfig(n_per_emotion=2, seed=2))
    key = read_key(paths["key"])
    _answers(key).write_csv(tmp_path / "answers.csv")
    # a model that says "neutral" everywhere: EDER = event length / duration on every utterance
    rows = []
    for item in manifest.to_dicts():
        ev = json.loads(item["events"])[0]
        ref = [(0.0, ev["start"], "neutral"), (ev["start"], ev["end"], item["emotion"]),
               (ev["end"], item["duration"], "neutral")]
        rows.append({"utt_id": item["utt_id"], "emotion": item["emotion"], "duration": item["duration"],
                     "eder": (ev["end"] - ev["start"]) / item["duration"], "model": "allneutral",
                     "hypothesis": json.dumps([(0.0, item["duration"], "neutral")]), "reference": json.dumps(ref)})
    pl.DataFrame(rows).write_parquet(tmp_path / "model.parquet")
    out = score_listeners(tmp_path / "answers.csv", paths["key"], tmp_path / "s", tmp_path / "model.parquet")
    table = pl.read_csv(out["table_iv"])
    assert table.columns[:2] == ["emotion", "allneutral_eder"]
    model = pl.DataFrame(rows).filter(pl.col("utt_id").is_in(key["utt_id"].to_list()))
    assert table["allneutral_eder"][3] == pytest.approx(model["eder"].mean(), abs=1e-4)
    # beside the paper's Table IV (EDER %): the model column against the paper's WavLM
    from probes.paper_values import paper_value

    beside = pl.read_csv(out["table_iv_vs_paper_csv"])
    row = beside.filter((pl.col("emotion") == "average") & (pl.col("system") == "wavlm")).row(0, named=True)
    assert row["eder_pct"] == pytest.approx(100 * table["allneutral_eder"][3], abs=0.01)  # table_iv.csv: 4 decimals
    assert row["paper_eder_pct"] == paper_value("IV", emotion="average", system="wavlm")
    assert row["diff_pct"] == pytest.approx(row["eder_pct"] - row["paper_eder_pct"])
    # simulated answers: marked in the files' provenance, and not compared with the paper
    out = score_listeners(tmp_path / "answers.csv", paths["key"], tmp_path / "sim", tmp_path / "model.parquet",
                          simulated="simulated: test")
    meta = json.loads(pl.read_parquet_metadata(out["per_answer_parquet"])["crossling_sed"])
    assert meta["simulated"] == "simulated: test"
    simulated = pl.read_csv(out["table_iv_vs_paper_csv"])
    assert simulated.height >= 12 and simulated["diff_pct"].null_count() == simulated.height  # nothing compared


def test_consensus_segments_majority_vote() -> None:
    from probes.sed import consensus_segments

    hyps = [[(0.0, 1.0, "sad")], [(0.0, 0.5, "sad"), (0.5, 1.0, "angry")], [(0.0, 0.6, "happy")],
            [(0.6, 1.0, "angry")]]
    # 0-0.5: sad 2 / happy 1; 0.5-0.6: sad, angry, happy 1 each (tie -> angry, first in A H N S);
    # 0.6-1.0: angry 2 / sad 1
    _same_segments(consensus_segments(hyps, 1.0, 0.1), [(0.0, 0.5, "sad"), (0.5, 1.0, "angry")])
    _same_segments(consensus_segments([[(0.2, 0.4, "sad")]], 1.0, 0.1), [(0.2, 0.4, "sad")])


def _same_segments(got, want) -> None:
    """Segments equal element-wise: labels exactly, times to 1e-9 s (pytest.approx takes
    no nested data)."""
    assert len(got) == len(want), (got, want)
    for (g0, g1, g_label), (w0, w1, w_label) in zip(got, want, strict=True):
        assert g_label == w_label, (got, want)
        assert abs(g0 - w0) < 1e-9 and abs(g1 - w1) < 1e-9, (got, want)


def test_key_with_non_numeric_times_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "key.csv"
    pl.DataFrame({c: ["x"] for c in KEY_COLUMNS}).write_csv(path)
    with pytest.raises(ValueError, match=r"key\.csv: event_start, event_end and duration must be seconds"):
        read_key(path)
