"""A malformed checkpoint config is a CheckpointError naming the file, not a KeyError."""

from __future__ import annotations

import json

import pytest

from finetune.checkpoint import CONFIG_FILE, FORMAT, WEIGHTS_FILE, CheckpointError, read_checkpoint_config


def test_base_record_without_fingerprint_is_named(tmp_path):
    (tmp_path / WEIGHTS_FILE).write_bytes(b"")
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"format": FORMAT, "base": {"alias": "m"}, "model": {}}))
    with pytest.raises(CheckpointError, match=r"config.json: the base model record lacks \['fingerprint'"):
        read_checkpoint_config(tmp_path)


@pytest.mark.parametrize("content", [b"", b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n",
                                     b"<!DOCTYPE html><html>", b"\x00\x01 random bytes \xff" * 10])
def test_corrupt_adapter_weights_are_a_checkpoint_error_naming_the_file(tmp_path, content):
    from types import SimpleNamespace

    from finetune_testkit import tiny_encoder

    from finetune.checkpoint import load_checkpoint
    from finetune.model import PeftModelConfig

    base = SimpleNamespace(alias="tiny", fingerprint="f" * 16, encoder=tiny_encoder("wav2vec2"), source="test")
    record = {"alias": base.alias, "fingerprint": base.fingerprint, "do_normalize": True}
    config = {"format": FORMAT, "base": record, "model": PeftModelConfig(layer=1, strategy="lora").to_dict()}
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    (tmp_path / WEIGHTS_FILE).write_bytes(content)
    with pytest.raises(CheckpointError, match=WEIGHTS_FILE) as err:
        load_checkpoint(tmp_path, base=base)
    assert "weights_only" not in str(err.value)


def test_a_config_that_is_not_an_object_or_not_utf8_is_named(tmp_path):
    (tmp_path / WEIGHTS_FILE).write_bytes(b"")
    for content in (b"[1, 2]", b"\xff\xfe\x00garbage", json.dumps({"format": FORMAT, "base": 3, "model": {}}).encode()):
        (tmp_path / CONFIG_FILE).write_bytes(content)
        with pytest.raises(CheckpointError, match="config.json"):
            read_checkpoint_config(tmp_path)
