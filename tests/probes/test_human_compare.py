"""`probes human compare`: every number against scikit-learn / SciPy / brute force, and
the simulated round trip through the real webMUSHRA ingest path."""

from __future__ import annotations

import hashlib
import json
import math
from itertools import combinations

import numpy as np
import polars as pl
import pytest
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support
from typer.testing import CliRunner

from cli import probes_app
from probes.human import CompareConfig, NoiseModel, compare, simulate_answers
from probes.human.compare import match_predictions, welch_tests

LABELS = ["angry", "happy", "neutral", "sad"]


def _key(per=3):
    rows, i = [], 0
    for corpus, lang in (("esd", "cn"), ("pavoque", "de"), ("iemocap", "en")):
        for emo in LABELS:
            for _ in range(per):
                i += 1
                rows.append({"stimulus": f"s{i:03d}", "corpus": corpus, "utt_id": f"u{i}",
                             "language": lang, "emotion": emo})
    return pl.DataFrame(rows)


def _answers(key, seed=0, n_per_group=5, skip=True):
    rng = np.random.default_rng(seed)
    rows = []
    for group in ("cn", "de"):
        for li in range(n_per_group):
            acc = rng.uniform(0.3, 0.95)
            for r in key.iter_rows(named=True):
                if skip and rng.random() < 0.08:  # a few unanswered stimuli: unbalanced
                    continue
                ans = r["emotion"] if rng.random() < acc else LABELS[int(rng.integers(4))]
                rows.append({"listener": f"{group}{li}", "group": group, "stimulus": r["stimulus"],
                             "corpus": r["corpus"], "utt_id": r["utt_id"], "language": r["language"],
                             "true": r["emotion"], "answer": ans})
    return pl.DataFrame(rows)


def _sk_metrics(part):
    y, p = part["true"].to_list(), part["answer"].to_list()
    prec, rec, f1, _ = precision_recall_fscore_support(y, p, labels=LABELS, zero_division=0)
    out = {"ua": balanced_accuracy_score(y, p)}
    for i, c in enumerate(LABELS):
        out |= {f"precision_{c}": prec[i], f"recall_{c}": rec[i], f"f1_{c}": f1[i]}
    return out


def test_per_listener_tables_and_confusions_match_sklearn():
    key = _key()
    ans = _answers(key)
    res = compare(ans, None, CompareConfig(correction="none"), key=key)
    assert res.per_listener.height == 10 * 3
    for row in res.per_listener.iter_rows(named=True):
        part = ans.filter((pl.col("listener") == row["listener"]) & (pl.col("language") == row["language"]))
        ref = _sk_metrics(part)
        for name, value in ref.items():
            assert row[name] == pytest.approx(value, abs=1e-12), (row["listener"], name)
        assert row["n"] == part.height
    # Table II: mean per-listener UA per group x language, a fraction (as every `ua` in files)
    t2 = {r["group"]: r for r in res.table2.iter_rows(named=True)}
    assert res.table2.columns == ["group", "CN_ua", "DE_ua", "EN_ua"]
    for group in ("cn", "de"):
        for lang in ("cn", "de", "en"):
            uas = [balanced_accuracy_score(p["true"].to_list(), p["answer"].to_list())
                   for (_,), p in ans.filter((pl.col("group") == group) & (pl.col("language") == lang))
                   .group_by("listener")]
            assert t2[group][f"{lang.upper()}_ua"] == pytest.approx(np.mean(uas))
    # Table III: pooled confusion, rows normalised, counted by hand
    for (group, lang), part in ans.group_by("group", "language"):
        counts = np.zeros((4, 4))
        for t, a in zip(part["true"].to_list(), part["answer"].to_list(), strict=True):
            counts[LABELS.index(t), LABELS.index(a)] += 1
        got = res.confusions.filter((pl.col("group") == group) & (pl.col("language") == lang)).sort(
            pl.col("true").replace_strict({c: i for i, c in enumerate(LABELS)}))
        assert np.allclose(got.select(LABELS).to_numpy(), counts / counts.sum(axis=1, keepdims=True))
        assert np.allclose(got.select(LABELS).to_numpy().sum(axis=1), 1.0)


def _holm(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    for k, i in enumerate(order):
        out[i] = min(1.0, max((m - j) * p[order[j]] for j in range(k + 1)))
    return out


def test_welch_table_matches_scipy_on_independent_metrics():
    key = _key()
    ans = _answers(key, seed=3, n_per_group=6)
    cfg = CompareConfig(correction="holm", metrics=("ua", "recall_happy", "precision_neutral"))
    res = compare(ans, None, cfg, key=key)
    tests = res.ttests
    # metrics recomputed with sklearn, per listener and language
    per = {}
    for (listener, group, lang), part in ans.group_by("listener", "group", "language"):
        per[(listener, group, lang)] = _sk_metrics(part)
    # the paper's "across CN, DE and EN data": each listener's answers of the three pooled
    for (listener, group), part in ans.group_by("listener", "group"):
        per[(listener, group, "cn+de+en")] = _sk_metrics(part)

    def vals(group, lang, metric):
        return [m[metric] for (_, g, lg), m in sorted(per.items()) if g == group and lg == lang]

    expected = []
    for metric in cfg.metrics:
        for lang in ("cn", "de", "en"):
            expected.append(("between_groups", metric, "cn", "de", lang, lang))
        expected.append(("between_groups", metric, "cn", "de", "cn+de+en", "cn+de+en"))
        for group in ("cn", "de"):
            for la, lb in combinations(("cn", "de", "en"), 2):
                expected.append(("between_languages", metric, group, group, la, lb))
    got = list(tests.select("comparison", "metric", "group_a", "group_b", "language_a", "language_b").iter_rows())
    assert sorted(got) == sorted(expected)
    raw = []
    for r in tests.iter_rows(named=True):
        a, b = vals(r["group_a"], r["language_a"], r["metric"]), vals(r["group_b"], r["language_b"], r["metric"])
        ref = stats.ttest_ind(a, b, equal_var=False)
        va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
        assert r["t"] == pytest.approx(ref.statistic, rel=1e-9)
        assert r["p"] == pytest.approx(ref.pvalue, rel=1e-9)
        assert r["df"] == pytest.approx(df, rel=1e-9)
        assert (r["n_a"], r["n_b"]) == (len(a), len(b))
        assert r["df_student"] == len(a) + len(b) - 2
        raw.append(r["p"])
    assert np.allclose(tests["p_adj"].to_numpy(), _holm(raw))
    assert tests["significant"].to_list() == [p < 0.05 for p in _holm(raw)]
    assert set(tests["correction"].to_list()) == {"holm"}
    # the pooled rows are per listener too (one row each, language cn+de+en)
    assert res.per_listener_pooled.height == 12
    assert set(res.per_listener_pooled["language"].to_list()) == {"cn+de+en"}
    # without all three languages there is no pooled test, and the report says why
    two = compare(ans.filter(pl.col("language") != "en"), None, cfg)
    assert not (two.ttests["language_a"].str.contains(r"\+")).any()
    assert two.report["pooled_languages_skipped"] == [{"pool": "cn+de+en", "missing": ["en"]}]


def _predictions(key, rng):
    rows = []
    for model, mlang in (("w2v2-cn", "cn"), ("w2v2-de", "de"), ("mystery", None)):
        for r in key.iter_rows(named=True):
            setting = ("mono" if r["language"] == mlang else "trans" if r["language"] == "en" else "cross")
            for layer in (3, 7):
                pred = r["emotion"] if rng.random() < (0.9 if layer == 3 else 0.5) else LABELS[int(rng.integers(4))]
                rows.append({"model": model, "setting": setting, "train_corpus": "x", "test_corpus": r["corpus"],
                             "layer": layer, "fold": 0, "utt_id": r["utt_id"], "true": r["emotion"], "pred": pred})
        # predictions for utterances nobody heard, and a same-named utterance of another corpus
        rows.append({"model": model, "setting": "mono", "train_corpus": "x", "test_corpus": "esd", "layer": 3,
                     "fold": 0, "utt_id": "unheard", "true": "sad", "pred": "sad"})
        rows.append({"model": model, "setting": "cross", "train_corpus": "x", "test_corpus": "other", "layer": 3,
                     "fold": 0, "utt_id": "u1", "true": "angry", "pred": "sad"})
    return pl.DataFrame(rows)


def test_models_on_the_same_stimuli_paired_by_setting():
    key = _key()
    ans = _answers(key, seed=5)
    preds = _predictions(key, np.random.default_rng(1))
    cfg = CompareConfig(prediction_filters={"layer": "3"})
    matched, report = match_predictions(preds, key, cfg)
    assert set(matched["stimulus"].to_list()) == set(key["stimulus"].to_list())
    assert matched.height == 3 * key.height  # exactly the heard stimuli, once per model
    assert report["unpaired_models"] == ["mystery"]
    res = compare(ans, preds, cfg, key=key)
    # model metrics against sklearn on the filtered, matched predictions
    sel = preds.filter((pl.col("layer") == 3) & pl.col("utt_id").is_in(key["utt_id"].to_list())
                       & (pl.col("test_corpus") != "other"))
    for r in res.model_metrics.iter_rows(named=True):
        part = sel.filter((pl.col("model") == r["model"]) & (pl.col("setting") == r["setting"])).join(
            key.select("utt_id", "language"), on="utt_id").filter(pl.col("language") == r["language"])
        y, p = part["true"].to_list(), part["pred"].to_list()
        assert r["ua"] == pytest.approx(balanced_accuracy_score(y, p))
        assert json.loads(r["confusion"]) == confusion_matrix(y, p, labels=LABELS).tolist()
    pairs = {(r["group"], r["language"]): r for r in res.pairs.iter_rows(named=True)}
    assert {k: (v["human_setting"], v["model"], v["model_setting"]) for k, v in pairs.items()} == {
        ("cn", "cn"): ("mono", "w2v2-cn", "mono"), ("cn", "de"): ("cross", "w2v2-cn", "cross"),
        ("cn", "en"): ("L2", "w2v2-cn", "trans"), ("de", "de"): ("mono", "w2v2-de", "mono"),
        ("de", "cn"): ("cross", "w2v2-de", "cross"), ("de", "en"): ("L2", "w2v2-de", "trans"),
    }
    # Table III: the model panel beside the human panel is the model's row-normalised confusion
    t3 = res.table3
    panel = t3.filter((pl.col("who") == "model") & (pl.col("group") == "de") & (pl.col("language") == "cn"))
    part = sel.filter((pl.col("model") == "w2v2-de") & (pl.col("setting") == "cross")).join(
        key.select("utt_id", "language"), on="utt_id").filter(pl.col("language") == "cn")
    cm = confusion_matrix(part["true"].to_list(), part["pred"].to_list(), labels=LABELS).astype(float)
    assert np.allclose(panel.select(LABELS).to_numpy(), cm / cm.sum(axis=1, keepdims=True))
    assert panel["panel"][0].startswith("Model: w2v2-de cross (on CN)")
    human = t3.filter((pl.col("who") == "human") & (pl.col("group") == "de") & (pl.col("language") == "cn"))
    assert human["panel"][0] == "Human: DE (cross on CN)" and human["true"].to_list() == LABELS
    heard = ans.filter((pl.col("group") == "de") & (pl.col("language") == "cn"))
    hcm = confusion_matrix(heard["true"].to_list(), heard["answer"].to_list(), labels=LABELS).astype(float)
    assert np.allclose(human.select(LABELS).to_numpy(), hcm / hcm.sum(axis=1, keepdims=True))
    # without the layer filter each layer is its own variant
    res2 = compare(ans, preds, CompareConfig(), key=key)
    assert res2.pairs.filter((pl.col("group") == "cn") & (pl.col("language") == "cn")).height == 2


def test_l2_and_group_language_options():
    cfg = CompareConfig(group_languages={"mandarin": "cn"}, l2_languages={"*": ("en",), "de": ("en", "cn")})
    assert cfg.human_setting("mandarin", "cn") == "mono"
    assert cfg.human_setting("mandarin", "en") == "L2"
    assert cfg.human_setting("mandarin", "tj") == "cross"
    assert cfg.human_setting("de", "cn") == "L2"
    with pytest.raises(ValueError, match="unknown metric"):
        CompareConfig(metrics=("recall_bored",))
    with pytest.raises(ValueError, match="correction"):
        CompareConfig(correction="sidak")


@pytest.mark.slow
def test_simulated_round_trip_through_webmushra_files(tmp_path):
    key = _key(per=3)
    key_path = tmp_path / "ser-test.key.csv"
    key.write_csv(key_path)
    happy_to_neutral = [[1, 0, 0, 0], [0, 0.2, 0.8, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    noise = NoiseModel(default=0.6, cells={("cn", "cn"): 1.0, ("cn", "de"): happy_to_neutral})
    lss = simulate_answers(key, {"cn": 6, "de": 6}, noise, seed=4, out_dir=tmp_path / "web", pad_ratings=True)
    path = tmp_path / "web" / "results" / "ser-test" / "lss.csv"
    header = path.read_text().splitlines()[0].split(",")
    assert header[0] == "session_test_id"
    assert header[-4:] == ["trial_id", "stimuli_rating", "stimuli", "rating_time"]
    assert lss.height == 12 * key.height
    assert lss["stimuli_rating"].str.starts_with(" ").all()
    # a second round appends without a second header, as write.php does
    simulate_answers(key, {"de": ["late"]}, noise, seed=5, out_dir=tmp_path / "web")
    assert path.read_text().count("session_test_id") == 1

    runner = CliRunner()
    r = runner.invoke(probes_app, ["human", "ingest", str(path), "--key", str(key_path),
                                   "--out", str(tmp_path / "ans")])
    assert r.exit_code == 0, r.output
    answers = pl.read_parquet(tmp_path / "ans" / "answers.parquet")
    assert answers.height == 13 * key.height
    # the noise model shows through: perfect CN-on-CN, happy heard as neutral on DE
    cn_cn = answers.filter((pl.col("group") == "cn") & (pl.col("language") == "cn"))
    assert (cn_cn["answer"] == cn_cn["true"]).all()
    cn_de_happy = answers.filter((pl.col("group") == "cn") & (pl.col("language") == "de")
                                 & (pl.col("true") == "happy"))
    assert set(cn_de_happy["answer"].to_list()) <= {"happy", "neutral"}

    preds = _predictions(key, np.random.default_rng(2)).filter(pl.col("layer") == 3)
    preds.write_parquet(tmp_path / "preds.parquet")
    out = tmp_path / "cmp"
    r = runner.invoke(probes_app, ["human", "compare", str(tmp_path / "ans" / "answers.parquet"),
                                   "--predictions", str(tmp_path / "preds.parquet"), "--key", str(key_path),
                                   "--out", str(out), "--correction", "fdr_bh",
                                   "--metric", "ua", "--metric", "recall_happy"])
    assert r.exit_code == 0, r.output
    t2 = pl.read_csv(out / "table2_ua.csv")
    assert t2.filter(pl.col("group") == "cn")["CN_ua"][0] == pytest.approx(1.0)
    # Table II beside the paper's, as CSV and Markdown: ours in %, the paper's value, the difference
    from probes.paper_values import paper_value

    beside = pl.read_csv(out / "table2_vs_paper.csv").filter((pl.col("group") == "cn") & (pl.col("language") == "cn"))
    assert beside["ua_pct"][0] == pytest.approx(100.0)
    assert beside["paper_ua_pct"][0] == paper_value("II", group="cn", language="cn")
    assert beside["diff_pct"][0] == pytest.approx(100.0 - paper_value("II", group="cn", language="cn"))
    assert "| group | language | ua_pct | paper_ua_pct | diff_pct |" in (out / "table2_vs_paper.md").read_text()
    tests = pl.read_csv(out / "ttests.csv")
    assert set(tests["metric"].to_list()) == {"ua", "recall_happy"}
    assert set(tests["correction"].to_list()) == {"fdr_bh"}
    for name in ("confusion_grid", "recall_bars", "ua_by_group"):
        for ext in ("png", "svg"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 1000
    summary = json.loads((out / "compare.json").read_text())
    answers_hash = hashlib.sha256((tmp_path / "ans" / "answers.parquet").read_bytes()).hexdigest()
    assert summary["provenance"]["answers"]["sha256"] == answers_hash
    # the ingest provenance (key hash) travels inside the answers parquet
    key_hash = hashlib.sha256(key_path.read_bytes()).hexdigest()
    assert summary["provenance"]["answers"]["metadata"]["key"]["sha256"] == key_hash
    assert summary["provenance"]["predictions"][0]["sha256"] == hashlib.sha256(
        (tmp_path / "preds.parquet").read_bytes()).hexdigest()
    # the 'late' listener answered after the first round: still one group member more
    per = pl.read_csv(out / "per_listener.csv")
    assert per.filter(pl.col("group") == "de")["listener"].n_unique() == 7


def test_compare_command_errors(tmp_path):
    r = CliRunner().invoke(probes_app, ["human", "compare", str(tmp_path / "none.parquet")])
    assert r.exit_code == 2 and "none.parquet" in r.output
    key = _key(1)
    ans = _answers(key, n_per_group=2, skip=False)
    ans.write_parquet(tmp_path / "a.parquet")
    pl.DataFrame({"utt_id": ["u1"]}).write_parquet(tmp_path / "p.parquet")
    r = CliRunner().invoke(probes_app, ["human", "compare", str(tmp_path / "a.parquet"),
                                        "--predictions", str(tmp_path / "p.parquet")])
    assert r.exit_code == 2 and "lack column" in r.output
    # one listener per group: no test is possible, the rows say so with nan, never significant
    per = compare(ans, None, key=key).per_listener
    one = per.filter(pl.col("listener").is_in(["cn0", "de0"]))
    tests = welch_tests(one, CompareConfig(metrics=("ua",)))
    assert tests.height == 3 + 2 * 3
    assert all(math.isnan(t) for t in tests["t"].to_list())
    assert all(math.isnan(p) for p in tests["p_adj"].to_list()) and not tests["significant"].any()


def test_stimulus_predicted_by_several_folds():
    key = _key(1).head(2)  # s001 angry (u1), s002 happy (u2)
    base = {"model": "w2v2-cn", "setting": "mono", "test_corpus": "esd"}
    rows = [
        {**base, "fold": 1, "utt_id": "u1", "pred": "happy", "prob_angry": 0.1, "prob_happy": 0.6,
         "prob_neutral": 0.3, "prob_sad": 0.0},
        {**base, "fold": 0, "utt_id": "u1", "pred": "angry", "prob_angry": 0.5, "prob_happy": 0.4,
         "prob_neutral": 0.1, "prob_sad": 0.0},
        {**base, "fold": 2, "utt_id": "u2", "pred": "sad", "prob_angry": 0.0, "prob_happy": 0.4,
         "prob_neutral": 0.0, "prob_sad": 0.6},
    ]
    preds = pl.DataFrame(rows)
    matched, report = match_predictions(preds, key)
    # mean probabilities of u1 over folds 0 and 1: (0.3, 0.5, 0.2, 0) -> happy
    assert dict(matched.select("utt_id", "pred").iter_rows()) == {"u1": "happy", "u2": "sad"}
    assert report["duplicates"] == 1 and "mean" in report["duplicate_rule"]
    matched, report = match_predictions(preds.drop("prob_sad"), key)
    assert dict(matched.select("utt_id", "pred").iter_rows()) == {"u1": "angry", "u2": "sad"}
    assert "lowest fold" in report["duplicate_rule"]
    matched, _ = match_predictions(preds, key, CompareConfig(prediction_filters={"fold": "1"}))
    assert matched["utt_id"].to_list() == ["u1"] and matched["pred"].to_list() == ["happy"]


def test_noise_model_cells_and_empirical_distribution():
    m = [[0.7, 0.1, 0.1, 0.1], [0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.25, 0.25]]
    noise = NoiseModel(default=0.4, cells={("de", "*"): m, ("*", "en"): 0.9})
    assert np.allclose(noise.matrix("de", "cn"), m)
    assert np.allclose(noise.matrix("cn", "en"), 0.9 * np.eye(4) + (0.1 / 3) * (1 - np.eye(4)))
    assert np.allclose(noise.matrix("cn", "cn").sum(axis=1), 1.0) and noise.matrix("cn", "cn")[0, 0] == 0.4
    with pytest.raises(ValueError, match="rows summing to 1"):
        NoiseModel(cells={("a", "b"): [[1, 0], [0, 1]]})
    with pytest.raises(ValueError, match="accuracy"):
        NoiseModel(default=1.5)
    key = _key(1).filter(pl.col("language") == "cn")
    lss = simulate_answers(key, {"de": 300}, noise, seed=9)
    truth = dict(zip(key["stimulus"].to_list(), key["emotion"].to_list(), strict=True))
    for i, emo in enumerate(LABELS):
        answers = lss.filter(pl.col("stimuli").replace_strict(truth) == emo)["stimuli_rating"].to_list()
        freq = [answers.count(lab) / len(answers) for lab in LABELS]
        assert np.allclose(freq, m[i], atol=0.09), (emo, freq)


def test_listeners_without_group_are_reported_not_tabled(tmp_path):
    key = _key(1)
    ans = _answers(key, n_per_group=1, skip=False).with_columns(
        pl.when(pl.col("group") == "de").then(None).otherwise(pl.col("group")).alias("group"))
    res = compare(ans, None, key=key)
    assert res.report["listeners_without_group"] == ["de0"]
    assert res.table2["group"].to_list() == ["cn"]
    assert res.per_listener.filter(pl.col("listener") == "de0").height == 3
    alone = compare(ans.filter(pl.col("group").is_null()), None, key=key)
    assert alone.table2.is_empty() and alone.table3.is_empty() and alone.ttests.is_empty()


def test_paper_noise_model_reproduces_table_ii_expectations():
    from probes.human import paper_noise_model

    noise = paper_noise_model()
    # Table II of the paper (UA %); the expected UA of a matrix is its mean diagonal
    table2 = {("cn", "cn"): 79.5, ("cn", "de"): 73.3, ("cn", "en"): 63.5, ("cn", "tj"): 67.5,
              ("de", "cn"): 82.6, ("de", "de"): 91.7, ("de", "en"): 73.6, ("de", "tj"): 29.2}
    for (group, lang), ua in table2.items():
        m = noise.matrix(group, lang)
        assert np.allclose(m.sum(axis=1), 1.0)
        assert 100 * np.mean(np.diag(m)) == pytest.approx(ua, abs=1.5), (group, lang)


def test_unreadable_answers_and_predictions_are_named(tmp_path):
    (tmp_path / "a.parquet").write_text("not parquet")
    r = CliRunner().invoke(probes_app, ["human", "compare", str(tmp_path / "a.parquet")])
    assert r.exit_code == 2 and "a.parquet: cannot read the answers parquet" in " ".join(r.output.split())
    _answers(_key(1), n_per_group=2, skip=False).write_parquet(tmp_path / "ok.parquet")
    (tmp_path / "p.parquet").write_text("not parquet")
    r = CliRunner().invoke(probes_app, ["human", "compare", str(tmp_path / "ok.parquet"),
                                        "--predictions", str(tmp_path / "p.parquet")])
    assert r.exit_code == 2 and "p.parquet: cannot read the predictions table" in " ".join(r.output.split())


def test_pool_option_chooses_the_pooled_languages(tmp_path):
    key = _key(2)
    ans = _answers(key, seed=8, n_per_group=3, skip=False)
    ans.write_parquet(tmp_path / "a.parquet")
    runner = CliRunner()
    langs = {}
    for name, extra in (("default", []), ("none", ["--pool", "none"]), ("two", ["--pool", "cn+de"])):
        r = runner.invoke(probes_app, ["human", "compare", str(tmp_path / "a.parquet"), "--metric", "ua",
                                       "--out", str(tmp_path / name), *extra])
        assert r.exit_code == 0, r.output
        tests = pl.read_csv(tmp_path / name / "ttests.csv")
        langs[name] = sorted(x for x in set(tests["language_a"].to_list()) if "+" in x)
        assert {"p", "p_adj", "correction", "df", "df_student"} <= set(tests.columns)
    assert langs == {"default": ["cn+de+en"], "none": [], "two": ["cn+de"]}
    pooled = pl.read_csv(tmp_path / "two" / "per_listener_pooled.csv")
    # a listener's pooled UA comes from its CN and DE answers together
    cn0 = ans.filter((pl.col("listener") == "cn0") & pl.col("language").is_in(["cn", "de"]))
    assert pooled.filter(pl.col("listener") == "cn0")["ua"][0] == pytest.approx(
        balanced_accuracy_score(cn0["true"].to_list(), cn0["answer"].to_list()))
    with pytest.raises(ValueError, match="at least two languages"):
        CompareConfig(pooled_languages=(("cn",),))
