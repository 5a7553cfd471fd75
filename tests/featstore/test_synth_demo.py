"""The eSpeak NG demo corpus: layout, readers, determinism, durations and emotional prosody."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import soundfile as sf
from typer.testing import CliRunner

from featstore.corpora import read_esd, read_table
from featstore.synth import (
    EspeakError,
    EspeakSynth,
    Prosody,
    SynthConfig,
    plan_utterances,
    render,
    synthesize_demo,
)

SMALL = dict(languages=("cn", "de"), n_speakers=2, per_emotion=1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return synthesize_demo(SynthConfig(out=out, **SMALL)), out


def test_esd_layout_and_the_esd_reader(demo):
    folders, out = demo
    assert folders == {"cn": out / "cn", "de": out / "de"}
    assert sorted(p.relative_to(out / "cn").as_posix() for p in (out / "cn").rglob("*.wav")) == [
        f"{spk}/{folder}/{spk}_{number:06d}.wav"
        for spk in ("0001", "0002")
        for folder, number in (("Angry", 351), ("Happy", 701), ("Neutral", 1), ("Sad", 1051))
    ]
    manifest = read_esd(out / "cn")
    assert manifest.height == 8
    assert set(manifest["language"]) == {"cn"} and set(manifest["speaker"]) == {"0001", "0002"}
    assert sorted(set(manifest["emotion"])) == ["angry", "happy", "neutral", "sad"]
    assert set(manifest["text"]) == {"今天的天气非常好。"}
    assert set(manifest["sample_rate"]) == {16000}
    german = read_esd(out / "de", language="de")
    assert set(german["language"]) == {"de"} and set(german["speaker"]) == {"0021", "0022"}


def test_manifest_csv_reads_with_the_table_reader(demo):
    folders, out = demo
    table = read_table(folders["de"] / "manifest.csv", name="demo-de")
    esd = read_esd(out / "de", language="de")
    assert sorted(table["utt_id"]) == sorted(esd["utt_id"])
    joined = table.join(esd, on="utt_id", suffix="_esd")
    assert (joined["emotion"] == joined["emotion_esd"]).all()
    assert (joined["path"] == joined["path_esd"]).all()
    assert set(table["language"]) == {"de"} and set(table["gender"]) == {"M", "F"}


def test_durations_and_format(demo):
    _, out = demo
    for path in out.rglob("*.wav"):
        info = sf.info(str(path))
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        assert 0.5 < info.duration < 6.0, path


def test_same_seed_same_bytes_in_any_order(demo, tmp_path):
    folders, out = demo
    again = synthesize_demo(SynthConfig(out=tmp_path / "again", **SMALL))
    for code, folder in folders.items():
        files = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(again[code]) for p in again[code].rglob("*") if p.is_file())
        for rel in files:
            assert (folder / rel).read_bytes() == (again[code] / rel).read_bytes(), rel
    # one utterance alone gives the bytes it has inside the corpus
    config = SynthConfig(out=out, **SMALL)
    utt = plan_utterances(config, "de")[-1]
    with EspeakSynth() as synth:
        wave = render(synth, utt, config)
    buffer = io.BytesIO()
    sf.write(buffer, wave, 16000, subtype="PCM_16", format="WAV")
    assert buffer.getvalue() == (folders["de"] / utt.relpath).read_bytes()
    other = synthesize_demo(SynthConfig(out=tmp_path / "other", seed=1, languages=("de",), n_speakers=1,
                                        per_emotion=1))
    rel = "0021/Angry/0021_000351.wav"
    assert (other["de"] / rel).read_bytes() != (folders["de"] / rel).read_bytes()


def median_f0_hz(wave: np.ndarray, sr: int) -> float:
    """Median F0 of voiced 40 ms frames by normalised autocorrelation (60-500 Hz)."""
    frame, hop = int(0.04 * sr), int(0.01 * sr)
    f0 = []
    for start in range(0, len(wave) - frame, hop):
        x = wave[start:start + frame] - wave[start:start + frame].mean()
        if np.sqrt(np.mean(x ** 2)) < 0.02:
            continue
        ac = np.correlate(x, x, mode="full")[frame - 1:]
        lags = np.arange(sr // 500, sr // 60)
        best = lags[np.argmax(ac[lags])]
        if ac[best] / ac[0] > 0.6:
            f0.append(sr / best)
    return float(np.median(f0))


def test_emotions_differ_in_prosody(demo):
    _, out = demo
    for code, speakers in (("cn", ("0001", "0002")), ("de", ("0021", "0022"))):
        for spk in speakers:
            waves = {}
            for emotion, folder, number in (("angry", "Angry", 351), ("sad", "Sad", 1051),
                                            ("happy", "Happy", 701), ("neutral", "Neutral", 1)):
                waves[emotion], sr = sf.read(str(out / code / spk / folder / f"{spk}_{number:06d}.wav"))
            rms = {e: float(np.sqrt(np.mean(w ** 2))) for e, w in waves.items()}
            dur = {e: len(w) / sr for e, w in waves.items()}
            # same sentence: sad is slower and quieter than angry, and than neutral
            assert dur["sad"] > dur["neutral"] > dur["angry"], (code, spk, dur)
            assert rms["sad"] < rms["neutral"] < rms["angry"], (code, spk, rms)
            f0 = {e: median_f0_hz(w, sr) for e, w in waves.items()}
            assert f0["happy"] > f0["neutral"] > f0["sad"], (code, spk, f0)


def test_missing_voice_and_library_are_clear_errors(tmp_path):
    with EspeakSynth() as synth, pytest.raises(EspeakError, match="no voice 'xx-nonexistent'"):
        synth.synthesize("hello", "xx-nonexistent", Prosody(), 0)
    broken = EspeakSynth(library_path=tmp_path / "libespeak-ng.so", data_path=tmp_path)
    with pytest.raises(EspeakError, match="library not found"):
        broken.synthesize("hello", "en", Prosody(), 0)


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "de").mkdir()
    (tmp_path / "de" / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not written by"):
        synthesize_demo(SynthConfig(out=tmp_path, languages=("de",), n_speakers=1, per_emotion=1))
    assert (tmp_path / "de" / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("kwargs", [dict(languages=("fr",)), dict(per_emotion=0), dict(n_speakers=9),
                                    dict(layout="flat"), dict(emotions=("bored",))])
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        SynthConfig(**kwargs)


def test_synth_command_manifest_layout(tmp_path):
    from cli import featstore_app

    result = CliRunner().invoke(featstore_app, ["synth", "--out", str(tmp_path), "--language", "yue",
                                                "--n-speakers", "1", "--per-emotion", "2",
                                                "--layout", "manifest"])
    assert result.exit_code == 0, result.output
    assert "8 utterances" in result.output
    table = pl.read_csv(tmp_path / "yue" / "manifest.csv")
    assert table.columns[:6] == ["utt_id", "path", "label", "speaker", "language", "text"]
    assert table.height == 8 and set(table["language"]) == {"yue"}
    assert all((tmp_path / "yue" / Path(p)).is_file() for p in table["path"])
    assert all(p.startswith("wav/") for p in table["path"])
    bad = CliRunner().invoke(featstore_app, ["synth", "--out", str(tmp_path), "--layout", "flat"])
    assert bad.exit_code == 2
    (tmp_path / "a_file").write_text("x")
    bad = CliRunner().invoke(featstore_app, ["synth", "--out", str(tmp_path / "a_file"), "--language", "de",
                                             "--n-speakers", "1", "--per-emotion", "1"])
    assert bad.exit_code == 2 and "a_file" in bad.output
