"""Human-likeness per layer: kappa against scikit-learn, confusion r against SciPy, the
bootstrap intervals, a planted layer that copies the listeners, and the command."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import stats
from sklearn.metrics import cohen_kappa_score, confusion_matrix
from typer.testing import CliRunner

from cli import probes_app
from featstore.io import parquet_metadata
from probes.human import CompareConfig
from probes.human.likeness import (
    LikenessConfig,
    LikenessError,
    human_likeness,
    kappa_from_counts,
    likeness_curves,
    majority_answers,
    save_likeness,
    write_likeness_from_run,
)
from probes.metrics import row_normalise

LABELS = ["angry", "happy", "neutral", "sad"]
MODELS = {"w2v2-cn": "cn", "w2v2-de": "de"}
CORPORA = {"esd": "cn", "pavoque": "de"}
LAYERS = range(5)
PLANTED = 3  # w2v2-cn mono layer 3 answers the CN listeners' majority


def _key(per=6):
    rows, i = [], 0
    for corpus, lang in CORPORA.items():
        for emo in LABELS:
            for _ in range(per):
                i += 1
                rows.append({"stimulus": f"s{i:03d}", "corpus": corpus, "utt_id": f"u{i}", "language": lang,
                             "emotion": emo})
    return pl.DataFrame(rows)


def _answers(key, seed=0, n_per_group=5):
    rng = np.random.default_rng(seed)
    rows = []
    for group in ("cn", "de"):
        for li in range(n_per_group):
            for r in key.iter_rows(named=True):
                acc = 0.8 if r["language"] == group else 0.55
                # listeners mistake sad for neutral more than anything else
                wrong = "neutral" if r["emotion"] == "sad" and rng.random() < 0.7 else LABELS[int(rng.integers(4))]
                ans = r["emotion"] if rng.random() < acc else wrong
                rows.append({"listener": f"{group}{li}", "group": group, "stimulus": r["stimulus"],
                             "corpus": r["corpus"], "utt_id": r["utt_id"], "language": r["language"],
                             "true": r["emotion"], "answer": ans})
    return pl.DataFrame(rows)


def _predictions(key, answers, seed=1, extra_per_corpus=20):
    """Every layer of two models, mono (own corpus) and cross (the other), on the stimuli
    plus utterances nobody heard; w2v2-cn mono layer PLANTED copies the CN majority."""
    rng = np.random.default_rng(seed)
    maj = dict(majority_answers(answers.filter(pl.col("group") == "cn"), LABELS)
               .select("stimulus", "majority").iter_rows())
    utts = {c: [(r["utt_id"], r["emotion"], r["stimulus"]) for r in key.filter(pl.col("corpus") == c).iter_rows(named=True)]
            for c in CORPORA}
    for c in CORPORA:
        utts[c] += [(f"{c}-x{j}", LABELS[j % 4], None) for j in range(extra_per_corpus)]
    rows = []
    for model, lang in MODELS.items():
        own = next(c for c, lg in CORPORA.items() if lg == lang)
        for setting, test in (("mono", own), ("cross", next(c for c in CORPORA if c != own))):
            for layer in LAYERS:
                acc = 0.3 + 0.12 * layer
                for k, (utt, true, stim) in enumerate(utts[test]):
                    folds = [k % 5] if setting == "mono" else [0]
                    for fold in folds:
                        if model == "w2v2-cn" and setting == "mono" and layer == PLANTED and stim:
                            pred = maj[stim]
                        else:
                            pred = true if rng.random() < acc else LABELS[int(rng.integers(4))]
                        rows.append({"model": model, "setting": setting, "train_corpus": own, "test_corpus": test,
                                     "layer": layer, "fold": fold, "utt_id": utt, "true": true, "pred": pred})
    return pl.DataFrame(rows)


def _config():
    return CompareConfig(model_languages=MODELS, group_languages={"cn": "cn", "de": "de"})


@pytest.fixture(scope="module")
def data():
    key = _key()
    answers = _answers(key)
    preds = _predictions(key, answers)
    result = human_likeness(answers, preds, _config(), key, LikenessConfig(n_resamples=400))
    return key, answers, preds, result


def _stimuli_of(answers, group, language):
    return sorted(set(answers.filter((pl.col("group") == group) & (pl.col("language") == language))["stimulus"]))


def test_pairs_groups_with_settings_as_compare_does(data):
    _, _, _, res = data
    t = res.table
    pairs = set(t.select("model", "setting", "listener_group", "languages").unique().rows())
    # native listeners <-> the mono model of their language on their language's stimuli,
    # non-native <-> the cross model of their language on the other language's stimuli
    assert pairs == {("w2v2-cn", "mono", "cn", "cn"), ("w2v2-cn", "cross", "cn", "de"),
                     ("w2v2-de", "mono", "de", "de"), ("w2v2-de", "cross", "de", "cn")}
    assert set(t["layer"].to_list()) == set(LAYERS)
    assert t["n_stimuli"].unique().to_list() == [24] and t["n_listeners"].unique().to_list() == [5]
    assert not t["simulated"].any()
    assert {"model_fingerprint", "manifest_fingerprint", "fold_scheme", "seed", "config_json",
            "bootstrap_seed", "n_resamples"} <= set(t.columns)


def test_kappa_equals_sklearn_and_confusion_r_equals_scipy(data):
    key, answers, preds, res = data
    for row in res.table.iter_rows(named=True):
        group, lang = row["listener_group"], row["languages"]
        stims = _stimuli_of(answers, group, lang)
        maj = majority_answers(answers.filter(pl.col("group") == group), LABELS).filter(
            pl.col("stimulus").is_in(stims)).sort("stimulus")
        k = key.filter(pl.col("stimulus").is_in(stims)).sort("stimulus")
        p = preds.filter((pl.col("model") == row["model"]) & (pl.col("setting") == row["setting"])
                         & (pl.col("layer") == row["layer"]) & pl.col("utt_id").is_in(k["utt_id"].to_list()))
        pred = dict(p.select("utt_id", "pred").iter_rows())
        model = [pred[u] for u in k["utt_id"].to_list()]
        ref = cohen_kappa_score(maj["majority"].to_list(), model, labels=LABELS)
        assert row["kappa"] == pytest.approx(ref, abs=1e-12)
        heard = answers.filter((pl.col("group") == group) & pl.col("stimulus").is_in(stims))
        human = row_normalise(confusion_matrix(heard["true"].to_list(), heard["answer"].to_list(), labels=LABELS))
        mine = row_normalise(confusion_matrix(k["emotion"].to_list(), model, labels=LABELS))
        assert row["confusion_r"] == pytest.approx(stats.pearsonr(human.ravel(), mine.ravel())[0], abs=1e-12)
        assert row["kappa_lo"] <= row["kappa"] <= row["kappa_hi"]
        assert row["confusion_r_lo"] <= row["confusion_r"] <= row["confusion_r_hi"]


def test_planted_layer_copies_the_listeners(data):
    _, _, _, res = data
    curve = res.table.filter((pl.col("model") == "w2v2-cn") & (pl.col("setting") == "mono")).sort("layer")
    kappa = dict(zip(curve["layer"], curve["kappa"], strict=True))
    assert kappa[PLANTED] == pytest.approx(1.0)
    assert max(v for k, v in kappa.items() if k != PLANTED) < 0.8
    assert curve["kappa"].arg_max() == PLANTED
    r = dict(zip(curve["layer"], curve["confusion_r"], strict=True))
    assert r[PLANTED] == max(r.values())
    # the interval of the copy excludes the other layers' kappa
    lo = curve.filter(pl.col("layer") == PLANTED)["kappa_lo"][0]
    assert all(v < lo for k, v in kappa.items() if k != PLANTED)
    # the accuracy curve: UA over all pooled test predictions (stimuli and unheard), rising with the layer
    ua = curve.filter(pl.col("layer") != PLANTED)["ua"].to_list()
    assert ua == sorted(ua) and 0 < ua[0] < ua[-1] <= 1


def test_intervals_shrink_with_more_stimuli_and_are_seeded():
    rng = np.random.default_rng(3)

    def widths(n, seed=0):
        true = rng.integers(0, 4, n)
        counts = np.stack([np.bincount(np.where(rng.random(6) < 0.7, t, rng.integers(0, 4, 6)), minlength=4)
                           for t in true])
        majority = counts.argmax(1)
        model = np.where(rng.random((3, n)) < 0.6, true, rng.integers(0, 4, (3, n)))
        out = likeness_curves(true, model, counts, majority, 4, LikenessConfig(n_resamples=500, seed=seed))
        for name in ("kappa", "confusion_r"):
            assert np.all(out[f"{name}_lo"] <= out[name]) and np.all(out[name] <= out[f"{name}_hi"])
        return out["kappa_hi"] - out["kappa_lo"], out["confusion_r_hi"] - out["confusion_r_lo"], out

    small_k, small_r, _ = widths(40)
    big_k, big_r, _ = widths(1000)
    assert np.all(big_k < small_k / 2) and np.all(big_r < small_r)
    true = np.arange(40) % 4
    counts = np.eye(4, dtype=int)[true] * 5
    model = np.stack([true, (true + 1) % 4])
    a = likeness_curves(true, model, counts, true, 4, LikenessConfig(n_resamples=200, seed=7))
    b = likeness_curves(true, model, counts, true, 4, LikenessConfig(n_resamples=200, seed=7))
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    assert a["kappa"][0] == 1.0 and a["kappa_lo"][0] == 1.0 and a["kappa"][1] < 0
    # random answers: another seed, other resamples (same point estimates)
    model = np.where(np.arange(40) % 3 == 0, (true + 1) % 4, true)[None]
    c7 = likeness_curves(true, model, counts, true, 4, LikenessConfig(n_resamples=200, seed=7))
    c8 = likeness_curves(true, model, counts, true, 4, LikenessConfig(n_resamples=200, seed=8))
    assert c7["kappa"] == c8["kappa"] and (c7["kappa_lo"] != c8["kappa_lo"] or c7["kappa_hi"] != c8["kappa_hi"])


def test_majority_is_the_most_frequent_answer(data):
    from collections import Counter

    _, answers, _, _ = data
    maj = majority_answers(answers, LABELS)
    assert maj.height == answers.select("group", "stimulus").n_unique()
    for row in maj.iter_rows(named=True):
        given = answers.filter((pl.col("group") == row["group"]) & (pl.col("stimulus") == row["stimulus"]))
        counts = Counter(given["answer"].to_list())
        top = max(counts.values())
        assert counts[row["majority"]] == top
        assert row["tied"] == (sum(v == top for v in counts.values()) > 1)


def test_majority_tie_rule():
    # stimulus s1: two say happy, two say sad; the group answers sad more often overall
    rows = [("l1", "s1", "happy"), ("l2", "s1", "happy"), ("l3", "s1", "sad"), ("l4", "s1", "sad"),
            ("l1", "s2", "sad"), ("l2", "s2", "sad"), ("l3", "s2", "angry"), ("l4", "s2", "sad"),
            # s3: angry vs neutral, both given twice overall -> the first in label order
            ("l1", "s3", "angry"), ("l2", "s3", "neutral")]
    ans = pl.DataFrame([{"listener": lis, "group": "cn", "stimulus": s, "language": "cn", "answer": a}
                        for lis, s, a in rows])
    ans = pl.concat([ans, pl.DataFrame([{"listener": "l5", "group": "cn", "stimulus": "s4", "language": "cn",
                                         "answer": x} for x in ("neutral",)])])
    out = {r["stimulus"]: r for r in majority_answers(ans, LABELS).iter_rows(named=True)}
    assert out["s1"]["majority"] == "sad" and out["s1"]["tied"]
    assert out["s2"]["majority"] == "sad" and not out["s2"]["tied"]
    assert out["s3"]["majority"] == "angry" and out["s3"]["tied"]
    assert out["s1"]["n_happy"] == 2 and out["s1"]["n_answers"] == 4


def test_kappa_edge_cases_match_sklearn():
    a, b = ["sad"] * 6, ["sad"] * 6
    with np.errstate(all="ignore"):
        ref = cohen_kappa_score(a, b, labels=LABELS)
    assert np.isnan(kappa_from_counts(confusion_matrix(a, b, labels=LABELS))) and np.isnan(ref)
    a, b = ["sad", "happy", "sad", "angry"], ["happy", "happy", "sad", "neutral"]
    assert kappa_from_counts(confusion_matrix(a, b, labels=LABELS)) == pytest.approx(
        cohen_kappa_score(a, b, labels=LABELS))


def test_errors_and_simulated_mark(tmp_path, data):
    key, answers, preds, res = data
    with pytest.raises(LikenessError, match="layer"):
        human_likeness(answers, preds.drop("layer"), _config(), key)
    with pytest.raises(LikenessError, match="no model variant pairs"):
        human_likeness(answers, preds.with_columns(pl.lit("w2v2-xx").alias("model")), _config(), key)
    note = "simulated: drawn from a noise model " + "with a long description of how " * 6
    sim = human_likeness(answers, preds.filter(pl.col("model") == "w2v2-cn"), _config(), key,
                         LikenessConfig(n_resamples=50), simulated=note)
    assert sim.table["simulated"].all()
    paths = save_likeness(sim, tmp_path / "likeness", {"answers": "a.parquet"}, simulated=note)
    assert parquet_metadata(paths["likeness"])["simulated"] == note
    assert json.loads(paths["likeness_json"].read_text())["provenance"]["simulated"] == note
    assert paths["likeness_figure"].exists() and paths["likeness_figure"].with_suffix(".svg").exists()
    from study.report_check import png_figure_info

    info = png_figure_info(paths["likeness_figure"])  # print size in the report's column, readable text
    assert info["width_px"] / info["dpi"] <= 11.1 and info["min_font_pt"] >= 9
    assert pl.read_csv(paths["likeness_csv"]).height == sim.table.height


@pytest.mark.slow
def test_compare_command_writes_likeness(tmp_path, data):
    key, answers, preds, _ = data
    answers.write_parquet(tmp_path / "answers.parquet")
    run = tmp_path / "probes"
    run.mkdir()
    preds.write_parquet(run / "predictions.parquet")
    results = preds.select("model", "setting", "train_corpus").unique().with_columns(
        pl.lit("fp-model").alias("model_fingerprint"), pl.lit("fp-manifest").alias("manifest_fingerprint"),
        pl.lit("stratified").alias("fold_scheme"), pl.lit(11).alias("seed"), pl.lit("{}").alias("config_json"))
    results.write_parquet(run / "results.parquet")
    out = tmp_path / "cmp"
    r = CliRunner().invoke(probes_app, ["human", "compare", str(tmp_path / "answers.parquet"), "--predictions",
                                        str(run / "predictions.parquet"), "--model-language", "w2v2-cn=cn",
                                        "--model-language", "w2v2-de=de", "--where", "layer=2",
                                        "--out", str(out)])
    assert r.exit_code == 0, r.output
    table = pl.read_parquet(out / "likeness" / "likeness.parquet")
    assert table.height == 4 * len(LAYERS)
    assert table["model_fingerprint"].unique().to_list() == ["fp-model"] and table["seed"].unique().to_list() == [11]
    assert (out / "likeness" / "human_likeness.png").exists()
    assert "human-likeness" in r.output


def test_finetune_rows_left_out_and_unpaired_models_leave_a_note(tmp_path, data):
    key, answers, preds, res = data
    ft = preds.filter(pl.col("layer") == 2).with_columns(pl.lit("lora").alias("strategy"),
                                                         pl.lit(7).cast(pl.Int64).alias("layer"),
                                                         pl.lit("angry").alias("pred"))
    mixed = pl.concat([preds, ft], how="diagonal_relaxed")
    again = human_likeness(answers, mixed.lazy(), _config(), key, LikenessConfig(n_resamples=400))
    assert_frame_equal(again.table, res.table)
    run = tmp_path / "probes"
    run.mkdir()
    preds.with_columns(pl.lit("w2v2-xx").alias("model")).write_parquet(run / "predictions.parquet")
    paths = write_likeness_from_run(answers, run, tmp_path / "likeness", _config(), key, simulated="simulated: x")
    assert list(paths) == ["likeness_json"]
    note = json.loads(paths["likeness_json"].read_text())
    assert "no model variant pairs" in note["not_written"] and note["provenance"]["simulated"] == "simulated: x"
    assert not (tmp_path / "likeness" / "likeness.parquet").exists()
