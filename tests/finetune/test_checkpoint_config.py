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
