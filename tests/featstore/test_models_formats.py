"""Every real on-disk format x both families loads exactly, and bad checkpoints fail loudly."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Wav2Vec2ForCTC, Wav2Vec2ForPreTraining, Wav2Vec2Model, WavLMForCTC, WavLMModel

from featstore.models import ModelLoadError, fingerprint_files, load_model
from featstore.models.testing import build_tiny_model, save_tiny_model, tiny_config

FAMILIES = ("wav2vec2", "wavlm")
HF_FORMATS = ("model", "pretraining", "ctc")
PREFIX = {"wav2vec2": "wav2vec2.", "wavlm": "wavlm."}


def _wave(n_samples: int, seed: int) -> torch.Tensor:
    return torch.randn(1, n_samples, generator=torch.Generator().manual_seed(seed))


def _reference_encoder(family, fmt, path, safetensors):
    """The source model's encoder, read back by transformers itself where it can."""
    classes = {
        ("wav2vec2", "model"): Wav2Vec2Model,
        ("wav2vec2", "pretraining"): Wav2Vec2ForPreTraining,
        ("wav2vec2", "ctc"): Wav2Vec2ForCTC,
        ("wavlm", "model"): WavLMModel,
        ("wavlm", "ctc"): WavLMForCTC,
    }
    if (family, fmt) in classes:
        model = classes[(family, fmt)].from_pretrained(str(path)).eval()
    else:  # no WavLMForPreTraining in transformers: rebuild the saved model from its seed
        config = tiny_config(family)
        model = build_tiny_model(family, fmt, config, seed=0)
    if fmt == "model":
        return model
    return model.wav2vec2 if family == "wav2vec2" else model["wavlm"] if fmt == "pretraining" else model.wavlm


def _hidden(encoder, wave):
    with torch.no_grad():
        return encoder(wave, output_hidden_states=True).hidden_states


@pytest.mark.parametrize("safetensors", [True, False], ids=["safetensors", "bin"])
@pytest.mark.parametrize("fmt", HF_FORMATS)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_format_loads_every_encoder_weight(tmp_path, family, fmt, safetensors):
    path = save_tiny_model(tmp_path / "m", family, fmt, safetensors=safetensors)
    loaded = load_model(str(path), language="en")
    reference = _reference_encoder(family, fmt, path, safetensors)

    assert loaded.family == family
    assert type(loaded.encoder) is (Wav2Vec2Model if family == "wav2vec2" else WavLMModel)
    assert not loaded.encoder.training
    ours, theirs = loaded.encoder.state_dict(), reference.state_dict()
    assert set(ours) == set(theirs)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key

    wave = _wave(16000, seed=1)
    for a, b in zip(_hidden(loaded.encoder, wave), _hidden(reference, wave), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert loaded.n_hidden_states == 3 and loaded.hidden_size == 32
    # The real convolution schedule: one second at 16 kHz gives 49 frames (checkpoints.md).
    assert _hidden(loaded.encoder, wave)[0].shape == (1, 49, 32)


@pytest.mark.parametrize("safetensors", [True, False], ids=["safetensors", "bin"])
def test_sharded_checkpoints(tmp_path, safetensors):
    path = save_tiny_model(tmp_path / "m", "wav2vec2", "pretraining", safetensors=safetensors, shards=3)
    stem = "model.safetensors" if safetensors else "pytorch_model.bin"
    assert (path / f"{stem}.index.json").is_file() and not (path / stem).exists()
    loaded = load_model(str(path), language="de")
    reference = Wav2Vec2ForPreTraining.from_pretrained(str(path)).eval().wav2vec2
    wave = _wave(8000, seed=2)
    for a, b in zip(_hidden(loaded.encoder, wave), _hidden(reference, wave), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert len(loaded.weight_files) == 3


@pytest.mark.parametrize("legacy", [True, False], ids=["weight_g_v", "parametrizations"])
@pytest.mark.parametrize("safetensors", [True, False], ids=["safetensors", "bin"])
def test_both_weight_norm_names(tmp_path, safetensors, legacy):
    path = save_tiny_model(
        tmp_path / "m", "wav2vec2", "ctc", safetensors=safetensors, legacy_weight_norm=legacy
    )
    raw = load_file(path / "model.safetensors") if safetensors else torch.load(path / "pytorch_model.bin")
    names = [k for k in raw if "pos_conv_embed" in k]
    assert any(k.endswith("weight_g") for k in names) == legacy
    loaded = load_model(str(path), language="en")
    ref = build_tiny_model("wav2vec2", "ctc", tiny_config("wav2vec2"), seed=0).wav2vec2
    ours = loaded.encoder.encoder.pos_conv_embed.conv
    theirs = ref.encoder.pos_conv_embed.conv
    torch.testing.assert_close(ours.weight, theirs.weight, rtol=0, atol=0)


def _rewrite(path, safetensors, edit):
    name = "model.safetensors" if safetensors else "pytorch_model.bin"
    raw = load_file(path / name) if safetensors else torch.load(path / name, weights_only=True)
    edit(raw)
    if safetensors:
        save_file(raw, str(path / name))
    else:
        torch.save(raw, path / name)


@pytest.mark.parametrize("safetensors", [True, False], ids=["safetensors", "bin"])
@pytest.mark.parametrize("family", FAMILIES)
def test_missing_encoder_weight_is_an_error_naming_it(tmp_path, family, safetensors):
    path = save_tiny_model(tmp_path / "m", family, "pretraining", safetensors=safetensors)
    victim = f"{PREFIX[family]}encoder.layers.1.attention.k_proj.weight"
    _rewrite(path, safetensors, lambda raw: raw.pop(victim))
    with pytest.raises(ModelLoadError) as err:
        load_model(str(path), language="en")
    assert "encoder.layers.1.attention.k_proj.weight" in str(err.value)
    assert "missing" in str(err.value)


def test_unexpected_non_head_key_is_an_error(tmp_path):
    path = save_tiny_model(tmp_path / "m", "wav2vec2", "ctc", safetensors=True)
    _rewrite(path, True, lambda raw: raw.__setitem__("wav2vec2.encoder.extra_gate.weight", torch.ones(3)))
    with pytest.raises(ModelLoadError, match="extra_gate"):
        load_model(str(path), language="en")


def test_shape_mismatch_is_an_error(tmp_path):
    path = save_tiny_model(tmp_path / "m", "wavlm", "model", safetensors=True)
    key = "feature_projection.projection.weight"
    _rewrite(path, True, lambda raw: raw.__setitem__(key, torch.zeros(32, 8)))
    with pytest.raises(ModelLoadError, match="shape mismatch"):
        load_model(str(path), language="en")


def _touch(marker: str) -> str:
    with open(marker, "w") as handle:
        handle.write("unpickled!")
    return marker


class _Payload:
    """An object whose unpickling would run code (it writes a marker file)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_touch, (self.marker,))


def test_bin_with_custom_class_is_refused_and_never_unpickled(tmp_path):
    path = save_tiny_model(tmp_path / "m", "wav2vec2", "model", safetensors=False)
    marker = tmp_path / "marker.txt"
    raw = torch.load(path / "pytorch_model.bin", weights_only=True)
    raw["payload"] = _Payload(str(marker))
    torch.save(raw, path / "pytorch_model.bin")
    assert not marker.exists()
    with pytest.raises(ModelLoadError, match="weights_only") as err:
        load_model(str(path), language="en")
    assert "pytorch_model.bin" in str(err.value)
    assert "weights_only=False" not in str(err.value) and "`False`" not in str(err.value)
    assert not marker.exists()


_LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 1262000000\n"


@pytest.mark.parametrize("safetensors", [True, False], ids=["safetensors", "bin"])
@pytest.mark.parametrize("payload,needle", [
    (_LFS, "Git LFS pointer"),
    (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML"),
    (b"", "empty"),
    (b"\x13\x37" * 300, "corrupt or not a"),
])
def test_not_a_weight_file_is_named_and_said(tmp_path, safetensors, payload, needle):
    path = save_tiny_model(tmp_path / "m", "wav2vec2", "model", safetensors=safetensors)
    victim = path / ("model.safetensors" if safetensors else "pytorch_model.bin")
    victim.write_bytes(payload)
    with pytest.raises(ModelLoadError, match=needle) as err:
        load_model(str(path), language="en")
    assert str(victim) in str(err.value) and "weights_only=False" not in str(err.value)


def test_safetensors_header_that_lies_about_its_data(tmp_path):
    path = save_tiny_model(tmp_path / "m", "wav2vec2", "model", safetensors=True)
    victim = path / "model.safetensors"
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(ModelLoadError, match="truncated") as err:
        load_model(str(path), language="en")
    assert str(victim) in str(err.value)


def test_shard_index_naming_a_file_outside_the_folder_is_refused(tmp_path):
    path = save_tiny_model(tmp_path / "m", "wav2vec2", "model", safetensors=True, shards=2)
    index = path / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    first = next(iter(data["weight_map"]))
    (tmp_path / "outside.safetensors").write_bytes((path / data["weight_map"][first]).read_bytes())
    data["weight_map"][first] = "../outside.safetensors"
    index.write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="leaves") as err:
        load_model(str(path), language="en")
    assert str(index) in str(err.value)


def test_spec_augment_off_and_eval_mode(tmp_path):
    # mask_time_prob > 0 so that SpecAugment would mask frames in training mode if left on.
    path = save_tiny_model(tmp_path / "m", "wav2vec2", "model", mask_time_prob=0.5, mask_time_length=2)
    loaded = load_model(str(path), language="en")
    assert loaded.config.apply_spec_augment is False
    wave = _wave(16000, seed=3)
    eval_out = _hidden(loaded.encoder, wave)[-1]
    loaded.encoder.train()
    train_out = _hidden(loaded.encoder, wave)[-1]  # all dropouts are 0 in tiny configs
    torch.testing.assert_close(train_out, eval_out, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("norm", "preprocessor", "do_normalize", "expected"),
    [
        ("group", True, True, True),
        ("layer", True, False, False),
        ("group", False, None, False),
        ("layer", False, None, True),
    ],
)
def test_do_normalize_from_preprocessor_else_front_end(tmp_path, norm, preprocessor, do_normalize, expected):
    path = save_tiny_model(
        tmp_path / "m",
        "wav2vec2",
        "model",
        feat_extract_norm=norm,
        preprocessor=preprocessor,
        do_normalize=do_normalize,
    )
    loaded = load_model(str(path), language="en")
    assert loaded.do_normalize is expected
    assert loaded.sample_rate_hz == 16000
    assert loaded.config.feat_extract_norm == norm


def test_fingerprint_streams_file_bytes_and_tracks_weights(tmp_path):
    path = save_tiny_model(tmp_path / "a", "wavlm", "ctc", safetensors=True)
    loaded = load_model(str(path), language="en")
    expected = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()[:16]
    assert loaded.fingerprint == expected
    # same weights elsewhere: same fingerprint
    same = save_tiny_model(tmp_path / "b", "wavlm", "ctc", safetensors=True)
    assert load_model(str(same), language="en").fingerprint == loaded.fingerprint

    def bump(raw):
        raw["wavlm.encoder.layers.0.feed_forward.output_dense.bias"] += 1e-3

    _rewrite(path, True, bump)
    # the fingerprint memo keys on (size, mtime, inode); the size is unchanged, so make sure the
    # mtime differs from the first write even on a coarse-grained file system
    os.utime(path / "model.safetensors", ns=(1, 1))
    changed = load_model(str(path), language="en").fingerprint
    assert changed != loaded.fingerprint
    assert changed == fingerprint_files([path / "model.safetensors"])


def test_other_seed_other_weights(tmp_path):
    a = load_model(str(save_tiny_model(tmp_path / "a", "wav2vec2", "model", seed=0)), language="en")
    b = load_model(str(save_tiny_model(tmp_path / "b", "wav2vec2", "model", seed=1)), language="en")
    assert a.fingerprint != b.fingerprint
    wa = a.encoder.feature_projection.projection.weight
    wb = b.encoder.feature_projection.projection.weight
    assert not torch.equal(wa, wb)


def test_base_size_untrained_demo_model(tmp_path):
    path = save_tiny_model(
        tmp_path / "demo",
        "wav2vec2",
        "model",
        size="base",
        language="yue",
        note="demo stand-in",
        num_hidden_layers=2,  # keep the test light; the width is the base model's
    )
    meta = json.loads((path / "crossling.json").read_text())
    assert meta == {"language": "yue", "untrained": True, "note": "demo stand-in"}
    loaded = load_model(str(path))
    assert loaded.language == "yue" and loaded.extras["untrained"] is True
    assert loaded.hidden_size == 768 and loaded.config.num_conv_pos_embeddings == 128
    assert loaded.provenance()["untrained"] is True
    json.dumps(loaded.provenance())  # JSON-able for cache provenance


def test_not_a_model_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a model folder"):
        load_model(str(tmp_path / "empty"), language="en")
    path = save_tiny_model(tmp_path / "m", "wav2vec2", "model")
    (path / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        load_model(str(path), language="en")


def test_old_config_fields_do_not_leak_into_the_encoder(tmp_path):
    path = save_tiny_model(tmp_path / "m", "wav2vec2", "ctc")
    config = json.loads((path / "config.json").read_text())
    config.update({"gradient_checkpointing": True, "torch_dtype": "float16", "transformers_version": "4.4.0"})
    (path / "config.json").write_text(json.dumps(config))
    loaded = load_model(str(path), language="en")
    assert not loaded.encoder.is_activation_checkpointing
    assert next(loaded.encoder.parameters()).dtype == torch.float32


def test_absent_masked_spec_embed_is_allowed_and_everything_is_materialised(tmp_path):
    path = save_tiny_model(tmp_path / "m", "wavlm", "ctc", safetensors=True)
    _rewrite(path, True, lambda raw: raw.pop("wavlm.masked_spec_embed"))
    loaded = load_model(str(path), language="en")
    assert loaded.extras["load_report"]["optional_missing"] == ["masked_spec_embed"]
    assert torch.equal(loaded.encoder.masked_spec_embed, torch.zeros(32))
    assert not any(p.is_meta for p in loaded.encoder.parameters())
    assert all(p.requires_grad for p in loaded.encoder.parameters())


def test_fp16_checkpoint_loads_as_float32(tmp_path):
    path = save_tiny_model(tmp_path / "m", "wav2vec2", "model", safetensors=True)
    _rewrite(path, True, lambda raw: raw.update({k: v.half() for k, v in raw.items()}))
    loaded = load_model(str(path), language="en")
    assert {p.dtype for p in loaded.encoder.parameters()} == {torch.float32}
    wave = _wave(4000, seed=5)
    assert torch.isfinite(_hidden(loaded.encoder, wave)[-1]).all()


def test_config_json_that_is_not_an_object_is_a_clear_error(tmp_path):
    path = save_tiny_model(tmp_path / "m", "wav2vec2", "model")
    (path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="config.json: expected a JSON object"):
        load_model(str(path), language="en")
