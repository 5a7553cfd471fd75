"""The study config: the shipped example parses, and mistakes name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from study.config import StudyConfigError, load_study_config

EXAMPLE = Path(__file__).resolve().parents[2] / "study.example.toml"


def _filled(tmp_path: Path) -> Path:
    """The example with every FILL IN path pointing at a folder that exists."""
    text = EXAMPLE.read_text()
    for line in text.splitlines():
        if not line.startswith("#") and ("FILL IN" in line or "paper_splits" in line):
            value = line.split('"')[1]
            target = tmp_path / value.lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            text = text.replace(f'"{value}"', f'"{target}"')
    out = tmp_path / "study.toml"
    out.write_text(text)
    return out


def test_example_config_parses(tmp_path):
    config = load_study_config(_filled(tmp_path))
    assert [c.name for c in config.corpora] == ["esd", "pavoque", "iemocap", "zed", "tjd"]
    assert config.corpus("tjd").label_map == "negation=angry,expectation=happy"
    assert config.corpus("esd").split_languages == ("cn",)
    assert config.probes.settings == ("mono", "cross", "trans") and config.probes.probe.head == "mlp"
    assert any(r.two_stage and r.source_corpus == "esd" for r in config.finetune.runs)
    assert all(r.lora.r == 8 and r.train.lr == 1e-4 and r.ba.reduction == 16 for r in config.finetune.runs)
    assert config.extract.device == "auto" and config.sed.run.device == "auto"
    assert config.out == tmp_path / "cache/runs/paper"


def test_missing_corpus_root_is_named(tmp_path):
    with pytest.raises(StudyConfigError, match=r"corpora.esd.*does not exist"):
        load_study_config(EXAMPLE)


def test_unknown_key_and_undeclared_corpus(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[probes]\nheads = "mlp"\n')
    with pytest.raises(StudyConfigError, match="unknown key"):
        load_study_config(bad)
    bad.write_text('[models]\nw2v2-cn = ""\n[probes]\nmodels = ["w2v2-cn"]\ncorpora = ["esd"]\n')
    with pytest.raises(StudyConfigError, match="not declared"):
        load_study_config(bad)
    bad.write_text('[models]\nw2v2-cn = ""\n[[finetune.runs]]\nmodel = "w2v2-cn"\nstrategy = "lora+xx"\n'
                   'train_corpus = "a"\ntest_corpus = "a"\n')
    with pytest.raises(StudyConfigError, match="strategy"):
        load_study_config(bad)
    run = ('[models]\nw2v2-cn = ""\n[[finetune.runs]]\nmodel = "w2v2-cn"\nstrategy = "lora"\n'
           'train_corpus = "a"\ntest_corpus = "a"\n')
    for extra, message in (('source_corpus = "b"\n', "only used by two-stage runs"), ('layer = "bst"\n', "'bst'"),
                           ('scope = "all"\n', "scope 'all'")):
        bad.write_text(run + extra)
        with pytest.raises(StudyConfigError, match=message):
            load_study_config(bad)
    bad.write_text(run + "layer = 6\n")
    with pytest.raises(StudyConfigError, match="not declared"):  # a number is a valid layer: fails later
        load_study_config(bad)


def test_study_command_names_a_missing_corpus_without_a_traceback(tmp_path):
    from typer.testing import CliRunner

    from cli import app

    (tmp_path / "esd").mkdir()
    config = tmp_path / "s.toml"
    config.write_text('[study]\nout = "run"\ncache_root = "cache"\n[corpora.esd]\nreader = "esd"\nroot = "esd"\n'
                      '[sed]\nenabled = false\n')
    result = CliRunner().invoke(app, ["study", "--config", str(config)])
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())  # independent of where a terminal would wrap the line
    assert "error:" in flat and "ESD not found" in flat
    assert "Traceback" not in result.output


def test_demo_command_without_espeak_says_so(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import study.demo
    from cli import app
    from featstore.synth.espeak import EspeakError

    def no_espeak(*args, **kwargs):
        raise EspeakError("eSpeak NG library not found: /nowhere")

    monkeypatch.setattr(study.demo, "run_demo", no_espeak)
    result = CliRunner().invoke(app, ["demo", "--cache-root", str(tmp_path)])
    assert result.exit_code == 2 and "eSpeak NG" in result.output and "Traceback" not in result.output
