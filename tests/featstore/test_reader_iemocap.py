"""IEMOCAP reader on a small copy of the release layout with real EmoEvaluation lines."""

from __future__ import annotations

import pytest

from featstore.corpora import READERS, CorpusNotFoundError, CorpusWarning, read_iemocap
from featstore.corpora.iemocap import parse_emo_evaluation, parse_utterance_name
from featstore.corpora.testing import write_tone

HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
RATERS = ("C-E2:\tNeutral;\t()\nC-E3:\tFrustration; Anger;\t()\nC-F1:\tNeutral;\t(curious)\n"
          "A-E3:\tval 3; act 2; dom  2;\t()\nA-F1:\tval 2; act 1; dom  3;\t()\n\n")

# utterance -> (label code, expected emotion, expected speaker, expected gender, mode, session)
UTTERANCES = {
    "Ses01F_impro01_F000": ("neu", "neutral", "Ses01F", "F", "improvised", 1),
    "Ses01F_impro01_M000": ("fru", "frustrated", "Ses01M", "M", "improvised", 1),
    "Ses01F_impro01_F001": ("exc", "happy", "Ses01F", "F", "improvised", 1),
    "Ses01F_impro01_M001": ("xxx", "no_agreement", "Ses01M", "M", "improvised", 1),
    "Ses01F_script01_1_M012": ("ang", "angry", "Ses01M", "M", "scripted", 1),
    "Ses03M_impro05a_M001": ("ang", "angry", "Ses03M", "M", "improvised", 3),
    "Ses03M_impro05a_F002": ("sad", "sad", "Ses03F", "F", "improvised", 3),
    "Ses03M_impro05b_F000": ("hap", "happy", "Ses03F", "F", "improvised", 3),
    "Ses04M_script01_2_F010": ("ang", "angry", "Ses04F", "F", "scripted", 4),
    "Ses05M_script01_1b_F003": ("sur", "surprise", "Ses05F", "F", "scripted", 5),
    "Ses05M_script01_1b_M004": ("fea", "fear", "Ses05M", "M", "scripted", 5),
    "Ses05M_script01_1b_M005": ("dis", "disgust", "Ses05M", "M", "scripted", 5),
    "Ses05M_script01_1b_F006": ("oth", "other", "Ses05F", "F", "scripted", 5),
}
MISSING_WAV = "Ses01F_impro01_M002"


def _build(root):
    by_dialog = {}
    for i, utt in enumerate([*UTTERANCES, MISSING_WAV]):
        by_dialog.setdefault(utt.rsplit("_", 1)[0], []).append((i, utt))
    for dialog, utts in by_dialog.items():
        session_dir = root / f"Session{int(dialog[3:5])}"
        label_lines, text_lines = [HEADER], []
        for i, utt in utts:
            start, end = 1.5 + 3 * i, 2.75 + 3 * i
            code = UTTERANCES.get(utt, ("neu",))[0]
            label_lines.append(f"[{start:.4f} - {end:.4f}]\t{utt}\t{code}\t[2.5000, 3.0000, 3.5000]\n")
            label_lines.append(RATERS)
            text_lines.append(f"{utt} [{start:08.4f}-{end:08.4f}]: Words of {utt}.\n")
            if utt != MISSING_WAV:
                write_tone(session_dir / "sentences" / "wav" / dialog / f"{utt}.wav", 0.05 + 0.01 * i)
                (session_dir / "sentences" / "wav" / dialog / f"._{utt}.wav").write_bytes(b"\x00junk")
        emo = session_dir / "dialog" / "EmoEvaluation"
        emo.mkdir(parents=True, exist_ok=True)
        (emo / f"{dialog}.txt").write_text("".join(label_lines), encoding="utf-8")
        (emo / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07 mac resource fork \xff")
        # per-rater categorical files have a different format and must not be read
        (emo / "Categorical").mkdir(exist_ok=True)
        (emo / "Categorical" / f"{dialog}_e2_cat.txt").write_text(
            "".join(f"{u} :Anger; ()\n" for _, u in utts) +
            "[1.0000 - 2.0000]\tSes01F_impro01_F999\tang\t[1.0, 1.0, 1.0]\n")
        tr = session_dir / "dialog" / "transcriptions"
        tr.mkdir(parents=True, exist_ok=True)
        (tr / f"{dialog}.txt").write_text("".join(text_lines), encoding="utf-8")


def test_every_field(tmp_path):
    root = tmp_path / "IEMOCAP_full_release"
    _build(root)
    with pytest.warns(CorpusWarning, match=f"1 labelled utterance.*left out: {MISSING_WAV}"):
        frame = read_iemocap(tmp_path)  # the parent of the release folder works too
    assert sorted(frame["utt_id"]) == sorted(UTTERANCES)
    for row in frame.iter_rows(named=True):
        code, emotion, speaker, gender, mode, session = UTTERANCES[row["utt_id"]]
        dialog = row["utt_id"].rsplit("_", 1)[0]
        assert row["corpus"] == "iemocap" and row["language"] == "en"
        assert row["label"] == code and row["emotion"] == emotion
        assert row["speaker"] == speaker and row["gender"] == gender
        assert row["mode"] == mode and row["session"] == session
        assert row["dialog"] == dialog
        assert row["path"] == str(root / f"Session{session}" / "sentences" / "wav" / dialog / f"{row['utt_id']}.wav")
        assert row["start"] is None and row["end"] is None  # the sentence wav is the utterance
        assert row["sample_rate"] == 16000 and row["duration"] > 0.04
        assert row["text"] == f"Words of {row['utt_id']}."
        assert (row["valence"], row["activation"], row["dominance"]) == (2.5, 3.0, 3.5)
        assert row["dialog_end"] - row["dialog_start"] == pytest.approx(1.25)
    # the Categorical/ line never becomes an utterance
    assert "Ses01F_impro01_F999" not in set(frame["utt_id"])
    # the speaker rule: the letter after "Ses0N" is the dialog's, not the speaker's
    assert frame.filter(frame["utt_id"] == "Ses04M_script01_2_F010")["speaker"].item() == "Ses04F"
    assert set(frame["speaker"]) == {"Ses01F", "Ses01M", "Ses03F", "Ses03M", "Ses04F", "Ses05F", "Ses05M"}


def test_keep_missing(tmp_path):
    _build(tmp_path)
    with pytest.warns(CorpusWarning, match="kept with duration 0"):
        frame = read_iemocap(tmp_path, name="iemo", keep_missing=True)
    row = frame.filter(frame["utt_id"] == MISSING_WAV).row(0, named=True)
    assert row["duration"] == 0.0 and row["corpus"] == "iemo" and row["emotion"] == "neutral"


def test_four_class_mapping_counts(tmp_path):
    _build(tmp_path)
    with pytest.warns(CorpusWarning):
        frame = read_iemocap(tmp_path)
    four = frame.filter(frame["emotion"].is_in(["angry", "happy", "neutral", "sad"]))
    counts = dict(four.group_by("emotion").len().iter_rows())
    assert counts == {"angry": 3, "happy": 2, "neutral": 1, "sad": 1}
    assert set(four.filter(four["emotion"] == "happy")["label"]) == {"exc", "hap"}


def test_line_and_name_parsers():
    text = HEADER + "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n" + RATERS
    assert parse_emo_evaluation(text) == [{
        "utt_id": "Ses01F_impro01_F000", "label": "neu", "dialog_start": 6.2901, "dialog_end": 8.2357,
        "valence": 2.5, "activation": 2.5, "dominance": 2.5}]
    info = parse_utterance_name("Ses05M_script01_1b_F003")
    assert info == {"session": 5, "speaker": "Ses05F", "gender": "F", "dialog": "Ses05M_script01_1b",
                    "mode": "scripted"}


def test_missing_root(tmp_path):
    with pytest.raises(CorpusNotFoundError, match="Session1 ... Session5"):
        read_iemocap(tmp_path / "nope")
    with pytest.raises(CorpusNotFoundError, match="EmoEvaluation"):
        read_iemocap(tmp_path)
    assert READERS["iemocap"].read is read_iemocap


def test_paper_split_names_give_ten_speakers():
    import csv
    from pathlib import Path

    split_dir = Path(__file__).resolve().parents[2].parent / "shared" / "paper" / "split_id" / "EN_IEMOCAP"
    speakers, sessions = set(), {}
    for path in sorted(split_dir.glob("test/metadata_fold*.csv")):
        fold = int(path.stem[-1])
        with path.open(encoding="utf-8") as handle:
            for record in csv.DictReader(handle):
                info = parse_utterance_name(record["file"].removesuffix(".wav"))
                speakers.add(info["speaker"])
                sessions.setdefault(fold, set()).add(info["session"])
                assert info["mode"] in ("improvised", "scripted")
    assert speakers == {f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"}
    # each fold's test set is one held-out session
    assert all(len(s) == 1 for s in sessions.values()) and len(sessions) == 5


def test_label_lines_naming_no_iemocap_utterance_are_left_out(tmp_path):
    session = tmp_path / "Session1"
    write_tone(session / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F000.wav", 0.1)
    write_tone(tmp_path / "secret_F000.wav", 0.1)
    lines = ["[1.0 - 2.0]\tSes01F_impro01_F000\tang\t[2.0, 3.0, 3.0]",
             "[1.0 - 2.0]\tSes01F_impro01/../../../../../secret_F000\tsad\t[2.0, 3.0, 3.0]",
             "[1.0 - 2.0]\tnotes_F001\tsad\t[2.0, 3.0, 3.0]"]
    (session / "dialog" / "EmoEvaluation").mkdir(parents=True)
    (session / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt").write_text("\n".join(lines) + "\n")
    with pytest.warns(CorpusWarning, match=r"2 label line\(s\) name no IEMOCAP utterance"):
        frame = read_iemocap(tmp_path)
    assert frame["utt_id"].to_list() == ["Ses01F_impro01_F000"]
