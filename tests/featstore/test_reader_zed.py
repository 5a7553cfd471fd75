"""ZED reader: ZED.json with one emotional event per utterance."""

from __future__ import annotations

import json

import pytest

from featstore.corpora import READERS, CorpusFormatError, CorpusNotFoundError, CorpusWarning, read_zed
from featstore.corpora.testing import write_tone

ENTRIES = {
    "angry_0001": ("Angry", "angry", 1.10, 2.30, "Stop doing that right now."),
    "happy_0007": ("HAPPY", "happy", 0.40, 1.60, "That is wonderful news."),
    "sad_0003": ("sad", "sad", 0.80, 2.00, "I miss her so much."),
    "sad_0004": ("Sadness", "sad", 0.20, 1.00, None),
}


def _build(root, entries=ENTRIES, extra=None):
    data = {}
    for i, (utt, (label, _, start, end, text)) in enumerate(entries.items()):
        duration = 2.5 + 0.1 * i
        write_tone(root / "wavs" / f"{utt}.wav", duration)
        item = {"wav": f"datafolder/wavs/{utt}.wav", "duration": duration,
                "emotion": [{"emo": label, "start": start, "end": end}]}
        if text is not None:
            item["transcription"] = text
        data[utt] = item
    data.update(extra or {})
    (root / "ZED.json").write_text(json.dumps(data, indent=2), encoding="utf-8")


def test_every_field(tmp_path):
    root = tmp_path / "ZED"
    _build(root)
    frame = read_zed(root)
    assert sorted(frame["utt_id"]) == sorted(ENTRIES)
    for i, (utt, (label, emotion, start, end, text)) in enumerate(ENTRIES.items()):
        row = frame.filter(frame["utt_id"] == utt).row(0, named=True)
        assert row["corpus"] == "zed" and row["language"] == "en" and row["speaker"] == "zed"
        assert row["emotion"] == emotion and row["label"] == label
        assert row["path"] == str(root / "wavs" / f"{utt}.wav")
        assert row["start"] is None and row["end"] is None
        assert row["duration"] == pytest.approx(2.5 + 0.1 * i)
        assert row["sample_rate"] == 16000
        assert row["text"] == text
        assert json.loads(row["events"]) == [{"emotion": emotion, "start": start, "end": end}]


def test_json_path_as_root_and_nested_folder(tmp_path):
    _build(tmp_path / "unzipped" / "ZED")
    assert read_zed(tmp_path / "unzipped").height == len(ENTRIES)
    assert read_zed(tmp_path / "unzipped" / "ZED" / "ZED.json", name="zed2")["corpus"][0] == "zed2"


def test_unknown_label_rejected_with_file_utterance_label(tmp_path):
    _build(tmp_path, {**ENTRIES, "odd_0001": ("Contempt", "?", 0.1, 0.5, "hm")})
    with pytest.raises(CorpusFormatError) as info:
        read_zed(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "ZED.json") in message and "'odd_0001'" in message and "'Contempt'" in message


def test_neutral_context_events_and_several_emotions(tmp_path):
    extra = {"mix_0001": {"wav": "datafolder/wavs/angry_0001.wav", "duration": 2.5, "emotion": [
        {"emo": "neutral", "start": 0.0, "end": 1.0}, {"emo": "anger", "start": 1.0, "end": 2.0}]}}
    _build(tmp_path, extra=extra)
    frame = read_zed(tmp_path)
    row = frame.filter(frame["utt_id"] == "mix_0001").row(0, named=True)
    assert row["emotion"] == "angry" and row["label"] == "anger"
    assert json.loads(row["events"]) == [{"emotion": "neutral", "start": 0.0, "end": 1.0},
                                         {"emotion": "angry", "start": 1.0, "end": 2.0}]
    bad = {"two_0001": {"wav": "datafolder/wavs/angry_0001.wav", "duration": 2.5, "emotion": [
        {"emo": "sad", "start": 0.0, "end": 1.0}, {"emo": "happy", "start": 1.0, "end": 2.0}]}}
    _build(tmp_path, extra=bad)
    with pytest.raises(CorpusFormatError, match="two_0001.*several emotions"):
        read_zed(tmp_path)
    odd = {"long_0001": {"wav": "datafolder/wavs/angry_0001.wav", "duration": "2,5 s",
                         "emotion": [{"emo": "sad", "start": 0.0, "end": 1.0}]}}
    _build(tmp_path, extra=odd)
    with pytest.raises(CorpusFormatError, match="'long_0001': duration '2,5 s' is not a number"):
        read_zed(tmp_path)


def test_missing_wav_reported_and_missing_json(tmp_path):
    _build(tmp_path, extra={"gone_0001": {"wav": "datafolder/wavs/gone.wav", "duration": 1.0,
                                          "emotion": [{"emo": "sad", "start": 0.1, "end": 0.9}]}})
    with pytest.warns(CorpusWarning, match="1 utterance.*gone_0001"):
        assert read_zed(tmp_path).height == len(ENTRIES)
    with pytest.raises(CorpusNotFoundError, match="ZED.json"):
        read_zed(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "ZED.json").write_text("{not json")
    with pytest.raises(CorpusFormatError, match="not valid JSON"):
        read_zed(tmp_path / "broken")
    assert READERS["zed"].languages == ("en",)


def test_wav_entries_leaving_the_folder_are_refused(tmp_path):
    write_tone(tmp_path / "outside.wav", 0.1)
    write_tone(tmp_path / "zed" / "a.wav", 0.1)
    event = [{"emo": "angry", "start": 0.0, "end": 0.05}]
    data = {"a": {"wav": "datafolder/a.wav", "emotion": event},
            "up": {"wav": "datafolder/../outside.wav", "emotion": event},
            "abs": {"wav": str(tmp_path / "outside.wav"), "emotion": event}}
    (tmp_path / "zed").mkdir(exist_ok=True)
    (tmp_path / "zed" / "ZED.json").write_text(json.dumps(data))
    with pytest.warns(CorpusWarning, match=r"2 audio path\(s\) leave the corpus root"):
        frame = read_zed(tmp_path / "zed")
    assert frame["utt_id"].to_list() == ["a"]


def test_duplicate_and_empty_ids_are_refused(tmp_path):
    write_tone(tmp_path / "a.wav", 0.1)
    entry = '{"wav": "datafolder/a.wav", "emotion": [{"emo": "sad", "start": 0, "end": 0.05}]}'
    (tmp_path / "ZED.json").write_text("{" + f'"u1": {entry}, "u1": {entry}' + "}")
    with pytest.raises(CorpusFormatError, match="ZED.json: key 'u1' appears twice"):
        read_zed(tmp_path)
    (tmp_path / "ZED.json").write_text("{" + f'"": {entry}' + "}")
    with pytest.raises(CorpusFormatError, match="ZED.json: an utterance has an empty id"):
        read_zed(tmp_path)
