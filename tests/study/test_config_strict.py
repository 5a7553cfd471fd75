"""The strict study config: every mistake of a file is reported at once, with its key,
before any step runs; wrong-typed values never escape as a TypeError or KeyError."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featstore.configs import ConfigError, build_config, config_hints
from finetune.train import TrainConfig
from finetune.tuners import BASettings, LoraSettings, WGSettings
from probes.config import ProbeConfig
from study.config import (
    CorpusEntry,
    ExtractSettings,
    FinetuneDefaults,
    FinetuneRun,
    FinetuneSection,
    HumanSection,
    ModelEntry,
    ProbesSection,
    SedRun,
    SedSection,
    StudyConfigError,
    StudySettings,
    load_study_config,
)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def _toml(tables: dict[str, dict], runs: list[dict]) -> str:
    """A TOML text of ``[section]`` tables and ``[[finetune.runs]]``."""
    lines = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items()]
    for run in runs:
        lines.append("[[finetune.runs]]")
        lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in run.items()]
    return "\n".join(lines) + "\n"


def _base(tmp_path: Path) -> tuple[dict[str, dict], list[dict]]:
    (tmp_path / "esd").mkdir(exist_ok=True)
    tables = {
        "study": {"out": "run", "cache_root": "cache"},
        "corpora.esd": {"reader": "esd", "root": "esd"},
        "models.m": {},
        "extract": {},
        "probes": {"models": ["m"], "corpora": ["esd"]},
        "finetune": {"folds": 1},
        "finetune.train": {},
        "finetune.lora": {},
        "finetune.ba": {},
        "finetune.wg": {},
        "human": {},
        "sed": {"enabled": False},
    }
    return tables, [{"model": "m", "train_corpus": "esd", "test_corpus": "esd", "strategy": "lora"}]


def test_the_base_config_of_these_tests_loads(tmp_path):
    tables, runs = _base(tmp_path)
    path = tmp_path / "s.toml"
    path.write_text(_toml(tables, runs))
    config = load_study_config(path)
    assert config.finetune.runs[0].train_corpus == "esd" and config.cache_root == tmp_path / "cache"


def test_a_bad_study_lists_every_problem_before_any_work(tmp_path):
    tables, runs = _base(tmp_path)
    tables["probes"].update(head="svm", max_epochs="five", n_jobs=0)
    tables["finetune"]["folds"] = 0
    tables["finetune.lora"]["r"] = 0
    tables["sed"]["colour"] = "red"
    path = tmp_path / "s.toml"
    path.write_text(_toml(tables, runs))
    with pytest.raises(StudyConfigError) as info:
        load_study_config(path)
    err = info.value
    assert isinstance(err, ConfigError) and isinstance(err, ValueError)
    wanted = {"probes.head": "svm", "probes.max_epochs": "five", "probes.n_jobs": "0", "finetune.folds": "0",
              "finetune.lora.r": "0", "sed.colour": "unknown key"}
    for key, what in wanted.items():
        lines = [p for p in err.problems if f"[{key}]" in p]
        assert len(lines) == 1, (key, err.problems)  # each problem once (not again for every run)
        assert what in lines[0] and str(path) in lines[0], lines[0]
    assert len(err.problems) == len(wanted), err.problems
    assert "allowed: mlp, linear, logreg" in str(err)

    # the command stops before any step: nothing written under the cache root or the run folder
    from typer.testing import CliRunner

    from cli import app

    result = CliRunner().invoke(app, ["study", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "6 problems" in result.output
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


def test_reference_problems_join_the_same_list(tmp_path):
    tables, runs = _base(tmp_path)
    tables["probes"]["corpora"] = ["esd", "iemocap"]
    tables["models.m"]["path"] = "no-such-folder"
    runs[0]["model"] = "w2v2-xx"
    tables["finetune.train"]["patience"] = 0
    path = tmp_path / "s.toml"
    path.write_text(_toml(tables, runs))
    with pytest.raises(StudyConfigError) as info:
        load_study_config(path)
    text = str(info.value)
    # the type/range problem is reported; reference checks need a well-formed config, so
    # they come in the next round, also all at once
    assert "[finetune.train.patience]" in text
    tables["finetune.train"]["patience"] = 3
    path.write_text(_toml(tables, runs))
    with pytest.raises(StudyConfigError) as info:
        load_study_config(path)
    problems = info.value.problems
    assert any("[probes.corpora]" in p and "'iemocap'" in p for p in problems), problems
    assert any("[models.m.path]" in p and "does not exist" in p for p in problems), problems
    assert any("[finetune.runs.1.model]" in p and "'w2v2-xx'" in p for p in problems), problems


def test_the_earlier_run_keys_say_what_they_are_now(tmp_path):
    tables, _ = _base(tmp_path)
    tables["finetune"]["max_epochs"] = 3
    path = tmp_path / "s.toml"
    path.write_text(_toml(tables, [{"model": "m", "train": "esd", "test": "esd"}]))
    with pytest.raises(StudyConfigError) as info:
        load_study_config(path)
    text = str(info.value)
    assert "train_corpus" in text and "test_corpus" in text and "[finetune.train] max_epochs" in text
    assert "missing" not in text


def test_run_keys_override_the_finetune_defaults(tmp_path):
    tables, runs = _base(tmp_path)
    tables["finetune.lora"].update(r=4, alpha=8)
    tables["finetune.train"]["lr"] = 3e-4
    tables["finetune"]["device"] = "cpu"
    runs.append({**runs[0], "lora": {"r": 2}, "train": {"patience": 3}, "layer": 2})  # own folder: layer 2
    path = tmp_path / "s.toml"
    path.write_text(_toml(tables, runs))
    first, second = load_study_config(path).finetune.runs
    assert (first.lora.r, first.lora.alpha, first.train.lr, first.device) == (4, 8.0, 3e-4, "cpu")
    assert (second.lora.r, second.lora.alpha, second.train.lr, second.train.patience) == (2, 8.0, 3e-4, 3)
    assert second.layer == 2


def test_no_silent_coercion():
    with pytest.raises(ConfigError, match=r"\[t.max_epochs\]: expected an integer, got True"):
        build_config(TrainConfig, {"max_epochs": True}, "f", "t")
    with pytest.raises(ConfigError, match=r"expected an integer, got '5'"):
        build_config(TrainConfig, {"max_epochs": "5"}, "f", "t")
    assert build_config(TrainConfig, {"lr": 1}).lr == 1.0 and isinstance(build_config(TrainConfig, {"lr": 1}).lr, float)
    with pytest.raises(ConfigError, match=r"\[s.pateince\]: unknown key .did you mean 'patience'"):
        build_config(TrainConfig, {"pateince": 3}, "f", "s")


# ---- property: random wrong-typed values for random known keys ------------------------

_FLAT = {  # section of the file -> dataclasses whose scalar keys sit in it
    "study": (StudySettings,),
    "corpora.esd": (CorpusEntry,),
    "models.m": (ModelEntry,),
    "extract": (ExtractSettings,),
    "probes": (ProbesSection, ProbeConfig),
    "finetune": (FinetuneSection, FinetuneDefaults),
    "finetune.train": (TrainConfig,),
    "finetune.lora": (LoraSettings,),
    "finetune.ba": (BASettings,),
    "finetune.wg": (WGSettings,),
    "human": (HumanSection,),
    "sed": (SedSection, SedRun),
    "finetune.runs": (FinetuneRun,),
}
_FIXED = {"name", "alias", "runs"}


def _kinds(hint: object) -> set[str]:
    """The TOML value kinds a field of type ``hint`` accepts."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return set().union(*(_kinds(a) for a in typing.get_args(hint) if a is not type(None)))
    if origin is tuple:
        args = typing.get_args(hint)
        return {"list_int"} if args and args[0] is int else {"list_str"}
    return {bool: {"bool"}, int: {"int"}, float: {"int", "float"}, str: {"str"}, Path: {"str"}}.get(hint, {"?"})


def _keys() -> list[tuple[str, str, set[str]]]:
    keys = []
    for section, classes in _FLAT.items():
        for cls in classes:
            hints = config_hints(cls)
            for f in dataclasses.fields(cls):
                hint = hints[f.name]
                if f.name in _FIXED or dataclasses.is_dataclass(hint) or "?" in _kinds(hint):
                    continue
                keys.append((section, f.name, _kinds(hint)))
    return keys


_VALUES = {
    "bool": st.booleans(),
    "int": st.integers(-10**6, 10**6),
    "float": st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v != int(v)),
    "str": st.text(alphabet="abc xyz-_./é", max_size=8),
    "list_int": st.lists(st.integers(-5, 5), min_size=1, max_size=3),
    "list_str": st.lists(st.text(alphabet="abc", max_size=4), min_size=1, max_size=3),
    "table": st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), min_size=1),
}


@st.composite
def _wrong(draw: st.DrawFn) -> tuple[str, str, object]:
    section, key, kinds = draw(st.sampled_from(_keys()))
    wrong = sorted(set(_VALUES) - kinds - ({"list_int", "list_str"} if kinds & {"list_int", "list_str"} else set())
                   - ({"int"} if "float" in kinds else set()))
    kind = draw(st.sampled_from(wrong))
    return section, key, draw(_VALUES[kind])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_wrong())
def test_a_wrong_typed_value_is_a_config_error_naming_its_key(tmp_path, case):
    section, key, value = case
    tables, runs = _base(tmp_path)
    if section == "finetune.runs":
        runs[0][key] = value
        where = f"[finetune.runs.1.{key}]"
    else:
        tables[section][key] = value
        where = f"[{section}.{key}]"
    path = tmp_path / "s.toml"
    path.write_text(_toml(tables, runs))
    with pytest.raises(StudyConfigError) as info:  # never a TypeError, KeyError or a traceback
        load_study_config(path)
    assert any(where in p for p in info.value.problems), (where, value, info.value.problems)


def test_configs_built_in_python_are_checked_by_the_same_field_rules():
    from featstore.errors import CrosslingError
    from probes.sed import ModelRunConfig

    cases = [(lambda: ProbeConfig(head="svm", max_epochs="five", n_jobs=0), ("head", "max_epochs", "n_jobs")),
             (lambda: LoraSettings(r=0, alpha=0, dropout=1.0), ("r", "alpha", "dropout")),
             (lambda: BASettings(reduction=0), ("reduction",)),
             (lambda: WGSettings(init_logit=float("inf")), ("init_logit",)),
             (lambda: TrainConfig(lr=0, patience=0, batch_size=True), ("lr", "batch_size", "patience")),
             (lambda: ModelRunConfig(model="", pad_like_recipe=1), ("model", "pad_like_recipe")),
             (lambda: FinetuneRun("m", "a", "b", layer=0, lora=LoraSettings(), scope="all"), ("layer", "scope"))]
    for make, keys in cases:
        with pytest.raises(ConfigError) as info:
            make()
        assert isinstance(info.value, CrosslingError) and len(info.value.problems) == len(keys), info.value.problems
        for key in keys:
            assert sum(f".{key}:" in p for p in info.value.problems) == 1, (key, info.value.problems)


def test_every_field_of_the_study_and_library_configs_has_help():
    from probes.config import LayerwiseConfig
    from probes.sed import ModelRunConfig
    from study.config import StudyConfig

    for cls in (StudyConfig, StudySettings, CorpusEntry, ModelEntry, ProbesSection, FinetuneSection, HumanSection,
                SedSection, ProbeConfig, LayerwiseConfig, TrainConfig, LoraSettings, BASettings, WGSettings,
                ModelRunConfig):
        missing = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("help")]
        assert not missing, (cls.__name__, missing)


def test_two_runs_that_would_write_one_folder_are_refused(tmp_path):
    tables, runs = _base(tmp_path)
    runs.append({**runs[0], "lora": {"r": 4}})
    path = tmp_path / "s.toml"
    path.write_text(_toml(tables, runs))
    with pytest.raises(StudyConfigError, match=r"\[finetune.runs.2\]: same model.*as run 1"):
        load_study_config(path)


def test_human_group_languages_map_group_names_and_are_typed(tmp_path):
    tables, runs = _base(tmp_path)
    tables["human"] = {"group_languages": {"Mandarin speakers": "cn", "Deutsch": "de"}}
    path = tmp_path / "s.toml"
    path.write_text(_toml(tables, runs))
    config = load_study_config(path)
    assert config.human.group_languages == {"Mandarin speakers": "cn", "Deutsch": "de"}
    tables["human"] = {"group_languages": ["cn", "de"]}
    path.write_text(_toml(tables, runs))
    with pytest.raises(StudyConfigError, match=r"human\.group_languages"):
        load_study_config(path)


def test_reference_and_value_problems_come_in_one_report_not_in_rounds(tmp_path):
    tables, runs = _base(tmp_path)
    tables["probes"].update(head="svm", models=["m", "w2v2-xx"])  # a value problem AND an undeclared model
    tables["extract"]["device"] = "banana"
    tables["finetune"]["device"] = "tpu"
    tables["corpora.esd"]["reader"] = "esdd"
    tables["corpora.gone"] = {"reader": "esd", "root": "nowhere"}
    runs.append({**runs[0], "test_corpus": "nope"})
    (tmp_path / "weights-A").mkdir()
    tables["models.m"] = {"path": "weights-A"}  # no language, no crossling.json, not a registered alias
    path = tmp_path / "s.toml"
    path.write_text(_toml(tables, runs))
    with pytest.raises(StudyConfigError) as info:
        load_study_config(path)
    problems = info.value.problems
    wanted = {"[probes.head]": "svm", "[probes.models]": "'w2v2-xx' is not declared",
              "[extract.device]": "not a device name", "[finetune.device]": "not a device name",
              "[corpora.esd.reader]": "unknown reader", "[corpora.gone.root]": "does not exist",
              "[finetune.runs.2.test_corpus]": "'nope' is not declared", "[models.m.language]": "crossling.json"}
    for key, what in wanted.items():
        lines = [p for p in problems if key in p]
        assert len(lines) == 1 and what in lines[0], (key, problems)  # once each: no "missing" after "unknown"
    assert len(problems) == len(wanted), problems


def test_a_pinned_folder_with_its_language_or_a_crossling_json_is_fine(tmp_path):
    tables, runs = _base(tmp_path)
    (tmp_path / "weights-A").mkdir()
    tables["models.m"] = {"path": "weights-A", "language": "cn"}
    path = tmp_path / "s.toml"
    path.write_text(_toml(tables, runs))
    assert load_study_config(path).models[0].language == "cn"
    tables["models.m"] = {"path": "weights-A"}
    (tmp_path / "weights-A" / "crossling.json").write_text('{"language": "cn"}')
    path.write_text(_toml(tables, runs))
    assert load_study_config(path).models[0].path == tmp_path / "weights-A"
