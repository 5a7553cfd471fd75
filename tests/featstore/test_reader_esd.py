"""ESD reader on small copies of its real layouts and transcript encodings."""

from __future__ import annotations

import codecs
import warnings

import polars as pl
import pytest

from featstore.corpora import READERS, CorpusFormatError, CorpusNotFoundError, CorpusWarning, read_esd
from featstore.corpora.esd import decode_transcript, index_emotion, parse_transcript_line
from featstore.corpora.testing import esd_utt_id, write_esd_tree, write_tone
from featstore.manifest import MANIFEST_SCHEMA

SR = 16000


def _wav(folder, utt_id, n_samples):
    return write_tone(folder / f"{utt_id}.wav", n_samples / SR)


def _build_official(tmp_path):
    """Official zip layout: 'Emotion Speech Dataset/<spk>/<Emotion>/<split>/<utt>.wav'."""
    base = tmp_path / "download" / "Emotion Speech Dataset"
    expected = {}
    lengths = iter(range(1600, 4000, 37))
    for spk in ("0001", "0005", "0011", "0015"):
        for emotion, split in (("Neutral", "train"), ("Angry", "evaluation"), ("Happy", "test"),
                               ("Sad", "train"), ("Surprise", "train")):
            utt = esd_utt_id(spk, emotion, 3)
            n = next(lengths)
            _wav(base / spk / emotion / split, utt, n)
            expected[utt] = (spk, emotion, split, n)
    # a file whose number says Neutral but lies in Angry/: label from the folder, reported
    _wav(base / "0001" / "Angry" / "train", "0001_000005", 2000)
    expected["0001_000005"] = ("0001", "Angry", "train", 2000)
    # macOS resource fork: not audio
    (base / "0001" / "Sad" / "train" / "._0001_001054.wav").write_bytes(b"\x00\x05\x16\x07junk")

    # 0001: gb2312 with Chinese emotion words and one malformed (undecodable, tab-less) line
    lines_0001 = [
        f"{esd_utt_id('0001', 'Neutral', 3)}\t打远一看，它们的确很是美丽，\t中立",
        f"{esd_utt_id('0001', 'Angry', 3)}\t他们就是那种人。\t生气",
        f"{esd_utt_id('0001', 'Happy', 3)}\t今天天气很好。\t快乐",
        f"{esd_utt_id('0001', 'Sad', 3)}\t我们走吧。\t伤心",
        f"{esd_utt_id('0001', 'Surprise', 3)}\t真的吗？\t惊喜",
        "0001_000005\t这是一个测试。\t中立",
    ]
    raw = "\r\n".join(lines_0001).encode("gb2312") + b"\r\n\xff\xfe\x81 broken line\r\n"
    (base / "0001" / "0001.txt").write_bytes(raw)
    # 0005: utf-16 with BOM
    lines_0005 = [f"{esd_utt_id('0005', e, 3)}\t第{i}句话。\t{w}" for i, (e, w) in enumerate(
        [("Neutral", "中立"), ("Angry", "生气"), ("Happy", "快乐"), ("Sad", "伤心"), ("Surprise", "惊喜")])]
    (base / "0005" / "0005.txt").write_bytes("\n".join(lines_0005).encode("utf-16"))
    # 0011: utf-8 with BOM, English emotion words
    lines_0011 = [f"{esd_utt_id('0011', e, 3)}\tThe nine the eggs, {e}.\t{e}"
                  for e in ("Neutral", "Angry", "Happy", "Sad", "Surprise")]
    (base / "0011" / "0011.txt").write_bytes(codecs.BOM_UTF8 + "\n".join(lines_0011).encode("utf-8"))
    # 0015: latin-1 with an accent, a malformed line and a space-separated line
    lines_0015 = [f"{esd_utt_id('0015', 'Neutral', 3)}\tCafé au lait.\tNeutral",
                  "garbage-without-id",
                  f"{esd_utt_id('0015', 'Angry', 3)} I said so. Angry",
                  f"{esd_utt_id('0015', 'Happy', 3)}\tNaïve joy.\tHappy"]
    (base / "0015" / "0015.txt").write_bytes("\n".join(lines_0015).encode("latin-1"))
    return tmp_path / "download", expected


def test_official_layout_every_field(tmp_path):
    root, expected = _build_official(tmp_path)
    with pytest.warns(CorpusWarning) as record:
        frame = read_esd(root)
    messages = " | ".join(str(w.message) for w in record)
    assert list(frame.columns[: len(MANIFEST_SCHEMA)]) == list(MANIFEST_SCHEMA)
    assert sorted(frame["utt_id"]) == sorted(expected)
    male = {"0005", "0011"}
    for row in frame.iter_rows(named=True):
        spk, emotion, split, n = expected[row["utt_id"]]
        assert row["corpus"] == "esd"
        assert row["speaker"] == spk
        assert row["language"] == ("cn" if spk in ("0001", "0005") else "en")
        assert row["gender"] == ("M" if spk in male else "F")
        assert row["label"] == emotion and row["emotion"] == emotion.lower()
        assert row["esd_split"] == split
        assert row["path"] == str(root / "Emotion Speech Dataset" / spk / emotion / split / f"{row['utt_id']}.wav")
        assert row["start"] is None and row["end"] is None
        assert row["sample_rate"] == SR
        assert row["duration"] == pytest.approx(n / SR)
    text = dict(zip(frame["utt_id"], frame["text"], strict=True))
    assert text[esd_utt_id("0001", "Neutral", 3)] == "打远一看，它们的确很是美丽，"
    assert text[esd_utt_id("0001", "Surprise", 3)] == "真的吗？"
    assert text[esd_utt_id("0005", "Happy", 3)] == "第2句话。"
    assert text[esd_utt_id("0011", "Sad", 3)] == "The nine the eggs, Sad."
    assert text[esd_utt_id("0015", "Neutral", 3)] == "Café au lait."
    assert text[esd_utt_id("0015", "Angry", 3)] == "I said so."
    assert text[esd_utt_id("0015", "Happy", 3)] == "Naïve joy."
    assert text[esd_utt_id("0015", "Sad", 3)] is None  # no transcript line
    # reported, never fatal: the malformed lines, the index rule, the transcript's emotion
    assert "malformed transcript line(s)" in messages and "0001.txt:7" in messages
    assert "0015.txt:2" in messages
    assert "numbering rule" in messages and "0001_000005 in Angry/" in messages
    assert "0001_000005 (neutral vs Angry/)" in messages
    assert "._" not in " ".join(frame["path"])


def test_flat_layout_without_split_folders(tmp_path):
    files = [(esd_utt_id(spk, e, k), e) for spk in ("0003", "0020")
             for e in ("Angry", "Happy", "Neutral", "Sad") for k in range(2)]
    write_esd_tree(tmp_path, files, split=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorpusWarning)  # a clean tree gives no warning
        frame = read_esd(tmp_path, name="esd_flat")
    assert frame.height == 16
    assert set(frame["corpus"]) == {"esd_flat"}
    assert frame["esd_split"].null_count() == 16
    by_spk = frame.group_by("speaker").agg(pl.col("language").first(), pl.col("gender").first()).sort("speaker")
    assert by_spk.rows() == [("0003", "cn", "F"), ("0020", "en", "M")]
    assert frame.filter(pl.col("speaker") == "0003")["text"].to_list()[0].startswith("sentence 0003_")


def test_language_override_for_demo_layout(tmp_path):
    for spk in ("spk01", "spk02"):
        for number, emotion in enumerate(("Angry", "Neutral")):
            write_tone(tmp_path / "yue" / spk / emotion / f"{spk}_{number:06d}.wav", 0.05)
    with pytest.raises(CorpusFormatError, match="spk01.*--language"):
        read_esd(tmp_path / "yue")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorpusWarning)  # no ESD numbering check for demo speakers
        frame = read_esd(tmp_path / "yue", name="demo_yue", language="yue")
    assert set(frame["language"]) == {"yue"} and frame["gender"].null_count() == frame.height
    assert sorted(frame["utt_id"]) == ["spk01_000000", "spk01_000001", "spk02_000000", "spk02_000001"]
    assert dict(zip(frame["utt_id"], frame["emotion"], strict=True))["spk02_000001"] == "neutral"
    # the same file name twice (train/ and test/) is reported and read once
    write_tone(tmp_path / "yue" / "spk01" / "Angry" / "test" / "spk01_000000.wav", 0.05)
    with pytest.warns(CorpusWarning, match="1 duplicate file name.*spk01_000000"):
        assert read_esd(tmp_path / "yue", language="yue").height == 4


def test_parent_folder_with_one_or_several_trees(tmp_path):
    write_esd_tree(tmp_path / "unzipped", [("0002_000001", "Neutral")], official_folder=True)
    assert read_esd(tmp_path)["utt_id"].to_list() == ["0002_000001"]
    for lang in ("cn", "de"):
        write_tone(tmp_path / "demo" / lang / "spk1" / "Sad" / "spk1_000001.wav", 0.05)
    with pytest.raises(CorpusNotFoundError, match=r"several ESD-layout trees .*\(cn, de\)"):
        read_esd(tmp_path / "demo", language="cn")
    assert read_esd(tmp_path / "demo" / "de", language="de")["language"].to_list() == ["de"]


def test_missing_root_says_what_goes_where(tmp_path):
    with pytest.raises(CorpusNotFoundError, match="expected speaker folders 0001 ... 0020") as info:
        read_esd(tmp_path / "nothing")
    assert "Emotion Speech Dataset" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusNotFoundError):
        read_esd(tmp_path / "empty")


def test_index_rule_and_line_parser():
    assert index_emotion("0001_000001") == "neutral"
    assert index_emotion("0001_000350") == "neutral"
    assert index_emotion("0001_000351") == "angry"
    assert index_emotion("0001_001050") == "happy"
    assert index_emotion("0001_001400") == "sad"
    assert index_emotion("0001_001750") == "surprise"
    assert index_emotion("0001_001751") is None
    assert parse_transcript_line("0001_000001\t你好\t中立") == ("0001_000001", "你好", "neutral")
    assert parse_transcript_line("0011_000001\tHello there.") == ("0011_000001", "Hello there.", None)
    assert parse_transcript_line("nonsense") is None
    assert parse_transcript_line("0011_000002 Two words Sad") == ("0011_000002", "Two words", "sad")


def test_decode_transcript_orders():
    chinese = "0001_000001\t你好\t中立"
    assert decode_transcript(chinese.encode("gb2312")) == [chinese]
    assert decode_transcript(chinese.encode("utf-16")) == [chinese]
    assert decode_transcript(chinese.encode("utf-16-be").join([codecs.BOM_UTF16_BE, b""])) == [chinese]
    # latin-1 accents are not turned into Chinese for English/German speakers
    latin = "0011_000001\tété\tNeutral"
    assert decode_transcript(latin.encode("latin-1"), han=False) == [latin]
    mixed = chinese.encode("gb2312") + b"\n\xff\xff\xff\n" + "0001_000002\t好\t快乐".encode("gb2312")
    lines = decode_transcript(mixed)
    assert lines[0] == chinese and lines[2] == "0001_000002\t好\t快乐" and len(lines) == 3


def test_registry_entry():
    spec = READERS["esd"]
    assert spec.read is read_esd and spec.languages == ("cn", "en") and "language" in spec.options


def test_paper_split_names_are_esd_utt_ids(tmp_path):
    """Every file the paper's CN_ESD split names is read back with the split's label, and
    ESD's numbering rule agrees with all of them (no warning)."""
    import csv
    from pathlib import Path

    split_dir = Path(__file__).resolve().parents[2].parent / "shared" / "paper" / "split_id" / "CN_ESD"
    named = {}
    for path in sorted(split_dir.glob("*/metadata_fold*.csv")):
        with path.open(encoding="utf-8") as handle:
            for record in csv.DictReader(handle):
                named[record["file"].removesuffix(".wav")] = record["answer"]
    assert len(named) == 2000
    write_esd_tree(tmp_path, sorted(named.items()), duration_s=0.03)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorpusWarning)
        frame = read_esd(tmp_path)
    assert dict(zip(frame["utt_id"], frame["label"], strict=True)) == named
    assert set(frame["language"]) == {"cn"}


def test_stray_files_are_not_utterances(tmp_path):
    """Files outside ESD's naming scheme (another speaker's name, wrong digits, a note, a
    folder that is not train/evaluation/test) are left out and named in one warning."""
    write_tone(tmp_path / "0001" / "Angry" / "0001_000351.wav", 0.05)
    for stray in ("notes.wav", "0002_000352.wav", "0001_352.wav", "0001_000353 (copy).wav"):
        write_tone(tmp_path / "0001" / "Angry" / stray, 0.05)
    write_tone(tmp_path / "0001" / "Angry" / "backup" / "0001_000354.wav", 0.05)
    write_tone(tmp_path / "0001" / "Bored" / "0001_000999.wav", 0.05)  # not one of ESD's emotion folders
    with pytest.warns(CorpusWarning, match=r"6 file\(s\) or folder\(s\) not in ESD's naming scheme") as record:
        frame = read_esd(tmp_path)
    assert frame["utt_id"].to_list() == ["0001_000351"]
    message = " ".join(str(w.message) for w in record)
    assert "0001/Bored/" in message and "backup/" in message  # the first five of six are named


def test_symlink_out_of_the_root_is_refused_unopened(tmp_path):
    write_tone(tmp_path / "esd" / "0001" / "Angry" / "0001_000351.wav", 0.05)
    write_tone(tmp_path / "elsewhere" / "x.wav", 0.05)
    (tmp_path / "esd" / "0001" / "Angry" / "0001_000352.wav").symlink_to(tmp_path / "elsewhere" / "x.wav")
    with pytest.warns(CorpusWarning, match=r"1 audio path\(s\) leave the corpus root.*0001_000352"):
        frame = read_esd(tmp_path / "esd")
    assert frame["utt_id"].to_list() == ["0001_000351"]
    frame = read_esd(tmp_path / "esd", allow_outside_root=True)
    assert frame["utt_id"].to_list() == ["0001_000351", "0001_000352"]
