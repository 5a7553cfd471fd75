"""The SpeechBrain folder of wavlm-emo, end to end, against an independent re-implementation."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.nn.functional as F

from featstore.models import ModelLoadError, load_model
from featstore.models import speechbrain as sb
from featstore.models.testing import build_tiny_model, save_tiny_model, tiny_config


@pytest.fixture()
def sb_folder(tmp_path, monkeypatch):
    for var in ("HF_HOME", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("CROSSLING_MODELS", str(tmp_path / "models"))
    return save_tiny_model(tmp_path / "models" / "wavlm-emo", "wavlm", "speechbrain", seed=4)


def test_folder_end_to_end(sb_folder):
    loaded = load_model("wavlm-emo")
    assert (loaded.alias, loaded.language, loaded.format, loaded.family) == (
        "wavlm-emo",
        "en",
        "speechbrain",
        "wavlm",
    )
    extras = loaded.extras

    # frame classifier: the single (4, hidden) weight of model.ckpt, no bias
    head = extras["frame_classifier"]
    stored = torch.load(sb_folder / "model.ckpt", weights_only=True)["0.w.weight"]
    assert isinstance(head, torch.nn.Linear) and head.bias is None
    assert tuple(head.weight.shape) == (4, 32)
    assert torch.equal(head.weight, stored)
    # label encoder a/n/h/s -> canonical names, in the file's index order
    assert extras["labels"] == {0: "angry", 1: "neutral", 2: "happy", 3: "sad"}
    assert extras["label_codes"] == {0: "a", 1: "n", 2: "h", 3: "s"}
    assert extras["output_norm"] is True
    assert extras["input_norm"]["norm_type"] == "sentence"
    assert extras["input_norm"]["std_norm"] is False
    assert "glob_mean" in extras["input_norm"]["stats"]
    assert (extras["frame_window"], extras["frame_stride"]) == (1, 1)
    assert loaded.do_normalize is False  # microsoft/wavlm-large's extractor config

    # the encoder equals the saved WavLM
    reference = build_tiny_model("wavlm", "speechbrain", tiny_config("wavlm"), seed=4)
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.encoder.state_dict()[key], value), key

    # SpeechBrain's pipeline, written out independently: mean removal, WavLM,
    # F.layer_norm over (T, D), linear head, argmax
    wave = torch.randn(24000, generator=torch.Generator().manual_seed(0)) * 0.1 + 0.3
    with torch.no_grad():
        x = (wave - wave.mean())[None]
        out = reference(x).last_hidden_state
        out = F.layer_norm(out, out.shape[1:])
        expected = (out @ stored.T).argmax(-1)[0]
        ours_in = sb.input_norm(wave, extras["input_norm"])[None]
        ours = loaded.encoder(ours_in).last_hidden_state
        ours = sb.output_norm(ours[0])
        got = head(ours).argmax(-1)
    assert torch.equal(got, expected)
    assert got.shape == (74,)  # 1.5 s at 16 kHz -> 74 frames of 20 ms


def test_output_norm_masked_batch_equals_each_clip_alone():
    gen = torch.Generator().manual_seed(1)
    clips = [torch.randn(7, 5, generator=gen), torch.randn(4, 5, generator=gen)]
    batch = torch.zeros(2, 7, 5)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    for i, clip in enumerate(clips):
        batch[i, : len(clip)] = clip
        mask[i, : len(clip)] = True
    normed = sb.output_norm(batch, mask)
    for i, clip in enumerate(clips):
        torch.testing.assert_close(normed[i, : len(clip)], F.layer_norm(clip, clip.shape))
        assert torch.all(normed[i, len(clip) :] == 0)


@pytest.mark.parametrize("prefix", ["model.", "", "model.wavlm.", "wavlm."])
def test_wrapper_prefixes_are_tolerated(sb_folder, prefix):
    raw = torch.load(sb_folder / "wav2vec2.ckpt", weights_only=True)
    torch.save({prefix + k[len("model.") :]: v for k, v in raw.items()}, sb_folder / "wav2vec2.ckpt")
    loaded = load_model(str(sb_folder))
    assert loaded.extras["load_report"]["loaded"] == len(loaded.encoder.state_dict())


def test_missing_wavlm_weight_is_named(sb_folder):
    raw = torch.load(sb_folder / "wav2vec2.ckpt", weights_only=True)
    del raw["model.encoder.layers.0.attention.rel_attn_embed.weight"]
    torch.save(raw, sb_folder / "wav2vec2.ckpt")
    with pytest.raises(ModelLoadError, match="rel_attn_embed"):
        load_model("wavlm-emo")


def test_classifier_key_variants_and_errors(sb_folder):
    weight = torch.load(sb_folder / "model.ckpt", weights_only=True)["0.w.weight"]
    torch.save({"w.weight": weight}, sb_folder / "model.ckpt")
    assert torch.equal(load_model("wavlm-emo").extras["frame_classifier"].weight, weight)
    torch.save({"0.w.weight": weight[:3]}, sb_folder / "model.ckpt")
    with pytest.raises(ModelLoadError, match=r"expected \(4, 32\)"):
        load_model("wavlm-emo")
    torch.save({"a": weight, "b": weight}, sb_folder / "model.ckpt")
    with pytest.raises(ModelLoadError, match="exactly one 2-D weight"):
        load_model("wavlm-emo")


def test_hyperparams_output_norm_and_defaults(sb_folder):
    path = sb_folder / "hyperparams.yaml"
    path.write_text(path.read_text().replace("output_norm: True", "output_norm: False"))
    assert load_model("wavlm-emo").extras["output_norm"] is False
    path.unlink()  # without hyperparams.yaml: the published model's settings
    extras = load_model("wavlm-emo").extras
    assert extras["output_norm"] is True and extras["input_norm"]["std_norm"] is False


def test_label_encoder_variants(tmp_path):
    path = tmp_path / "label_encoder.txt"
    path.write_text("'happy' => 1\n'sad' => 0\n================\n'starting_index' => 0\n")
    labels, codes = sb.parse_label_encoder(path)
    assert labels == {0: "sad", 1: "happy"} and codes == {0: "sad", 1: "happy"}
    path.write_text("'x' => 0\n")
    with pytest.raises(ModelLoadError, match="not one of"):
        sb.parse_label_encoder(path)
    path.write_text("'a' => 0\n'n' => 2\n")
    with pytest.raises(ModelLoadError, match="0..n-1"):
        sb.parse_label_encoder(path)


def test_config_fallbacks(sb_folder, tmp_path):
    (sb_folder / "config.json").unlink()
    config, where = sb.speechbrain_config(sb_folder)
    assert "built-in" in where
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (24, 1024, 16)
    assert config.feat_extract_norm == "layer" and config.do_stable_layer_norm is True
    assert list(config.conv_kernel) == [10, 3, 3, 3, 3, 2, 2]
    # a microsoft/wavlm-large config in the local Hugging Face cache wins over the built-in one
    snap = tmp_path / "hub" / "models--microsoft--wavlm-large" / "snapshots" / ("e" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps({**tiny_config("wavlm").to_dict(), "num_hidden_layers": 3}))
    config, where = sb.speechbrain_config(sb_folder)
    assert where == str(snap / "config.json") and config.num_hidden_layers == 3


def test_input_norm_ckpt_with_custom_class_is_refused(sb_folder):
    torch.save({"count": 0, "obj": torch.nn.Identity()}, sb_folder / "input_norm.ckpt")
    with pytest.raises(ModelLoadError, match="weights_only"):
        load_model("wavlm-emo")


def test_fingerprint_covers_classifier(sb_folder):
    before = load_model("wavlm-emo").fingerprint
    weight = torch.load(sb_folder / "model.ckpt", weights_only=True)["0.w.weight"]
    torch.save({"0.w.weight": weight * 2}, sb_folder / "model.ckpt")
    os.utime(sb_folder / "model.ckpt", ns=(1, 1))  # same size: make the memo's mtime differ for sure
    assert load_model("wavlm-emo").fingerprint != before


def test_speechbrain_folder_in_hf_cache(tmp_path, monkeypatch):
    for var in ("HF_HOME", "HUGGINGFACE_HUB_CACHE", "CROSSLING_MODELS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CROSSLING_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--speechbrain--emotion-diarization-wavlm-large"
    snap = save_tiny_model(repo / "snapshots" / ("f" * 40), "wavlm", "speechbrain")
    loaded = load_model("wavlm-emo", device="cpu")
    assert loaded.path == snap and loaded.source == "speechbrain/emotion-diarization-wavlm-large"
    assert next(loaded.extras["frame_classifier"].parameters()).device.type == "cpu"


def test_speechbrain_own_config_json_is_not_taken_for_the_wavlm(sb_folder):
    # the hub repository ships SpeechBrain's own few-byte config.json (no model_type)
    wavlm = json.loads((sb_folder / "config.json").read_text())
    (sb_folder / "config.json").write_text(json.dumps({"speechbrain_interface": "Speech_Emotion_Diarization"}))
    config, where = sb.speechbrain_config(sb_folder)
    assert "built-in" in where and config.model_type == "wavlm"
    assert wavlm["model_type"] == "wavlm"
