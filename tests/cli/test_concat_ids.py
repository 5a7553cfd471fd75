"""`probes sed concat`: utterance ids from a corpus never become paths unchecked."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from probes.sed._concat import ConcatConfig, concat_id, concatenate_for_sed

HOSTILE = ["../../escaped", "a/b", "..", "/abs/path", "x\\..\\y", "ok_id"]


def _manifest() -> pl.DataFrame:
    rows = [{"utt_id": f"n{i}", "speaker": "s1", "emotion": "neutral"} for i in range(2)]
    rows += [{"utt_id": uid, "speaker": "s1", "emotion": "angry"} for uid in HOSTILE]
    return pl.DataFrame(rows)


def _wave(row: dict) -> np.ndarray:
    return np.full(1600, 0.1, dtype=np.float32)


def test_crafted_ids_never_write_outside_out(tmp_path):
    out = tmp_path / "deep" / "out"
    path = concatenate_for_sed(_manifest(), out, _wave, ConcatConfig(seed=1))
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(p.startswith("deep/out/") and p.count("/") == 2 for p in written), written
    data = json.loads(path.read_text())
    assert len(data) == len(HOSTILE)
    for utt_id, entry in data.items():
        assert "/" not in utt_id and "\\" not in utt_id and not utt_id.startswith(".")
        assert (out / f"{utt_id}.wav").is_file() and entry["wav"] == f"datafolder/{utt_id}.wav"
    sources = sorted(s for entry in data.values() for s in entry["sources"] if s not in ("n0", "n1"))
    assert sources == sorted(HOSTILE)  # the original ids are kept, as data


def test_concat_id_keeps_safe_ids_and_hashes_the_others():
    assert concat_id("cat", 3, "spk1_0001") == "cat00003_spk1_0001"
    hashed = concat_id("cat", 3, "../x")
    assert hashed.startswith("cat00003_") and len(hashed) == len("cat00003_") + 12
    assert concat_id("cat", 3, "../x") == hashed != concat_id("cat", 3, "../y")


def test_an_unsafe_prefix_is_refused():
    with pytest.raises(ValueError, match="prefix"):
        ConcatConfig(prefix="../")
