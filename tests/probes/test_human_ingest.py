"""`probes human ingest`: webMUSHRA lss.csv files and long tables joined with the key,
with every anomaly listed."""

from __future__ import annotations

import csv
import json

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from cli import probes_app
from probes.human import IngestConfig, ingest
from probes.human.webmushra import response_values

Q = ["listener_id", "native_language", "native_language_other", "dialect", "second_languages",
     "l2_level", "email"]
HEADER = ["session_test_id", *Q, "trial_id", "stimuli_rating", "stimuli", "rating_time"]


def _key(n_per=2):
    rows = []
    i = 0
    for corpus, lang in (("esd", "cn"), ("pavoque", "de")):
        for emo in ("angry", "happy", "neutral", "sad"):
            for _ in range(n_per):
                i += 1
                rows.append({"stimulus": f"s{i:03d}", "corpus": corpus, "utt_id": f"{corpus}-{i}",
                             "language": lang, "emotion": emo})
    return pl.DataFrame(rows)


def _write_lss(path, rows, header=HEADER):
    # exactly what write.php does: csv rows, header once
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _meta(listener, lang, email=""):
    return ["ser-test", listener, lang, "", "none", "en", "b", email]


def test_ingest_webmushra_lists_every_anomaly(tmp_path):
    key = _key()
    stims = key["stimulus"].to_list()
    truth = dict(zip(stims, key["emotion"].to_list(), strict=True))
    rows = []
    # listener A answers everything correctly, with webMUSHRA's " value " padding and case
    for s in stims:
        rows.append([*_meta("A", "cn"), f"trial_{s}", f" {truth[s].capitalize()} ", s, "3100"])
    # listener B: NA, unknown stimulus, unmapped answer, a duplicate (changed mind)
    for s in stims[:10]:
        rows.append([*_meta("B", "de"), f"trial_{s}", truth[s], s, "2000"])
    rows.append([*_meta("B", "de"), "trial_s011", "NA", "s011", "1500"])
    rows.append([*_meta("B", "de"), "trial_s999", "sad", "s999", "1500"])
    rows.append([*_meta("B", "de"), "trial_s012", "bored", "s012", "1500"])
    rows.append([*_meta("B", "de"), "trial_s001", "sad", "s001", "900"])  # second answer for s001
    # listener C: no native language given -> no group
    for s in stims[:3]:
        rows.append([*_meta("C", ""), f"trial_{s}", "angry", s, "1000"])
    path = _write_lss(tmp_path / "lss.csv", rows)
    res = ingest([path], key)

    kinds = {}
    for a in res.anomalies:
        kinds.setdefault(a["kind"], []).append(a)
    assert [a["stimulus"] for a in kinds["na_answer"]] == ["s011"]
    assert [a["stimulus"] for a in kinds["unknown_stimulus"]] == ["s999"]
    assert [a["stimulus"] for a in kinds["unmapped_answer"]] == ["s012"]
    dup = kinds["duplicate_answer"]
    assert len(dup) == 1 and dup[0]["line"] == 2 + len(stims) and "kept 'sad'" in dup[0]["detail"]
    assert [a["listener"] for a in kinds["no_group"]] == ["C"]
    assert sorted(a["listener"] for a in kinds["unfinished"]) == ["B", "C"]
    assert "10 of 16" in next(a for a in kinds["unfinished"] if a["listener"] == "B")["detail"]
    assert all(a["action"] in ("dropped", "kept") for a in res.anomalies)

    ans = res.answers
    a_rows = ans.filter(pl.col("listener") == "A")
    assert a_rows.height == 16 and (a_rows["answer"] == a_rows["true"]).all()
    assert set(a_rows["group"].to_list()) == {"cn"}
    b1 = ans.filter((pl.col("listener") == "B") & (pl.col("stimulus") == "s001"))
    assert b1["answer"].to_list() == ["sad"]  # policy 'last'
    assert ans.filter(pl.col("listener") == "B").height == 10
    assert ans.filter(pl.col("listener") == "C")["group"].to_list() == [None] * 3
    assert ans.filter(pl.col("stimulus") == "s999").height == 0
    # the key is joined in
    row = ans.filter(pl.col("stimulus") == "s009").row(0, named=True)
    assert (row["corpus"], row["language"], row["true"]) == ("pavoque", "de", "angry")
    # every input row is accounted for: kept, or listed as dropped
    dropped = sum(a["action"] == "dropped" for a in res.anomalies)
    assert ans.height + dropped == len(rows)
    lis = {r["listener"]: r for r in res.listeners.iter_rows(named=True)}
    assert lis["A"]["finished"] is True and lis["B"]["n_answers"] == 10


@pytest.mark.parametrize(("policy", "expected"), [("first", ["angry"]), ("drop", []), ("last", ["sad"])])
def test_duplicate_policies(tmp_path, policy, expected):
    key = _key(1)
    rows = [[*_meta("A", "cn"), "trial_s001", "angry", "s001", "1"],
            [*_meta("A", "cn"), "trial_s001", "sad", "s001", "1"]]
    res = ingest([_write_lss(tmp_path / "lss.csv", rows)], key, IngestConfig(duplicates=policy))
    assert res.answers["answer"].to_list() == expected
    dups = [a for a in res.anomalies if a["kind"] == "duplicate_answer"]
    assert len(dups) == (2 if policy == "drop" else 1)


def test_numeric_values_mapped_through_the_config(tmp_path):
    cfg = {"testname": "t", "testId": "t", "bufferSize": 2048, "remoteService": "service/write.php",
           "pages": [{"type": "likert_single_stimulus", "id": "p", "stimuli": {"s001": "a.wav"},
                      "response": [{"value": i + 1, "label": lab} for i, lab in
                                   enumerate(["Angry", "Happy", "Neutral", "Sad"])]},
                     {"type": "finish", "name": "end", "writeResults": True}]}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(cfg))
    key = _key(1)
    rows = [[*_meta("A", "cn"), f"trial_s00{i}", f" {v} ", f"s00{i}", "1"] for i, v in ((1, 1), (2, 3), (3, 4))]
    path = _write_lss(tmp_path / "lss.csv", rows)
    result = CliRunner().invoke(probes_app, [
        "human", "ingest", str(path), "--key", str(_save_key(tmp_path, key)),
        "--config", str(tmp_path / "t.yaml"), "--out", str(tmp_path / "ans"),
    ])
    assert result.exit_code == 0, result.output
    ans = pl.read_parquet(tmp_path / "ans" / "answers.parquet")
    assert ans.sort("stimulus")["answer"].to_list() == ["angry", "neutral", "sad"]
    report = json.loads((tmp_path / "ans" / "anomalies.json").read_text())
    assert [a["kind"] for a in report] == ["unfinished"]
    assert "unfinished" in result.output
    prov = json.loads((tmp_path / "ans" / "ingest.json").read_text())
    assert len(prov["key"]["sha256"]) == 64 and prov["results"][0]["path"] == str(path)
    assert response_values(yaml.safe_load((tmp_path / "t.yaml").read_text()))["3"] == "Neutral"


def _save_key(tmp_path, key):
    path = tmp_path / "key.csv"
    key.write_csv(path)
    return path


def test_listeners_told_apart_by_row_blocks_without_an_id(tmp_path):
    key = _key(1)
    header = ["session_test_id", "email", "native_language", "trial_id", "stimuli_rating", "stimuli",
              "rating_time"]
    stims = key["stimulus"].to_list()
    rows = [["ser-test", "", "cn", f"trial_{s}", "angry", s, "1"] for s in stims]
    rows += [["ser-test", "", "cn", f"trial_{s}", "happy", s, "1"] for s in stims]  # second session
    res = ingest([_write_lss(tmp_path / "lss.csv", rows, header)], key)
    assert res.answers["listener"].n_unique() == 2
    assert [a["kind"] for a in res.anomalies] == ["listener_from_rows"]
    per = res.answers.group_by("listener").agg(pl.col("answer").unique())
    assert sorted(tuple(x) for x in per["answer"].to_list()) == [("angry",), ("happy",)]


def test_email_as_listener_and_several_scales(tmp_path):
    key = _key(1)
    header = ["session_test_id", "email", "native_language", "trial_id", "stimuli_rating1", "stimuli_rating2",
              "stimuli", "rating_time"]
    rows = [["ser-test", "x@y.z", "de", "trial_s001", "sad", "3", "s001", "1"]]
    res = ingest([_write_lss(tmp_path / "lss.csv", rows, header)], key)
    assert res.answers["listener"].to_list() == ["x@y.z"]
    assert res.answers["answer"].to_list() == ["sad"]
    assert "several_scales" in {a["kind"] for a in res.anomalies}


def test_long_table_and_groups_table(tmp_path):
    key = _key(1)
    long = pl.DataFrame({"listener": ["p1", "p1", "p2"], "group": ["cn", "cn", ""],
                         "stimulus": ["s001", "s002", "s001"], "answer": ["ANGER", "h", "Sad"]})
    long.write_csv(tmp_path / "long.csv")
    res = ingest([tmp_path / "long.csv"], key)
    assert res.answers.sort("listener", "stimulus")["answer"].to_list() == ["angry", "happy", "sad"]
    assert [a["listener"] for a in res.anomalies if a["kind"] == "no_group"] == ["p2"]
    # a groups table overrides the file's groups and lists its unused entries
    res = ingest([tmp_path / "long.csv"], key, groups={"p1": "DE", "p2": "cn", "p9": "cn"})
    assert dict(res.answers.select("listener", "group").unique().iter_rows()) == {"p1": "de", "p2": "cn"}
    assert [a["listener"] for a in res.anomalies if a["kind"] == "unused_group_entry"] == ["p9"]
    # the command reads the groups table from a file
    pl.DataFrame({"listener": ["p1", "p2"], "group": ["de", "cn"]}).write_csv(tmp_path / "groups.csv")
    result = CliRunner().invoke(probes_app, [
        "human", "ingest", str(tmp_path / "long.csv"), "--key", str(_save_key(tmp_path, key)),
        "--groups", str(tmp_path / "groups.csv"), "--out", str(tmp_path / "o"),
    ])
    assert result.exit_code == 0, result.output
    assert set(pl.read_parquet(tmp_path / "o" / "answers.parquet")["group"].to_list()) == {"de", "cn"}


def test_bad_inputs_give_clear_errors(tmp_path):
    key = _key(1)
    (tmp_path / "odd.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(ValueError, match="odd.csv"):
        ingest([tmp_path / "odd.csv"], key)
    (tmp_path / "short.csv").write_text("session_test_id,trial_id,stimuli_rating,stimuli,rating_time\nx,t,angry\n")
    with pytest.raises(ValueError, match="line 2"):
        ingest([tmp_path / "short.csv"], key)
    result = CliRunner().invoke(probes_app, ["human", "ingest", str(tmp_path / "odd.csv"),
                                             "--key", str(tmp_path / "nokey.csv")])
    assert result.exit_code == 2 and "nokey.csv" in result.output
    with pytest.raises(ValueError, match="lacks column"):
        ingest([], key.drop("language"))
