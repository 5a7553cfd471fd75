"""featstore.audio: decoding, stretches, resampling and every bad-input case."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest
import soundfile as sf

from featstore import audio
from featstore.audio import (
    AudioError,
    bad_files_path,
    check_audio,
    check_inside,
    load_audio,
    load_bad_files,
    load_row,
    probe_duration,
    save_bad_files,
)
from featstore.corpora.testing import tone, write_tone
from featstore.manifest import make_manifest


def _row(utt_id, path, start=None, end=None):
    return {"utt_id": utt_id, "corpus": "t", "language": "en", "speaker": "s", "emotion": "sad",
            "label": "sad", "path": str(path), "start": start, "end": end, "duration": 1.0,
            "sample_rate": 16000}


def test_load_wav_16k_identity(tmp_path):
    wave = tone(0.1, 16000, 300.0)
    sf.write(tmp_path / "a.wav", wave, 16000, subtype="FLOAT")
    out = load_audio(tmp_path / "a.wav")
    assert out.dtype == np.float32 and out.shape == (1600,)
    np.testing.assert_array_equal(out, wave)


def test_pcm16_scaled_to_unit_range(tmp_path):
    path = write_tone(tmp_path / "a.wav", 0.1, amplitude=0.5)
    out = load_audio(path)
    assert abs(np.abs(out).max() - 0.5) < 1e-3


def test_stereo_downmixed_to_mean(tmp_path):
    left, right = tone(0.1, 16000, 200.0, 0.4), tone(0.1, 16000, 500.0, 0.2)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    out = load_audio(tmp_path / "st.wav")
    np.testing.assert_allclose(out, (left + right) / 2, atol=1e-7)


def test_resample_44k1_to_16k_length_and_content(tmp_path):
    path = write_tone(tmp_path / "long.flac", 1.0, 44100, freq_hz=440.0, amplitude=0.5)
    out = load_audio(path)
    assert out.shape == (16000,)
    # a 440 Hz sine stays a 440 Hz sine: compare with the analytic signal away from the edges
    expected = tone(1.0, 16000, 440.0, 0.5)
    np.testing.assert_allclose(out[500:-500], expected[500:-500], atol=2e-3)
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 16000 / out.size - 440.0) <= 1.0


def test_stretch_of_flac_returns_exact_samples(tmp_path):
    sr = 44100
    ramp = ((np.arange(3 * sr) % 20000) - 10000).astype(np.int16)  # known 16-bit samples
    sf.write(tmp_path / "ramp.flac", ramp, sr, subtype="PCM_16")
    out = load_audio(tmp_path / "ramp.flac", start_s=1.0, end_s=1.5, sample_rate_hz=sr)
    np.testing.assert_array_equal(out, ramp[sr: sr + sr // 2].astype(np.float32) / 32768)
    resampled = load_audio(tmp_path / "ramp.flac", start_s=1.0, end_s=1.5)
    assert resampled.shape == (8000,)


def test_stretch_only_decodes_its_frames(tmp_path, monkeypatch):
    sr = 44100
    write_tone(tmp_path / "long.flac", 4.0, sr)
    asked = []
    original = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        asked.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    out = load_audio(tmp_path / "long.flac", start_s=2.0, end_s=2.25)
    assert asked == [int(0.25 * sr)]
    assert out.shape == (4000,)


def test_probe_duration(tmp_path):
    path = write_tone(tmp_path / "a.flac", 0.5, 44100)
    duration_s, sr = probe_duration(path)
    assert sr == 44100 and abs(duration_s - 0.5) < 1e-6
    with pytest.raises(AudioError, match="missing"):
        probe_duration(tmp_path / "nope.wav")


def test_load_row_uses_start_end(tmp_path):
    sr = 16000
    wave = np.linspace(-0.5, 0.5, sr, dtype=np.float32)
    sf.write(tmp_path / "r.wav", wave, sr, subtype="FLOAT")
    out = load_row(_row("u", tmp_path / "r.wav", 0.25, 0.5))
    np.testing.assert_array_equal(out, wave[4000:8000])
    full = load_row(_row("u", tmp_path / "r.wav"))
    assert full.shape == (sr,)


# ---------------------------------------------------------------- bad input
def _truncated(tmp_path):
    path = write_tone(tmp_path / "trunc.wav", 0.5)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_flac(tmp_path):
    path = write_tone(tmp_path / "trunc.flac", 1.0, 44100, freq_hz=300.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _garbage(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk-not-audio")
    return path


def _empty(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    return path


def _short(tmp_path):
    return write_tone(tmp_path / "short.wav", 399 / 16000)


def _short_44k(tmp_path):
    # 1000 samples at 44.1 kHz are 362 samples at 16 kHz: below one model frame
    return write_tone(tmp_path / "short44.wav", 1000 / 44100, 44100)


def _nan(tmp_path):
    wave = tone(0.1)
    wave[10] = np.nan
    sf.write(tmp_path / "nan.wav", wave, 16000, subtype="FLOAT")
    return tmp_path / "nan.wav"


def _inf(tmp_path):
    wave = tone(0.1)
    wave[5] = np.inf
    sf.write(tmp_path / "inf.wav", wave, 16000, subtype="FLOAT")
    return tmp_path / "inf.wav"


def _silent(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros(1600, dtype=np.float32), 16000)
    return tmp_path / "silent.wav"


def _clipped(tmp_path):
    wave = np.where(np.arange(1600) % 50 < 25, 1.0, -1.0).astype(np.float32)
    sf.write(tmp_path / "clip.wav", wave, 16000, subtype="FLOAT")
    return tmp_path / "clip.wav"


def _missing(tmp_path):
    return tmp_path / "missing.wav"


BAD_CASES = {
    "truncated": (_truncated, "truncated"),
    "truncated_flac": (_truncated_flac, "truncated|unreadable"),
    "garbage": (_garbage, "unreadable"),
    "empty": (_empty, "empty"),
    "short": (_short, "too short: 399 samples"),
    "short_44k": (_short_44k, "too short: 36"),
    "nan": (_nan, "non-finite"),
    "inf": (_inf, "non-finite"),
    "silent": (_silent, "silent"),
    "clipped": (_clipped, "clipping only"),
    "missing": (_missing, "missing file"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_raises_audio_error_naming_file(tmp_path, case):
    make, reason = BAD_CASES[case]
    path = make(tmp_path)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.path == str(path)
    assert re.search(reason, err.reason)
    assert str(path) in str(err)


def test_exactly_400_samples_is_enough(tmp_path):
    assert load_audio(write_tone(tmp_path / "ok.wav", 400 / 16000)).shape == (400,)


def test_stretch_beyond_file_end(tmp_path):
    path = write_tone(tmp_path / "a.wav", 1.0)
    with pytest.raises(AudioError, match="after the end of the file"):
        load_audio(path, start_s=0.5, end_s=2.0)
    with pytest.raises(AudioError, match="bad stretch"):
        load_audio(path, start_s=0.5, end_s=0.4)


def test_check_inside(tmp_path):
    root = tmp_path / "corpus"
    inside = write_tone(root / "spk" / "a.wav", 0.1)
    outside = write_tone(tmp_path / "elsewhere.wav", 0.1)
    assert check_inside(inside, root) == inside.resolve()
    with pytest.raises(AudioError, match="outside the corpus root"):
        check_inside(root / ".." / "elsewhere.wav", root)
    link = root / "link.wav"
    link.symlink_to(outside)
    with pytest.raises(AudioError, match="outside the corpus root"):
        load_audio(link, root=root)
    assert load_audio(inside, root=root).shape == (1600,)


def test_check_audio_reports_every_bad_file_and_goes_on(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    rows = [_row("good0", write_tone(root / "good0.wav", 0.1))]
    for case, (make, _) in sorted(BAD_CASES.items()):
        rows.append(_row(case, make(root)))
    rows.append(_row("outside", write_tone(tmp_path / "outside.wav", 0.1)))
    rows.append(_row("good1", write_tone(root / "good1.wav", 0.1)))
    rows.append(_row("late_stretch", root / "good1.wav", 0.05, 3.0))
    bad = check_audio(make_manifest(rows), root=root, progress=False)
    assert bad.columns == ["utt_id", "path", "reason"]
    reasons = dict(zip(bad["utt_id"], bad["reason"], strict=True))
    assert set(reasons) == set(BAD_CASES) | {"outside", "late_stretch"}
    for case, (_, reason) in BAD_CASES.items():
        assert re.search(reason, reasons[case])
    assert "outside the corpus root" in reasons["outside"]


def test_check_audio_survives_unexpected_errors(tmp_path, monkeypatch):
    good = write_tone(tmp_path / "g.wav", 0.1)
    calls = []

    def boom(row, **kwargs):
        calls.append(row["utt_id"])
        if row["utt_id"] == "a":
            raise RuntimeError("odd")
        return np.zeros(400, dtype=np.float32)

    monkeypatch.setattr(audio, "load_row", boom)
    bad = check_audio(make_manifest([_row("a", good), _row("b", good)]), progress=False)
    assert calls == ["a", "b"]
    assert bad["utt_id"].to_list() == ["a"] and "RuntimeError: odd" in bad["reason"][0]


def test_bad_files_round_trip(tmp_path):
    manifest = tmp_path / "manifests" / "esd.parquet"
    assert load_bad_files(manifest) == {}
    bad = pl.DataFrame({"utt_id": ["x", "y"], "path": ["/a", "/b"], "reason": ["empty: no", "silent"]})
    path = save_bad_files(bad, manifest, "abc")
    assert path == bad_files_path(manifest) == tmp_path / "manifests" / "esd.bad.parquet"
    assert load_bad_files(manifest) == {"x": "empty: no", "y": "silent"}
    assert audio.bad_files_fingerprint(manifest) == "abc"
