"""`crossling study` reruns every step downstream of a change (folds, model folder, a
fine-tuning run), not only the step whose own settings changed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import study.report
from finetune.train import TrainConfig
from study import runner, steps
from study.config import CorpusEntry, FinetuneRun, FinetuneSection, ModelEntry, ProbesSection, StudyConfig


@pytest.fixture
def ran(monkeypatch, tmp_path):
    calls: list[str] = []

    def stub(name):
        def fn(*args, **kwargs):
            calls.append(name)
            path = tmp_path / "outputs" / f"{name}-{len(calls)}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
            return [path]
        return fn

    for name in ("prepare", "splits", "probes", "finetune_run", "table_one"):
        monkeypatch.setattr(steps, name, stub(name))
    monkeypatch.setattr(runner, "_extract", stub("extract"))
    monkeypatch.setattr(runner, "_manifest_fp", lambda corpus, root: "manifest-fp")
    monkeypatch.setattr(study.report, "build_report", lambda out: out / "report.html")
    return calls


def _config(tmp_path: Path, **changes) -> StudyConfig:
    config = StudyConfig(
        name="t", out=tmp_path / "run", cache_root=tmp_path / "cache",
        corpora=(CorpusEntry("esd", "esd", tmp_path),),
        models=(ModelEntry("w2v2-cn"),),
        probes=ProbesSection(models=("w2v2-cn",), corpora=("esd",)),
        finetune=FinetuneSection(runs=(FinetuneRun("w2v2-cn", "esd", "esd", strategy="lora"),)),
    )
    return dataclasses.replace(config, **changes)


def _downstream(calls: list[str]) -> set[str]:
    return set(calls) - {"prepare"}


def test_rerun_skips_everything(ran, tmp_path):
    runner.run_study(_config(tmp_path), log=lambda _: None)
    assert ran == ["prepare", "splits", "extract", "probes", "finetune_run", "table_one"]
    ran.clear()
    runner.run_study(_config(tmp_path), log=lambda _: None)
    assert ran == []


def test_new_folds_rerun_probes_and_finetuning(ran, tmp_path):
    runner.run_study(_config(tmp_path), log=lambda _: None)
    ran.clear()
    runner.run_study(_config(tmp_path, seed=1), log=lambda _: None)
    assert _downstream(ran) == {"splits", "probes", "finetune_run", "table_one"}


def test_new_model_folder_reruns_probes_and_finetuning(ran, tmp_path):
    runner.run_study(_config(tmp_path), log=lambda _: None)
    ran.clear()
    runner.run_study(_config(tmp_path, models=(ModelEntry("w2v2-cn", tmp_path / "other"),)), log=lambda _: None)
    assert set(ran) == {"extract", "probes", "finetune_run", "table_one"}


def test_changed_finetuning_rebuilds_table_one(ran, tmp_path):
    runner.run_study(_config(tmp_path), log=lambda _: None)
    ran.clear()
    runner.run_study(_config(tmp_path, finetune=FinetuneSection(
        runs=(FinetuneRun("w2v2-cn", "esd", "esd", strategy="lora", train=TrainConfig(max_epochs=3)),))),
        log=lambda _: None)
    assert ran == ["finetune_run", "table_one"]


def test_human_step_passes_the_configured_groups(monkeypatch, tmp_path):
    import probes.human
    from study.config import HumanSection

    seen = {}

    class Stop(Exception):
        pass

    def fake_ingest(results, key, config, groups=None):
        seen.update(column=config.group_column, groups=groups)
        raise Stop

    monkeypatch.setattr(probes.human, "read_key", lambda path: None)
    monkeypatch.setattr(probes.human, "ingest", fake_ingest)
    answers, key, groups = tmp_path / "lss.csv", tmp_path / "key.csv", tmp_path / "groups.csv"
    for path in (answers, key):
        path.write_text("x\n")
    groups.write_text("listener,group\nl1,cn\n")
    human = HumanSection(enabled=True, results=(answers,), key=key, group_column="mother_tongue")
    with pytest.raises(Stop):
        runner._human(_config(tmp_path, human=human))
    assert seen == {"column": "mother_tongue", "groups": None}
    with pytest.raises(Stop):
        runner._human(_config(tmp_path, human=dataclasses.replace(human, groups_table=groups)))
    assert seen["groups"] == {"l1": "cn"}


def test_runs_that_differ_only_in_layer_write_to_different_folders():
    names = {runner._run_name(FinetuneRun("w2v2-cn", "esd", "esd", strategy="lora", layer=layer))
             for layer in ("best", "3", "6")}
    assert len(names) == 3


def test_generated_folds_keep_the_configured_languages(monkeypatch, tmp_path):
    import featstore.splits
    import study.steps as steps_module

    seen = {}

    class Stop(Exception):
        pass

    def fake_make_folds(manifest, config, exclude=None):
        seen["languages"] = config.languages
        raise Stop

    monkeypatch.setattr(featstore.splits, "make_folds", fake_make_folds)
    monkeypatch.setattr("featstore.manifest.load_manifest", lambda path: None)
    monkeypatch.setattr("featstore.audio.load_bad_files", lambda path: set())
    with pytest.raises(Stop):
        steps_module.splits("esd", tmp_path, 0, None, ["cn"])
    assert seen["languages"] == ("cn",)


def test_finetuning_at_the_best_layer_reruns_when_the_best_layers_change(ran, tmp_path):
    from probes.results import best_layers_path, write_best_layers

    config = _config(tmp_path)
    runner.run_study(config, log=lambda _: None)
    write_best_layers({"w2v2-cn": {"mono": 3}}, best_layers_path(config.cache_root))
    ran.clear()
    runner.run_study(config, log=lambda _: None)
    assert ran == ["finetune_run", "table_one"]
    ran.clear()
    write_best_layers({"other": {"mono": 5}}, best_layers_path(config.cache_root))  # another model's entry
    runner.run_study(config, log=lambda _: None)
    assert ran == []
