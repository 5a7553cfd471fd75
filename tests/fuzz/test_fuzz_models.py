"""Fuzzed front doors of the model loader: hostile bytes as weight files in every format.

Contract: a bad weight file, shard index or config is a ``ModelLoadError`` (a
``CrosslingError``) whose message names the file and never suggests loading with
``weights_only=False``; no other exception type. The budget is small by default
(``CROSSLING_FUZZ_EXAMPLES`` examples per test, default 15); raise it for a deeper run.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from featstore.errors import CrosslingError
from featstore.models import ModelLoadError, load_model
from featstore.models.testing import save_tiny_model
from featstore.models.weights import hf_weight_files, read_weight_file

EXAMPLES = int(os.environ.get("CROSSLING_FUZZ_EXAMPLES", "15"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 1262000000\n"
HTML = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Not found</body></html>\n"


def _foreign_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("README.txt", "not a checkpoint")
    return buf.getvalue()


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> dict[str, bytes]:
    """The bytes of real tiny weight files of every format."""
    root = tmp_path_factory.mktemp("real")
    st_dir = save_tiny_model(root / "st", "wav2vec2", "model", safetensors=True)
    bin_dir = save_tiny_model(root / "bin", "wav2vec2", "model", safetensors=False)
    sb_dir = save_tiny_model(root / "sb", "wavlm", "speechbrain")
    return {
        ".safetensors": (st_dir / "model.safetensors").read_bytes(),
        ".bin": (bin_dir / "pytorch_model.bin").read_bytes(),
        ".ckpt": (sb_dir / "wav2vec2.ckpt").read_bytes(),
    }


def _hostile(data, good: bytes) -> tuple[str, bytes]:
    kind = data.draw(st.sampled_from(["random", "truncated", "flipped", "lfs", "html", "empty", "zip",
                                      "text", "prefix"]), label="kind")
    if kind == "random":
        return kind, data.draw(st.binary(min_size=1, max_size=4096), label="bytes")
    if kind == "truncated":
        return kind, good[: data.draw(st.integers(0, len(good) - 1), label="cut")]
    if kind == "flipped":
        raw = bytearray(good)
        for pos in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=16), label="at"):
            raw[pos] ^= data.draw(st.integers(1, 255), label="xor")
        return kind, bytes(raw)
    if kind == "prefix":  # a real head followed by garbage
        n = data.draw(st.integers(1, min(len(good), 2048)), label="n")
        return kind, good[:n] + data.draw(st.binary(min_size=1, max_size=512), label="tail")
    text = data.draw(st.text(min_size=1, max_size=200), label="text").encode("utf-8")
    return kind, {"lfs": LFS, "html": HTML, "empty": b"", "zip": _foreign_zip(), "text": text}[kind]


def _check(err: BaseException, path: Path) -> None:
    message = str(err)
    assert isinstance(err, ModelLoadError) and isinstance(err, CrosslingError)
    assert str(path) in message, message
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message, message
    assert "Traceback" not in message


@pytest.mark.parametrize("suffix", [".safetensors", ".bin", ".ckpt"])
@FUZZ
@given(data=st.data())
def test_hostile_bytes_as_a_weight_file(tmp_path, real, suffix, data):
    kind, payload = _hostile(data, real[suffix])
    path = tmp_path / f"weights{suffix}"
    path.write_bytes(payload)
    try:
        tensors = read_weight_file(path)
    except ModelLoadError as err:
        event(f"refused: {kind}")
        _check(err, path)
    else:
        # only bytes flipped inside tensor data can still be a whole weight file
        assert kind in {"flipped", "prefix"} and payload != b"", kind
        assert tensors and all(isinstance(v, torch.Tensor) for v in tensors.values())


@pytest.mark.parametrize("case", ["lfs", "html", "empty", "random", "truncated"])
@pytest.mark.parametrize("fmt", ["safetensors", "bin", "sharded", "speechbrain"])
def test_load_model_names_the_bad_file_in_every_format(tmp_path, real, fmt, case):
    if fmt == "speechbrain":
        folder = save_tiny_model(tmp_path / "m", "wavlm", "speechbrain")
        victim = folder / "wav2vec2.ckpt"
    else:
        folder = save_tiny_model(tmp_path / "m", "wav2vec2", "model", safetensors=fmt != "bin",
                                 shards=2 if fmt == "sharded" else 1)
        victim = hf_weight_files(folder)[-1]
    good = victim.read_bytes()
    victim.write_bytes({"lfs": LFS, "html": HTML, "empty": b"", "random": os.urandom(999),
                        "truncated": good[: len(good) // 3]}[case])
    with pytest.raises(ModelLoadError) as err:
        load_model(str(folder), language="en")
    _check(err.value, victim)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(index=st.one_of(
    json_values,
    st.dictionaries(st.text(max_size=30), st.text(max_size=30) | st.integers(), max_size=5).map(
        lambda m: {"weight_map": m}),
    st.sampled_from(["../outside.safetensors", "/etc/passwd", "sub/../../x.safetensors", "missing.safetensors"]).map(
        lambda shard: {"weight_map": {"encoder.w": shard}}),
))
def test_bad_shard_index_is_a_model_load_error(tmp_path_factory, index):
    folder = tmp_path_factory.mktemp("idx")
    (folder / "config.json").write_text("{}")
    path = folder / "model.safetensors.index.json"
    path.write_text(json.dumps(index))
    (folder.parent / "outside.safetensors").write_bytes(b"\0" * 16)
    try:
        shards = hf_weight_files(folder)
    except ModelLoadError as err:
        _check(err, path)
    else:  # a well-formed index can only name shards that exist inside the folder
        assert all(s.is_file() and folder.resolve() in s.resolve().parents for s in shards)


@FUZZ
@given(key=st.sampled_from(["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                            "conv_dim", "conv_kernel", "conv_stride", "hidden_act", "model_type",
                            "feat_extract_norm", "num_conv_pos_embeddings", "layer_norm_eps"]),
       value=json_values)
def test_bad_config_json_is_a_model_load_error(tmp_path_factory, tiny_folder, key, value):
    folder = tmp_path_factory.mktemp("cfg")
    shutil.copytree(tiny_folder, folder, dirs_exist_ok=True)
    config = json.loads((folder / "config.json").read_text())
    config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    try:
        load_model(str(folder), language="en")
    except ModelLoadError as err:
        message = str(err)
        assert str(folder) in message, message
        assert "weights_only=False" not in message


@pytest.mark.parametrize("payload", [b"", b"{not json", b"\xff\xfe\x00garbage", b"[1, 2]", LFS, HTML])
def test_unreadable_config_json(tmp_path, tiny_folder, payload):
    folder = tmp_path / "m"
    shutil.copytree(tiny_folder, folder)
    (folder / "config.json").write_bytes(payload)
    with pytest.raises(ModelLoadError) as err:
        load_model(str(folder), language="en")
    assert str(folder / "config.json") in str(err.value)


def test_speechbrain_folder_without_config_is_one_short_message(tmp_path):
    folder = save_tiny_model(tmp_path / "wavlm-emo", "wavlm", "speechbrain")
    (folder / "config.json").unlink()
    with pytest.raises(ModelLoadError) as err:
        load_model(str(folder), language="en")
    message = str(err.value)
    assert "config.json is missing" in message and str(folder) in message
    assert len(message) < 600, len(message)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "m", "wav2vec2", "model")


@pytest.fixture(scope="module")
def sb_folder(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("sb") / "wavlm-emo", "wavlm", "speechbrain")


SB_TEXT = [b"a: [1, 2\n", b"- 1\n- 2\n", b"'a' => x\n", b"'a' => 0\n'a' => 1\n", b"window_length: abc\n",
           b"wav2vec2: !new:foo\n  source: 5\n  output_norm: [1]\n", b"stride: -3\n", b"null", b"[1,2]",
           b'{"do_normalize": "x"}', b"'z' => 0\n'a' => 1\n'h' => 2\n's' => 3\n", b"'a' => 99999999999999999999\n"]


@FUZZ
@given(name=st.sampled_from(["hyperparams.yaml", "label_encoder.txt", "input_norm.ckpt", "model.ckpt",
                             "wav2vec2.ckpt", "preprocessor_config.json", "config.json"]),
       payload=st.one_of(st.sampled_from([b"", LFS, HTML, b"\xff\xfe\x00", *SB_TEXT]), st.binary(max_size=300)))
def test_hostile_files_in_a_speechbrain_folder(tmp_path_factory, sb_folder, name, payload):
    folder = tmp_path_factory.mktemp("sbx") / "wavlm-emo"
    shutil.copytree(sb_folder, folder)
    (folder / name).write_bytes(payload)
    try:
        load_model(str(folder), language="en")
    except ModelLoadError as err:
        message = str(err)
        assert str(folder) in message, message  # names the folder's file (or the folder) at fault
        assert "weights_only=False" not in message
        assert len(message) < 2000, len(message)
