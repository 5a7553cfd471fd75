"""The paper's TJ column end to end: a 3-category table corpus without a fold table
(TJD: question, negation ~ angry, expectation ~ happy) through prepare -> build ->
simulated listeners -> ingest -> compare, and Table II's TJ value recomputed by hand."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import polars as pl
import pytest
import soundfile as sf
from typer.testing import CliRunner

from cli import featstore_app, probes_app
from featstore.corpora.testing import write_tone
from featstore.manifest import CANONICAL_EMOTIONS, make_manifest, save_manifest
from featstore.paths import manifest_path, splits_path
from featstore.splits import FoldTable, save_folds
from probes.human import NoiseModel, read_key, simulate_answers

TJD_MAP = "negation=angry,expectation=happy"


def _tjd_table(root, per_category=3):
    """A TJD-like table corpus: three functional categories, two speakers, tones as audio."""
    lines = ["path,label,speaker"]
    for c_i, category in enumerate(("question", "negation", "expectation")):
        for i in range(per_category):
            rel = f"audio/spk{i % 2}/{category}_{i}.wav"
            write_tone(root / rel, 0.2 + 0.01 * i, freq_hz=180.0 + 40 * c_i + 5 * i)
            lines.append(f"{rel},{category},spk{i % 2}")
    (root / "tjd.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "tjd.csv"


def _esd(tmp_path, cache, per_emotion=3):
    """A four-emotion CN corpus with a fold table (every utterance test data of fold 0)."""
    rows = []
    for e_i, emo in enumerate(CANONICAL_EMOTIONS):
        for i in range(per_emotion):
            utt = f"esd_{emo}_{i}"
            path = tmp_path / "esd" / f"{utt}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, 0.2 * np.sin(np.arange(3200 + 50 * i) / (5.0 + e_i)).astype(np.float32), 16000)
            rows.append({"utt_id": utt, "corpus": "esd", "language": "cn", "speaker": f"s{i % 2}",
                         "emotion": emo, "label": emo, "path": str(path), "duration": 0.2, "sample_rate": 16000})
    save_manifest(make_manifest(rows), manifest_path("esd", cache))
    table = pl.DataFrame({"fold": [0] * len(rows), "part": ["test"] * len(rows),
                          "utt_id": [r["utt_id"] for r in rows]})
    save_folds(FoldTable(table, {"scheme": "test", "seed": 0}), splits_path("esd", cache))


def _prepare_tjd(tmp_path, cache):
    table = _tjd_table(tmp_path / "tjd_corpus")
    r = CliRunner().invoke(featstore_app, ["prepare", "table", "--root", str(table), "--name", "tjd",
                                           "--language", "tj", "--label-map", TJD_MAP,
                                           "--cache-root", str(cache)])
    assert r.exit_code == 0, r.output
    assert not splits_path("tjd", cache).exists()  # no fold table: no model is tested on TJD


def _ua_by_hand(lss: pl.DataFrame, key: pl.DataFrame, language: str) -> dict[str, float]:
    """Mean over each group's listeners of the UA (mean over the true categories present of
    the fraction answered right) on ``language``, in percent; from the raw answer rows."""
    truth = {r["stimulus"]: (r["language"], r["emotion"]) for r in key.iter_rows(named=True)}
    hits: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in lss.iter_rows(named=True):
        lang, true = truth[r["stimuli"]]
        if lang == language:
            hits[(r["native_language"], r["listener_id"])][true].append(int(r["stimuli_rating"].strip() == true))
    per_group: dict[str, list[float]] = defaultdict(list)
    for (group, _), by_true in hits.items():
        per_group[group].append(sum(sum(v) / len(v) for v in by_true.values()) / len(by_true))
    return {g: sum(v) / len(v) for g, v in per_group.items()}  # a fraction, as table2_ua.csv


def _predictions(key: pl.DataFrame) -> pl.DataFrame:
    # models ran on the CN stimuli only (as in the paper: no model is tested on TJ)
    cn = key.filter(pl.col("language") == "cn")
    rows = [{"model": model, "setting": setting, "test_corpus": "esd", "fold": 0, "utt_id": r["utt_id"],
             "true": r["emotion"], "pred": r["emotion"] if i % 3 else "neutral"}
            for model, setting in (("w2v2-cn", "mono"), ("w2v2-de", "cross"))
            for i, r in enumerate(cn.iter_rows(named=True))]
    return pl.DataFrame(rows)


@pytest.mark.parametrize("keep_question", [False, True])
def test_tj_column_from_a_three_category_corpus(tmp_path, keep_question):
    cache = tmp_path / "cache"
    _esd(tmp_path, cache)
    _prepare_tjd(tmp_path, cache)
    labels = (*CANONICAL_EMOTIONS, "question") if keep_question else CANONICAL_EMOTIONS
    out = tmp_path / "test"
    runner = CliRunner()
    args = ["human", "build", "--corpora", "esd,tjd", "--per-emotion", "2", "--seed", "1",
            "--cache-root", str(cache), "--out", str(out), "--name", "tj-pilot"]
    if keep_question:
        args += ["--emotions", ",".join(labels)]
    r = runner.invoke(probes_app, args)
    assert r.exit_code == 0, r.output
    assert "all its utterances (no fold table)" in r.output

    # stimuli per available category: 2 of each TJD category kept, none of the others
    key = read_key(out / "tj-pilot.key.csv", labels=labels)
    tj = key.filter(pl.col("language") == "tj")
    tj_categories = ["angry", "happy", "question"] if keep_question else ["angry", "happy"]
    assert sorted(tj["emotion"].to_list()) == sorted(tj_categories * 2)
    assert key.filter(pl.col("language") == "cn").height == 2 * 4
    prov = json.loads((out / "tj-pilot.build.json").read_text())
    assert prov["corpora"]["tjd"] == {"pool": "whole", "categories": tj_categories,
                                      "dropped": {} if keep_question else {"question": 3}}
    assert prov["corpora"]["esd"]["pool"] == "folds"
    assert prov["labels"] == list(labels)

    # simulated listeners: CN listeners fairly good on TJ, DE listeners poor
    noise = NoiseModel(default=0.8, cells={("cn", "tj"): 0.7, ("de", "tj"): 0.35}, labels=labels)
    lss = simulate_answers(key, {"cn": 4, "de": 5}, noise, seed=7, out_dir=out / "web", test_id="tj-pilot")
    results = out / "web" / "results" / "tj-pilot" / "lss.csv"
    ingest_args = ["human", "ingest", str(results), "--key", str(out / "tj-pilot.key.csv"),
                   "--out", str(out / "answers")]
    if keep_question:
        # the question category is an answer of its own: without the label the key is refused
        r = runner.invoke(probes_app, ingest_args)
        assert r.exit_code == 2 and "question" in r.output and "--labels" in r.output
        ingest_args += ["--labels", ",".join(labels)]
    r = runner.invoke(probes_app, ingest_args)
    assert r.exit_code == 0, r.output

    _predictions(key).write_csv(out / "preds.csv")
    r = runner.invoke(probes_app, ["human", "compare", str(out / "answers" / "answers.parquet"),
                                   "--key", str(out / "tj-pilot.key.csv"), "--predictions",
                                   str(out / "preds.csv"), "--out", str(out / "cmp")])
    assert r.exit_code == 0, r.output

    t2 = pl.read_csv(out / "cmp" / "table2_ua.csv")
    assert t2.columns == ["group", "CN_ua", "TJ_ua"]
    for lang in ("tj", "cn"):
        expected = _ua_by_hand(lss, key, lang)
        got = {row["group"]: row[f"{lang.upper()}_ua"] for row in t2.iter_rows(named=True)}
        assert got == pytest.approx(expected, rel=1e-12), lang
    # the model side is empty where no model ran (TJ), filled where one did (CN)
    pairs = pl.read_csv(out / "cmp" / "pairs.csv")
    assert pairs.filter(pl.col("language") == "tj")["model_ua"].is_null().all()
    assert pairs.filter(pl.col("language") == "tj").height == 2
    assert pairs.filter(pl.col("language") == "cn")["model_ua"].is_not_null().all()
    summary = json.loads((out / "cmp" / "compare.json").read_text())
    assert summary["report"]["labels"] == list(labels)
    assert summary["report"]["categories"] == {"cn": list(CANONICAL_EMOTIONS), "tj": tj_categories}
    # only CN and TJ were heard: the paper's cn+de+en pool cannot be formed, and says so
    assert summary["report"]["pooled_languages_skipped"] == [{"pool": "cn+de+en", "missing": ["de", "en"]}]


def test_build_refuses_what_it_cannot_draw(tmp_path):
    cache = tmp_path / "cache"
    _prepare_tjd(tmp_path, cache)
    runner = CliRunner()
    base = ["human", "build", "--corpora", "tjd", "--per-emotion", "2", "--cache-root", str(cache),
            "--out", str(tmp_path / "o")]
    # a corpus without folds that is not named as drawn whole
    r = runner.invoke(probes_app, [*base, "--whole-corpus", ""])
    assert r.exit_code == 2 and "featstore splits" in r.output and "--whole-corpus tjd" in r.output
    # too few utterances in a category: the corpus and the counts are named
    r = runner.invoke(probes_app, [*base[:5], "4", *base[6:]])
    assert r.exit_code == 2 and "tjd" in r.output and "'angry': 3" in r.output
    # none of its categories is a response option
    r = runner.invoke(probes_app, [*base, "--emotions", "neutral,sad"])
    assert r.exit_code == 2 and "none of its categories" in r.output and "--label-map" in r.output
    assert not (tmp_path / "o").exists()
