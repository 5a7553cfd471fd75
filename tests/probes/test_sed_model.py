"""The paper's diarization model end to end on a tiny SpeechBrain-format checkpoint, and
synthetic ZED-format utterances (``concatenate_for_sed``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from featstore.audio import load_row
from featstore.corpora.testing import write_tone
from featstore.corpora.zed import read_zed
from featstore.manifest import make_manifest, save_manifest
from featstore.models import load_model
from featstore.models.testing import save_tiny_model
from featstore.paths import manifest_path
from probes.sed import (
    ConcatConfig,
    ModelRunConfig,
    concatenate_for_sed,
    eder,
    frame_labels,
    frames_to_segments,
    pad_like_recipe,
    recipe_frame_count,
    reference_segments,
    run_model,
)

SB_CODES = {"a": "angry", "h": "happy", "n": "neutral", "s": "sad"}


def _utterance_manifest(root: Path, n_per_emotion: int = 2) -> pl.DataFrame:
    rows = []
    freqs = {"neutral": 200.0, "angry": 400.0, "happy": 600.0, "sad": 150.0}
    for spk in ("s1", "s2"):
        for emo, freq in freqs.items():
            for k in range(n_per_emotion):
                dur = 0.4 + 0.1 * k
                path = write_tone(root / spk / f"{emo}{k}.wav", dur, 16000, freq * (1 + 0.05 * k),
                                  amplitude=0.1 if emo == "neutral" else 0.4)
                rows.append({"utt_id": f"{spk}_{emo}_{k}", "corpus": "toy", "language": "en", "speaker": spk,
                             "emotion": emo, "label": emo, "path": str(path), "duration": dur,
                             "sample_rate": 16000})
    return make_manifest(rows)


@pytest.fixture(scope="module")
def zed_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A cache root with a prepared ZED-format corpus made by concatenate_for_sed."""
    base = tmp_path_factory.mktemp("zed")
    manifest = _utterance_manifest(base / "toy")
    json_path = concatenate_for_sed(manifest, base / "zed", load_row, ConcatConfig(seed=3))
    zed = read_zed(json_path.parent)
    root = base / "cache"
    save_manifest(zed, manifest_path("zed", root))
    return root, json_path


@pytest.fixture(scope="module")
def tiny_sb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("m") / "tiny-sb", "wavlm", "speechbrain", language="en")


def test_concatenation_in_zed_format(zed_corpus: tuple[Path, Path]) -> None:
    _, json_path = zed_corpus
    data = json.loads(json_path.read_text())
    assert len(data) == 12  # 2 speakers x 3 emotions x 2 utterances, one each
    for utt_id, item in data.items():
        wave, sr = sf.read(json_path.parent / item["wav"].replace("datafolder/", ""))
        assert sr == 16000 and item["duration"] == pytest.approx(len(wave) / sr)
        (event,) = item["emotion"]
        assert 0 < event["start"] < event["end"] < item["duration"]
        first, src_emo, last = item["sources"]
        assert "neutral" in first and "neutral" in last and src_emo.split("_")[1] == event["emo"]
        assert src_emo.split("_")[0] == first.split("_")[0]  # one speaker
        # the emotional part was scaled to the first neutral part's loudness (RMS)
        cut = int(round(event["start"] * sr)), int(round(event["end"] * sr))
        rms = lambda x: np.sqrt(np.mean(np.square(x)))  # noqa: E731
        assert rms(wave[cut[0]:cut[1]]) == pytest.approx(rms(wave[:cut[0]]), rel=0.02)
        assert utt_id.startswith("cat")
    # the ZED reader reads it back with the same events
    zed = read_zed(json_path.parent)
    assert sorted(zed["emotion"].unique().to_list()) == ["angry", "happy", "sad"]


def test_concat_is_seeded(tmp_path: Path) -> None:
    manifest = _utterance_manifest(tmp_path / "toy", 1)
    a = json.loads(concatenate_for_sed(manifest, tmp_path / "a", load_row, ConcatConfig(seed=1)).read_text())
    b = json.loads(concatenate_for_sed(manifest, tmp_path / "b", load_row, ConcatConfig(seed=1)).read_text())
    assert a == b
    with pytest.raises(ValueError, match="pattern"):
        ConcatConfig(patterns=("emo_emo",))


def _independent_labels(folder: Path, wave: np.ndarray) -> list[str]:
    """SpeechBrain's inference written out from the files, without featstore's helpers."""
    from transformers import WavLMConfig, WavLMModel

    config = WavLMConfig.from_json_file(str(folder / "config.json"))
    model = WavLMModel(config).eval()
    state = torch.load(folder / "wav2vec2.ckpt", weights_only=True)
    state = {k.removeprefix("model."): v for k, v in state.items()}
    if any(k.endswith("weight_g") for k in state):
        state = {k.replace("weight_g", "parametrizations.weight.original0")
                 .replace("weight_v", "parametrizations.weight.original1"): v for k, v in state.items()}
    missing, _ = model.load_state_dict(state, strict=False)
    assert not [k for k in missing if "masked_spec_embed" not in k]
    weight = torch.load(folder / "model.ckpt", weights_only=True)["0.w.weight"]
    codes = {}
    for line in (folder / "label_encoder.txt").read_text().splitlines():
        m = re.fullmatch(r"'(\w)' => (\d+)", line.strip())
        if m:
            codes[int(m.group(2))] = SB_CODES[m.group(1)]
    x = torch.as_tensor(wave, dtype=torch.float32)[None]
    x = x - x.mean(dim=1, keepdim=True)  # InputNormalization(sentence, std_norm=False)
    with torch.no_grad():
        out = model(x).last_hidden_state
        out = F.layer_norm(out, out.shape[1:])  # SpeechBrain's output_norm
        logits = out @ weight.T
    return [codes[int(i)] for i in logits.argmax(-1)[0]]


def test_frame_labels_match_speechbrain_inference(tiny_sb: Path, zed_corpus: tuple[Path, Path]) -> None:
    root, _ = zed_corpus
    loaded = load_model(str(tiny_sb), language="en")
    manifest = pl.read_parquet(manifest_path("zed", root))
    for row in manifest.head(3).to_dicts():
        wave = load_row(row)
        ours = frame_labels(loaded, wave)
        assert len(ours) == (len(wave) - 400) // 320 + 1
        assert ours == _independent_labels(tiny_sb, wave)


def test_run_model_end_to_end(tiny_sb: Path, zed_corpus: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = zed_corpus
    paths = run_model(ModelRunConfig(model=str(tiny_sb)), root=root, out_dir=tmp_path / "out")
    per_utt = pl.read_parquet(paths["per_utterance_parquet"])
    manifest = pl.read_parquet(manifest_path("zed", root))
    assert per_utt.height == manifest.height
    assert per_utt["model_fingerprint"].n_unique() == 1 and per_utt["manifest_fingerprint"][0]
    loaded = load_model(str(tiny_sb), language="en")
    for row in manifest.to_dicts()[:4]:
        got = per_utt.filter(pl.col("utt_id") == row["utt_id"]).row(0, named=True)
        labels = pad_like_recipe(frame_labels(loaded, load_row(row)), recipe_frame_count(row["duration"]))
        ref = reference_segments(json.loads(row["events"]), row["duration"])
        want = eder(frames_to_segments(labels, 0.02, 0.02), ref, row["duration"])
        assert got["eder"] == want.eder
        assert got["missed_s"] + got["false_alarm_s"] + got["overlap_s"] + got["confusion_s"] == pytest.approx(
            got["eder"] * got["duration"], abs=1e-9)
    table = pl.read_csv(paths["table_iv"])
    assert table["emotion"].to_list() == ["angry", "happy", "sad", "average"]
    for emo in ("angry", "happy", "sad"):
        expect = per_utt.filter(pl.col("emotion") == emo)["eder"].to_numpy().mean()
        assert table.filter(pl.col("emotion") == emo)["tiny-sb_eder"][0] == pytest.approx(expect, abs=1e-4)
    assert table["tiny-sb_eder"][3] == pytest.approx(per_utt["eder"].mean(), abs=1e-4)
    assert paths["timelines_png"].stat().st_size > 0 and paths["timelines_svg"].exists()
    assert pl.read_csv(paths["per_utterance_csv"]).height == per_utt.height


@pytest.mark.slow  # importing cli loads every command module (~10 s)
def test_model_command_and_errors(tiny_sb: Path, zed_corpus: tuple[Path, Path], tmp_path: Path) -> None:
    from cli import app

    root, _ = zed_corpus
    runner = CliRunner()
    res = runner.invoke(app, ["probes", "sed", "model", "--model", str(tiny_sb), "--cache", str(root),
                              "--out", str(tmp_path / "o"), "--limit", "2"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "table_iv.csv").exists()
    res = runner.invoke(app, ["probes", "sed", "model", "--model", str(tmp_path / "nope"), "--cache", str(root)])
    assert res.exit_code == 2 and "error" in res.output
    res = runner.invoke(app, ["probes", "sed", "model", "--model", str(tiny_sb), "--cache", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "manifest" in res.output


def test_non_diarization_model_is_refused(tmp_path: Path) -> None:
    folder = save_tiny_model(tmp_path / "plain", "wavlm", "model", language="en")
    loaded = load_model(str(folder), language="en")
    with pytest.raises(ValueError, match="not an emotion-diarization model"):
        frame_labels(loaded, np.zeros(16000, dtype=np.float32))
