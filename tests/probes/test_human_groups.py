"""Listener groups are never silently mislabelled; hand-made keys are completed, with notes."""

from __future__ import annotations

import warnings

import polars as pl
import pytest
from typer.testing import CliRunner

from probes.human.compare import CompareConfig, compare
from probes.human.groups import GroupError, resolve_group_languages
from probes.human.ingest import IngestConfig, ingest
from probes.human.keys import KeyError_, read_key

KEY = pl.DataFrame({"stimulus": ["s1", "s2", "s3", "s4"], "corpus": ["esd", "esd", "pavoque", "pavoque"],
                    "utt_id": ["u1", "u2", "u3", "u4"], "language": ["cn", "cn", "de", "de"],
                    "emotion": ["angry", "sad", "angry", "sad"]})


def _answers(groups: dict[str, str]) -> pl.DataFrame:
    rows = []
    for listener, group in groups.items():
        for r in KEY.iter_rows(named=True):
            rows.append({"listener": listener, "group": group, "stimulus": r["stimulus"], "corpus": r["corpus"],
                         "utt_id": r["utt_id"], "language": r["language"], "true": r["emotion"],
                         "answer": r["emotion"] if r["language"] == "cn" else "happy"})
    return pl.DataFrame(rows)


def test_zh_listeners_on_mandarin_are_mono_not_cross():
    res = compare(_answers({"l1": "zh", "l2": "zh", "l3": "german"}), None, CompareConfig(), key=KEY)
    settings = {(r["group"], r["language"]): r["human_setting"] for r in res.pairs.iter_rows(named=True)}
    assert settings[("zh", "cn")] == "mono" and settings[("zh", "de")] == "cross"
    assert settings[("german", "de")] == "mono" and settings[("german", "cn")] == "cross"
    assert res.report["group_languages"] == {"german": "de", "zh": "cn"}
    assert any("'zh'" in n for n in res.report["group_language_notes"])
    panels = set(res.table3.filter(pl.col("who") == "human")["panel"].to_list())
    assert "Human: ZH (mono on CN)" in panels


def test_unknown_group_is_an_error_naming_it_and_the_way_to_map_it():
    with pytest.raises(GroupError) as err:
        compare(_answers({"l1": "cn", "l2": "frnch"}), None, CompareConfig(), key=KEY)
    message = str(err.value)
    assert "'frnch'" in message and "--group-language" in message and "group_languages" in message
    # an explicit mapping makes it a group like any other
    res = compare(_answers({"l1": "cn", "l2": "frnch"}), None, CompareConfig(group_languages={"frnch": "fr"}), key=KEY)
    settings = {(r["group"], r["language"]): r["human_setting"] for r in res.pairs.iter_rows(named=True)}
    assert settings[("frnch", "cn")] == "cross" and settings[("cn", "cn")] == "mono"


def test_resolution_order_explicit_then_language_then_alias():
    mapping, notes = resolve_group_languages(["CN", " Mandarin ", "eng", "de"], ["cn", "de"], {"de": "en"})
    assert mapping == {"cn": "cn", "mandarin": "cn", "eng": "en", "de": "en"}
    assert len(notes) == 2  # the two aliases are reported, explicit and exact ones are not
    # a group named by a language code the stimuli lack (DE listeners on CN + TJ speech)
    mapping, notes = resolve_group_languages(["de", "cn"], ["cn", "tj"])
    assert mapping == {"de": "de", "cn": "cn"} and notes == []
    with pytest.raises(GroupError, match="'fr'"):
        resolve_group_languages(["fr"], ["cn", "tj"])


def _lss(path, column="native_language", values=("zh", "zh", "zh", "zh")):
    header = f"session_test_id,listener_id,{column},{column}_other,trial_id,stimuli_rating,stimuli,rating_time\n"
    rows = [f"ser,p1,{g},,t{i},angry,{s},1000\n" for i, (g, s) in enumerate(zip(values, KEY["stimulus"], strict=True))]
    path.write_text(header + "".join(rows), encoding="utf-8")
    return path


def test_ingest_records_the_group_language(tmp_path):
    res = ingest([_lss(tmp_path / "lss.csv")], KEY)
    assert set(res.answers["group_language"].to_list()) == {"cn"}
    assert [a["kind"] for a in res.anomalies if a["kind"] == "group_language"] == ["group_language"]


def test_misspelt_group_column_is_an_error_not_no_group(tmp_path):
    path = _lss(tmp_path / "lss.csv")
    with pytest.raises(GroupError, match="did you mean 'native_language'") as err:
        ingest([path], KEY, IngestConfig(group_column="native_languge"))
    assert str(path) in str(err.value)
    # no groups on purpose: every listener is without a group, and the anomalies say so
    res = ingest([path], KEY, IngestConfig(group_column=""))
    assert [a["kind"] for a in res.anomalies if a["kind"] == "no_group"] == ["no_group"]


def test_misspelt_group_column_on_the_command_line_exits_2(tmp_path):
    import cli

    key = tmp_path / "key.csv"
    KEY.write_csv(key)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli.probes_app, ["human", "ingest", str(_lss(tmp_path / "lss.csv")), "--key",
                                                 str(key), "--group-column", "native_lang", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "native_lang" in result.output and not out.exists()
    ok = CliRunner().invoke(cli.probes_app, ["human", "ingest", str(_lss(tmp_path / "lss2.csv", values=("frnch",) * 4)),
                                             "--key", str(key), "--group-language", "frnch=fr", "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert set(pl.read_parquet(out / "answers.parquet")["group_language"].to_list()) == {"fr"}


def test_hand_made_key_is_completed_and_says_what_it_assumed(tmp_path):
    path = tmp_path / "key.csv"
    path.write_text("file,lang,label\naudio/zh/0001_000351.wav,cn,Anger\nC:\\tests\\de_a1.wav,de,sad\n"
                    "x/fr_1.wav,fr,N\n", encoding="latin-1")
    notes: list[str] = []
    key = read_key(path, notes)
    assert key["utt_id"].to_list() == ["0001_000351", "de_a1", "fr_1"]
    assert key["corpus"].to_list() == ["esd", "pavoque", "unknown"]
    assert key["emotion"].to_list() == ["angry", "sad", "neutral"]
    assert key["stimulus"].to_list()[0] == "audio/zh/0001_000351.wav"
    text = " ".join(notes)
    assert "utt_id" in text and "corpus" in text and "'Anger' -> 'angry'" in text and str(path) in text
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_key(path)
    assert any("utt_id" in str(w.message) for w in caught)


@pytest.mark.parametrize("text,needle", [
    ("stimulus,language\na,cn\n", "'emotion'"),
    ("stimulus,language,emotion\na,cn,angry\na,cn,sad\n", "twice"),
    ("stimulus,language,emotion\na,cn,furious\n", "furious"),
    ("stimulus,language,emotion\na,,angry\n", "'language' is empty on line(s) 2"),
    ("stimulus,langauge,emotion\na,cn,angry\n", "'language' (did you mean 'langauge'?)"),
])
def test_bad_keys_are_errors_naming_the_file(tmp_path, text, needle):
    path = tmp_path / "key.csv"
    path.write_text(text)
    with pytest.raises(KeyError_) as err:
        read_key(path, [])
    assert str(path) in str(err.value) and needle in str(err.value), str(err.value)
