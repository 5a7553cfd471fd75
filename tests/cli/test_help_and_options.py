"""Help text (each default once, no stray metavars, whole sentences in command lists) and
options that cannot drift from the config fields they set."""

from __future__ import annotations

import dataclasses
import importlib
import re

import pytest
import typer
from typer.testing import CliRunner

from cli import app

DEFAULT_WORDS = re.compile(r"\([Dd]efault\b|\bDefault\b|\bdefault:")


def _commands(cmd=None, path=()):
    cmd = cmd or typer.main.get_command(app)
    subs = getattr(cmd, "commands", None)
    if subs:
        yield path, cmd
        for name, sub in subs.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, cmd


ALL = list(_commands())
LEAVES = [(p, c) for p, c in ALL if not getattr(c, "commands", None)]
GROUPS = [(p, c) for p, c in ALL if getattr(c, "commands", None)]


def _help(path, columns):
    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": columns})
    assert res.exit_code == 0, res.output
    return res.output


def _flat(text):
    return " ".join(text.split())


@pytest.mark.parametrize("columns", ["20", "250"])
@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=[" ".join(p) for p, _ in LEAVES])
def test_each_default_is_shown_once_and_no_bool_metavar(path, columns):
    cmd = dict(LEAVES)[path]
    text = _help(path, columns)
    flat = _flat(text)
    assert "<bool>" not in text
    ctx = typer.Context(cmd)
    shown = 0
    for param in cmd.params:
        if param.param_type_name != "option" or param.hidden:
            continue
        record = param.get_help_record(ctx)
        if record and "[default:" in record[1]:  # shown by the help: the text must not say it again
            assert not DEFAULT_WORDS.search(param.help or ""), f"{param.opts[0]}: {param.help}"
            shown += 1
    assert flat.count("[default:") == shown


@pytest.mark.parametrize("columns", ["20", "250"])
@pytest.mark.parametrize("path", [p for p, _ in GROUPS], ids=[" ".join(p) or "crossling" for p, _ in GROUPS])
def test_command_lists_show_whole_sentences(path, columns):
    group = dict(GROUPS)[path]
    flat = _flat(_help(path, columns))
    for name, sub in group.commands.items():
        short = sub.get_short_help_str(limit=10_000)
        assert short and not short.endswith("..."), name
        assert _flat(f"{name} {short}") in flat, (name, short)


def test_every_command_is_inside_the_boundary():
    for typer_app in [app, *[g.typer_instance for g in app.registered_groups]]:
        for info in typer_app.registered_commands:
            assert getattr(info.callback, "__crossling_guarded__", False), info.callback


def _field(spec: str):
    module, _, rest = spec.partition(":")
    cls_name, _, field_name = rest.partition(".")
    cls = getattr(importlib.import_module(module), cls_name)
    return {f.name: f for f in dataclasses.fields(cls)}[field_name]


def _field_default(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None  # a required field: its option is required (no default)


def _mapped_options():
    from featstore.commands import extract as ex
    from finetune import commands as ft
    from probes.commands import layerwise as lw

    cmds = {"peft": ("finetune", "peft"), "layerwise": ("probes", "layerwise"), "extract": ("featstore", "extract")}
    for module in (ft, lw, ex):
        for command, fields in module.CONFIG_FIELDS.items():
            cmd = dict(LEAVES)[cmds[command]]
            params = {p.name: p for p in cmd.params}
            for param_name, spec in fields.items():
                yield command, params[param_name], spec


MAPPED = list(_mapped_options())


@pytest.mark.parametrize("command, param, spec", MAPPED, ids=[f"{c}:{p.name}" for c, p, _ in MAPPED])
def test_options_have_the_config_fields_default_and_help(command, param, spec):
    f = _field(spec)
    assert param.required == (_field_default(f) is None and f.default is dataclasses.MISSING)
    assert param.default == _field_default(f), f"--{param.name} default {param.default!r} != {spec}"
    if "help" in f.metadata:
        assert param.help == f.metadata["help"], f"--{param.name} help differs from {spec}"


@pytest.mark.parametrize("args, option, internal", [
    (["featstore", "extract", "--model", "w2v2-cn", "--corpus", "toy", "--workers", "0"], "--workers",
     "n_workers"),
    (["featstore", "extract", "--model", "w2v2-cn", "--corpus", "toy", "--frame-layers", "0,1"], "--frames",
     "frame_layers"),
    (["finetune", "peft", "--model", "w2v2-cn", "--train-corpus", "toy", "--test-corpus", "toy", "--lora-r", "0"],
     "--lora-r", "LoraSettings"),
])
def test_a_config_error_names_the_option_not_the_field(tmp_path, args, option, internal):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "toy.parquet").write_bytes(b"")  # a prepared corpus, by name
    res = CliRunner().invoke(app, [*args, "--cache-root", str(tmp_path)])
    assert res.exit_code == 2 and option in res.output and internal not in res.output, res.output


@pytest.mark.parametrize("args, option, internal", [
    (["featstore", "bench", "--model-size", "huge"], "--model-size", "model_size"),
    (["featstore", "bench", "--n-utts", "0"], "--n-utts", "n_utts"),
    (["featstore", "bench", "--clip-seconds", "5-1"], "--clip-seconds", "clip_seconds"),
    (["finetune", "bench", "--model-size", "huge"], "--model-size", "value: size"),
    (["finetune", "bench", "--epochs", "0"], "--epochs", "n_utts"),
    (["probes", "bench", "--folds", "0"], "--folds", "n_folds"),
    (["probes", "bench", "--n-utts", "10"], "--n-utts", "n_utts"),
])
def test_a_bench_option_error_names_the_option(args, option, internal):
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and option in res.output and internal not in res.output, res.output


def test_peft_sets_every_lora_ba_wg_and_training_field():
    from finetune.train import TrainConfig
    from finetune.tuners.ba.config import BASettings
    from finetune.tuners.lora.config import LoraSettings
    from finetune.tuners.wg.config import WGSettings

    mapped = {spec for c, _, spec in MAPPED if c == "peft"}
    wanted = {
        *(f"finetune.train:TrainConfig.{n}" for n in
          {f.name for f in dataclasses.fields(TrainConfig)} - {"gradient_checkpointing"}),
        *(f"finetune.tuners.lora.config:LoraSettings.{n}" for n in ("r", "alpha", "dropout")),
        *(f"finetune.tuners.ba.config:BASettings.{f.name}" for f in dataclasses.fields(BASettings)),
        *(f"finetune.tuners.wg.config:WGSettings.{f.name}" for f in dataclasses.fields(WGSettings)),
    }
    assert LoraSettings and wanted <= mapped, sorted(wanted - mapped)


def test_peft_options_reach_the_config(monkeypatch, tmp_path):
    import finetune.run

    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "esd.parquet").write_bytes(b"")
    seen = {}

    def fake_run(config, log=None, on_epoch=None):
        seen["config"] = config
        raise finetune.run.FinetuneError("stop here")

    monkeypatch.setattr(finetune.run, "run_finetune", fake_run)
    res = CliRunner().invoke(app, [
        "finetune", "peft", "--model", "m", "--train-corpus", "esd", "--test-corpus", "esd", "--lora-r", "4",
        "--lora-alpha", "8", "--lora-dropout", "0.2", "--ba-reduction", "8", "--wg-init-logit", "0.5",
        "--lr", "0.001", "--patience", "3", "--batch-size", "4", "--max-epochs", "2", "--device", "cpu",
        "--model-language", "cn", "--cache-root", str(tmp_path)])
    assert res.exit_code == 2 and "stop here" in res.output, res.output
    cfg = seen["config"]
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.ba.reduction, cfg.wg.init_logit) == (4, 8.0, 0.2, 8, 0.5)
    assert (cfg.train.lr, cfg.train.patience, cfg.train.batch_size, cfg.train.max_epochs) == (0.001, 3, 4, 2)
    assert cfg.device == "cpu" and cfg.language == "cn"


def test_device_defaults_to_auto_everywhere():
    for path, cmd in LEAVES:
        for param in cmd.params:
            if param.name == "device":
                assert param.default == "auto", " ".join(path)


def test_auto_device_resolves_to_what_is_there(monkeypatch):
    import torch

    from featstore.console import resolve_device
    from featstore.models.device import DeviceError

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(DeviceError, match="0 CUDA device"):  # a device this machine lacks is refused up front
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda:0"


OLD_SPELLINGS = {"--corpus-name", "--epochs", "--probe-epochs", "--finetune-epochs", "--language", "--size",
                 "--train", "--test", "--source", "--cache", "--model"}


def test_one_name_per_concept():
    """--train/--test/--source, --probe-epochs, --size and --cache survive only as hidden
    aliases; a model's language is --model-language; epochs at most are --max-epochs."""
    for path, cmd in LEAVES:
        names = {o for p in cmd.params if p.param_type_name == "option" for o in p.opts}
        joined = " ".join(path)
        assert not names & {"--train", "--test", "--source", "--cache", "--size", "--probe-epochs",
                            "--finetune-epochs"}, joined
        if joined not in ("finetune bench",):  # bench: exactly N timed epochs, not a maximum
            assert "--epochs" not in names, joined
        if "--language" in names:  # only a corpus's language (prepare, splits, synth)
            assert joined in ("featstore prepare", "featstore splits", "featstore synth"), joined
        aliases = getattr(cmd, "deprecated_aliases", {})
        assert not set(aliases) & names, joined
        assert set(aliases.values()) <= names, joined


def test_docs_cli_lists_every_command_and_option():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    for path, cmd in LEAVES:
        assert f"### `crossling {' '.join(path)}`" in doc, path
        for param in cmd.params:
            if param.param_type_name == "option" and not param.hidden and param.name != "help":
                assert f"`{' / '.join(param.opts + param.secondary_opts)}`" in doc, (path, param.opts)


def test_demo_options_default_to_the_demo_config():
    import dataclasses

    from study.demo import DemoConfig

    defaults = {f.name: f.default for f in dataclasses.fields(DemoConfig)}
    params = {p.name: p for p in dict(LEAVES)[("demo",)].params}
    pairs = {"seed": "seed", "per_emotion": "per_emotion", "probe_head": "probe_head",
             "probe_max_epochs": "probe_epochs", "finetune_max_epochs": "finetune_epochs",
             "listeners": "listeners_per_group"}
    for option, field in pairs.items():
        assert params[option].default == defaults[field], option


def _docs_rows() -> dict[tuple[str, str], tuple[str, str]]:
    """(command, option) -> (default, meaning) of every option row in docs/cli.md."""
    from pathlib import Path

    rows, section = {}, None
    for line in (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text().splitlines():
        if (m := re.match(r"^### `crossling (.+)`", line)) is not None:
            section = m.group(1)
        elif (r := re.match(r"^\| `([^`]+)` \| ([^|]*) \| (.*) \|$", line)) is not None and section:
            rows[(section, r.group(1))] = (r.group(2).strip(), r.group(3).strip())
    return rows


def test_docs_cli_shows_each_option_s_default_and_help():
    def norm(text: str) -> str:
        text = " ".join((text or "").split()).rstrip(".")
        return text[:1].lower() + text[1:]

    rows, wrong = _docs_rows(), []
    for path, cmd in LEAVES:
        for p in cmd.params:
            if p.param_type_name != "option" or p.hidden or p.name == "help":
                continue
            key = (" ".join(path), " / ".join(p.opts + p.secondary_opts))
            if key not in rows:  # named in a sentence, not a table row (test above)
                continue
            default, meaning = rows[key]
            if p.required:
                want = "required"
            elif p.secondary_opts:  # a --x / --no-x pair: the side that is the default
                want = (p.opts[0] if p.default else p.secondary_opts[0]).lstrip("-")
            else:
                want = "" if p.default is None or p.default is False else str(p.default)
            if default != want:
                wrong.append(f"{key}: default {default!r} in docs/cli.md, {want!r} in --help")
            if not norm(meaning).startswith(norm(p.help)):  # the docs may add to the help, not differ
                wrong.append(f"{key}: docs/cli.md says {meaning!r}, --help says {p.help!r}")
    assert not wrong, "\n".join(wrong)
