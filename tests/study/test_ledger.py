"""The step ledger: steps run once, rerun when inputs change or outputs vanish."""

from __future__ import annotations

import json

import pytest

from study.ledger import Ledger, fingerprint_of


def test_step_runs_once_then_skips(tmp_path):
    calls = []
    out = tmp_path / "a.txt"

    def step():
        calls.append(1)
        out.write_text("x")
        return [out]

    assert Ledger(tmp_path).run("a", "fp1", step, log=lambda _: None)
    assert not Ledger(tmp_path).run("a", "fp1", step, log=lambda _: None)  # a fresh process
    assert len(calls) == 1
    assert Ledger(tmp_path).run("a", "fp2", step, log=lambda _: None)  # inputs changed
    out.unlink()
    assert Ledger(tmp_path).run("a", "fp2", step, log=lambda _: None)  # output lost
    assert len(calls) == 3


def test_failed_step_is_not_recorded(tmp_path):
    def boom():
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        Ledger(tmp_path).run("b", "fp", boom, log=lambda _: None)
    assert "b" not in Ledger(tmp_path).steps


def test_corrupt_ledger_is_named(tmp_path):
    (tmp_path / "steps.json").write_text("{not json")
    with pytest.raises(ValueError, match="steps.json"):
        Ledger(tmp_path)


def test_fingerprint_depends_on_content():
    assert fingerprint_of({"a": 1}) == fingerprint_of({"a": 1})
    assert fingerprint_of({"a": 1}) != fingerprint_of({"a": 2})
    json.dumps(fingerprint_of(object()))  # anything printable is accepted
