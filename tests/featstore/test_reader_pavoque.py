"""PAVOQUE reader: the release (FLAC + YAML per style, stretches) and extracted wav files."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import soundfile as sf
import yaml

from featstore.audio import load_row
from featstore.corpora import READERS, CorpusNotFoundError, CorpusWarning, read_pavoque
from featstore.corpora.pavoque import extract_release
from featstore.corpora.testing import write_tone

SR = 44100


def _style_signal(style_index, seconds):
    # distinct known 16-bit samples per style so that a stretch can be checked exactly
    n = int(seconds * SR)
    return (((np.arange(n) * (style_index + 3)) % 30000) - 15000).astype(np.int16)


ITEMS = {
    "angry": [("spike0013", "Das ist ja unerhört!", 0.50, 1.25), ("m0103", "Wir fahren morgen.", 1.50, 2.40)],
    "neutral": [("prudence0001", "Guten Morgen.", 0.10, 0.90), ("a0001", "Ein Satz.", 1.00, 1.75),
                ("m0103", "Wir fahren morgen.", 2.00, 2.80)],
    "poker": [("poker_m0001", "Ich setze alles.", 0.25, 1.00)],
    "sad": [("obadiah0002", "Es ist vorbei.", 0.30, 1.30)],
}


def _build_release(root):
    root.mkdir(parents=True, exist_ok=True)
    signals = {}
    for index, (style, items) in enumerate(ITEMS.items()):
        signals[style] = _style_signal(index, 3.0)
        sf.write(root / f"pavoque-{style}.flac", signals[style], SR, subtype="PCM_16")
        doc = [{"prompt": p, "text": t, "style": style, "start": s, "end": e,
                "segments": [{"lab": "_", "end": 0.05}, {"lab": "a", "end": round(e - s, 3)}]}
               for p, t, s, e in items]
        (root / f"pavoque-{style}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    # outtakes are not part of the corpus
    sf.write(root / "pavoque-outtakes.flac", _style_signal(9, 1.0), SR)
    (root / "pavoque-outtakes.yaml").write_text(
        yaml.safe_dump([{"prompt": "x0001", "text": "oops", "style": "outtakes", "start": 0.1, "end": 0.5}]))
    return signals


def test_release_every_field_and_no_copy(tmp_path):
    signals = _build_release(tmp_path / "pavoque")
    before = sorted(p.name for p in (tmp_path / "pavoque").iterdir())
    frame = read_pavoque(tmp_path / "pavoque")
    assert sorted(p.name for p in (tmp_path / "pavoque").iterdir()) == before  # nothing written
    expected = {f"{p}-{style}": (style, t, s, e) for style, items in ITEMS.items() for p, t, s, e in items}
    assert sorted(frame["utt_id"]) == sorted(expected)
    for row in frame.iter_rows(named=True):
        style, text, start, end = expected[row["utt_id"]]
        assert row["corpus"] == "pavoque" and row["language"] == "de"
        assert row["speaker"] == "pavoque" and row["gender"] == "M"
        assert row["label"] == style and row["emotion"] == style
        assert row["path"] == str(tmp_path / "pavoque" / f"pavoque-{style}.flac")
        assert row["start"] == start and row["end"] == end
        assert row["duration"] == pytest.approx(end - start)
        assert row["sample_rate"] == SR
        assert row["text"] == text
        # the stretch decodes to exactly the samples of the FLAC between start and end
        native = load_row(row, sample_rate_hz=SR)
        first, last = round(start * SR), round(end * SR)
        np.testing.assert_array_equal(native, signals[style][first:last].astype(np.float32) / 32768)
        assert load_row(row).shape == (round((last - first) * 16000 / SR),)
    assert "poker" in set(frame["emotion"])  # fifth style kept as its own label


def test_extract_release_copies_exact_samples_when_asked(tmp_path):
    signals = _build_release(tmp_path / "pavoque")
    release = read_pavoque(tmp_path / "pavoque")
    written = extract_release(release, tmp_path / "extracted")
    assert sorted(p.stem for p in written) == sorted(release["utt_id"])
    extracted = read_pavoque(tmp_path / "extracted")
    assert sorted(extracted["utt_id"]) == sorted(release["utt_id"])
    for row in release.iter_rows(named=True):
        style = row["label"]
        data, sr = sf.read(tmp_path / "extracted" / f"{row['utt_id']}.wav", dtype="int16")
        assert sr == SR
        np.testing.assert_array_equal(data, signals[style][round(row["start"] * SR): round(row["end"] * SR)])
    assert extract_release(release, tmp_path / "extracted") == []  # nothing overwritten
    # a stretch that starts after the end of its FLAC is reported, the others are written
    late = release.head(1).with_columns(pl.lit("late0001-angry").alias("utt_id"), pl.lit(5.0).alias("start"),
                                        pl.lit(5.5).alias("end"))
    with pytest.warns(CorpusWarning, match=r"1 stretch.*late0001-angry"):
        assert extract_release(pl.concat([late, release]), tmp_path / "extracted") == []


def test_release_odd_items_reported(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    write_tone(root / "pavoque-happy.flac", 2.0, SR)
    doc = [{"prompt": "poppy0001", "text": "Juhu!", "style": "happy", "start": 0.1, "end": 0.9},
           {"prompt": "poppy0002", "text": "kaputt", "style": "happy", "start": 1.0},
           {"prompt": "poppy0003", "text": "zu spät", "style": "happy", "start": 1.5, "end": 5.0},
           {"prompt": "poppy0001", "text": "twice", "style": "happy", "start": 1.0, "end": 1.5}]
    (root / "pavoque-happy.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    (root / "pavoque-sad.yaml").write_text(yaml.safe_dump(doc[:1]), encoding="utf-8")  # no FLAC
    with pytest.warns(CorpusWarning) as record:
        frame = read_pavoque(root)
    messages = " | ".join(str(w.message) for w in record)
    assert "pavoque-sad.yaml has no pavoque-sad.flac" in messages
    assert "item 1: no prompt/start/end" in messages
    assert "poppy0003-happy" in messages and "after the FLAC" in messages
    assert "duplicate poppy0001-happy" in messages
    assert sorted(frame["utt_id"]) == ["poppy0001-happy", "poppy0003-happy"]
    assert frame.filter(frame["utt_id"] == "poppy0001-happy")["text"].item() == "Juhu!"


EXTRACTED = ["spike0013-angry", "m0103-angry", "obadiah0021-sad", "poppy0042-happy",
             "prudence0007-neutral", "a0123-neutral", "e0004-neutral", "m0103-poker"]


def test_extracted_folder(tmp_path):
    root = tmp_path / "wavs"
    for i, stem in enumerate(EXTRACTED):
        sub = root / stem.rsplit("-", 1)[1]  # some copies sort files into per-style folders
        write_tone(sub / f"{stem}.wav", 0.1 + 0.01 * i, SR)
    write_tone(root / "readme-tone.wav", 0.1)
    (root / "angry" / "._spike0013-angry.wav").write_bytes(b"junk")
    with pytest.warns(CorpusWarning, match="1 wav file.*readme-tone.wav"):
        frame = read_pavoque(root, name="pav")
    assert sorted(frame["utt_id"]) == sorted(EXTRACTED)
    for i, stem in enumerate(EXTRACTED):
        row = frame.filter(frame["utt_id"] == stem).row(0, named=True)
        style = stem.rsplit("-", 1)[1]
        assert row["corpus"] == "pav" and row["emotion"] == style and row["label"] == style
        assert row["start"] is None and row["end"] is None
        assert row["path"] == str(root / style / f"{stem}.wav")
        assert row["duration"] == pytest.approx(0.1 + 0.01 * i, abs=1 / SR)
        assert row["sample_rate"] == SR
    # the names are those of the paper's split files minus ".wav"
    assert "spike0013-angry" in set(frame["utt_id"])


def test_layout_choice_and_missing(tmp_path):
    _build_release(tmp_path / "both")
    write_tone(tmp_path / "both" / "extra" / "spike0001-angry.wav", 0.1, SR)
    assert read_pavoque(tmp_path / "both", layout="extracted")["utt_id"].to_list() == ["spike0001-angry"]
    assert read_pavoque(tmp_path / "both").height == sum(len(v) for v in ITEMS.values())
    with pytest.raises(CorpusNotFoundError, match="pavoque-<style>.flac"):
        read_pavoque(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusNotFoundError, match="spike0013-angry.wav"):
        read_pavoque(tmp_path / "empty")
    with pytest.raises(ValueError, match="layout"):
        read_pavoque(tmp_path / "both", layout="zip")
    assert READERS["pavoque"].languages == ("de",)


def test_paper_split_names_parse_as_extracted_files():
    import csv
    from pathlib import Path

    from featstore.corpora.pavoque import _EXTRACTED_RE

    split_dir = Path(__file__).resolve().parents[2].parent / "shared" / "paper" / "split_id" / "DE_PAVOQUE"
    n = 0
    for path in sorted(split_dir.glob("*/metadata_fold*.csv")):
        with path.open(encoding="utf-8") as handle:
            for record in csv.DictReader(handle):
                match = _EXTRACTED_RE.match(record["file"].removesuffix(".wav"))
                assert match is not None and match["style"] == record["answer"].lower()
                n += 1
    assert n == 5 * 2000


def test_extracted_names_outside_the_scheme_are_ignored(tmp_path):
    write_tone(tmp_path / "spike0013-angry.wav", 0.1, SR)
    for stray in ("copy of spike0013-angry.wav", "spike0013-angry-2.wav", "x.y-sad.wav"):
        write_tone(tmp_path / stray, 0.1, SR)
    with pytest.warns(CorpusWarning, match=r"3 wav file\(s\) not named"):
        frame = read_pavoque(tmp_path, layout="extracted")
    assert frame["utt_id"].to_list() == ["spike0013-angry"]


def test_unsafe_prompt_is_flagged_and_never_written_out_of_the_folder(tmp_path):
    write_tone(tmp_path / "pavoque-angry.flac", 1.0, SR, subtype="PCM_16")
    items = [{"prompt": "spike0001", "text": "a", "style": "angry", "start": 0.1, "end": 0.4},
             {"prompt": "../../evil", "text": "b", "style": "angry", "start": 0.5, "end": 0.8}]
    (tmp_path / "pavoque-angry.yaml").write_text(yaml.safe_dump(items))
    with pytest.warns(CorpusWarning, match="cannot be used as file names.*evil"):
        frame = read_pavoque(tmp_path)
    with pytest.warns(CorpusWarning, match="not written.*evil"):
        written = extract_release(frame, tmp_path / "out" / "x")
    assert [p.name for p in written] == ["spike0001-angry.wav"]
    assert sorted(p.name for p in tmp_path.rglob("*evil*")) == []
