"""Whisper's encoder loads from every on-disk form transformers writes; registry aliases."""

from __future__ import annotations

import json

import pytest
import torch

from featstore.models import MODELS, ModelLoadError, load_model
from featstore.models.whisper import (
    SAMPLES_PER_FRAME,
    WhisperEncoderOnly,
    build_tiny_whisper,
    save_tiny_whisper,
    tiny_whisper_config,
)


def _reference_encoder_state(fmt: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The encoder weights of the random model save_tiny_whisper wrote (rebuilt independently)."""
    model = build_tiny_whisper(fmt, tiny_whisper_config(architectures=None), seed=seed)
    enc = model if fmt == "encoder" else model.get_encoder()
    return {f"encoder.{k}": v for k, v in enc.state_dict().items()}


@pytest.mark.parametrize(("fmt", "safetensors", "shards"), [
    ("model", True, 1),           # WhisperModel, model.safetensors
    ("conditional", True, 3),     # WhisperForConditionalGeneration, sharded safetensors + index
    ("conditional", False, 1),    # pytorch_model.bin (read with weights_only=True)
    ("model", False, 2),          # sharded .bin + index
    ("encoder", True, 1),         # a bare WhisperEncoder
])
def test_every_format_loads_the_encoder_only(tmp_path, fmt, safetensors, shards):
    folder = save_tiny_whisper(tmp_path / "m", fmt, safetensors=safetensors, shards=shards, seed=3)
    loaded = load_model(folder, language="mul")
    assert loaded.family == "whisper"
    assert isinstance(loaded.encoder, WhisperEncoderOnly)
    assert loaded.n_hidden_states == 3 and loaded.hidden_size == 32
    assert loaded.do_normalize is False and loaded.sample_rate_hz == 16000
    assert not loaded.encoder.training
    want = _reference_encoder_state(fmt, seed=3)
    got = loaded.encoder.state_dict()
    assert set(got) == set(want)
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)
    dropped = loaded.extras["load_report"]["dropped"]
    assert (len(dropped) > 0) == (fmt != "encoder")
    assert all(k.removeprefix("model.").startswith(("decoder.", "proj_out.")) for k in dropped)
    assert len(loaded.weight_files) == shards and len(loaded.fingerprint) == 16
    assert loaded.provenance()["family"] == "whisper"


def test_front_end_from_preprocessor_config_or_num_mel_bins(tmp_path):
    with_pre = load_model(save_tiny_whisper(tmp_path / "a"), language="mul")
    assert with_pre.extras["feature_extractor_source"].endswith("preprocessor_config.json")
    without = load_model(save_tiny_whisper(tmp_path / "b", preprocessor=False, num_mel_bins=64), language="mul")
    assert without.extras["feature_extractor_source"].startswith("default")
    assert without.encoder.mel.feature_size == 64 and without.encoder.mel.n_samples == 30 * 16000
    assert with_pre.encoder.mel.hop_length * 2 == SAMPLES_PER_FRAME


def test_mismatched_preprocessor_is_refused(tmp_path):
    folder = save_tiny_whisper(tmp_path / "m")
    data = json.loads((folder / "preprocessor_config.json").read_text())
    data["feature_size"] = 128
    (folder / "preprocessor_config.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="feature_size 128.*num_mel_bins 80"):
        load_model(folder, language="mul")


def test_missing_encoder_weight_and_unsafe_bin_are_refused(tmp_path):
    folder = save_tiny_whisper(tmp_path / "m", "model", safetensors=False)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del state["encoder.layers.1.fc2.weight"]
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"encoder\.layers\.1\.fc2\.weight"):
        load_model(folder, language="mul")
    torch.save({"encoder.conv1.weight": torch.zeros(1), "evil": Exception("not a tensor")},
               folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="weights_only=True"):
        load_model(folder, language="mul")


def test_bad_whisper_config_names_the_file(tmp_path):
    folder = save_tiny_whisper(tmp_path / "m")
    data = json.loads((folder / "config.json").read_text())
    data["d_model"] = 30  # not divisible by 4 heads
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="config.json.*d_model 30"):
        load_model(folder, language="mul")


def test_registry_aliases_have_the_real_sizes():
    base, small = MODELS["whisper-base"], MODELS["whisper-small"]
    assert (base.hf_id, base.family, base.n_layers, base.hidden_size) == ("openai/whisper-base", "whisper", 6, 512)
    assert (small.hf_id, small.family, small.n_layers, small.hidden_size) == ("openai/whisper-small", "whisper", 12, 768)
    assert base.n_hidden_states == 7 and small.pretraining_languages == "99 languages" and small.language == "mul"
    # the base-size random config is the real whisper-base encoder's shape
    config = tiny_whisper_config("base")
    assert (config.encoder_layers, config.d_model, config.max_source_positions) == (6, 512, 1500)
