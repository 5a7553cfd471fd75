"""The CLI error boundary (featstore.console): plain unwrapped errors, exit codes, Ctrl-C,
a cache root that is a file, unknown corpus names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import featstore.console as console_mod
from cli import app, featstore_app, finetune_app, probes_app
from featstore.console import INTERRUPTED, print_error

LONG = "/data/" + "very-long-folder-name-" * 8 + "[cn]/ESD"


def _run(target, args, columns="20", **kwargs):
    return CliRunner().invoke(target, args, env={"COLUMNS": columns}, **kwargs)


@pytest.mark.parametrize("columns", ["20", "300"])
def test_print_error_is_one_plain_line_whatever_the_width(capsys, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    print_error(f"{LONG} not found")
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == f"error: {LONG} not found\n"  # not wrapped, [cn] kept, no markup read


def test_print_error_keeps_rich_markup_literally(capsys):
    print_error("[red]x[/red] [bold]")
    assert capsys.readouterr().err == "error: [red]x[/red] [bold]\n"


def test_user_error_names_the_whole_path_on_one_line(tmp_path):
    root = tmp_path / ("a-rather-long-folder-name-" * 4 + "[cn]")
    res = _run(featstore_app, ["splits", "nosuch", "--cache-root", str(root)])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(root) in lines[0] and "'nosuch'" in lines[0]
    assert "Traceback" not in res.output


def _cache_file(tmp_path: Path) -> Path:
    path = tmp_path / "not-a-folder"
    path.write_text("x")
    return path


CACHE_FILE_COMMANDS = {
    "demo": (app, ["demo"]),
    "extract": (featstore_app, ["extract", "--model", "w2v2-cn", "--corpus", "esd"]),
    "layerwise": (probes_app, ["layerwise"]),
    "finetune": (finetune_app, ["peft", "--model", "w2v2-cn", "--train-corpus", "esd", "--test-corpus", "esd"]),
    "splits": (featstore_app, ["splits", "esd"]),
    "prepare": (featstore_app, ["prepare", "esd", "--root", "."]),
    "ls": (featstore_app, ["ls"]),
    "sed model": (probes_app, ["sed", "model"]),
    "human build": (probes_app, ["human", "build"]),
}


@pytest.mark.parametrize("name", sorted(CACHE_FILE_COMMANDS))
def test_cache_root_that_is_a_file_is_a_clear_error(tmp_path, name):
    target, args = CACHE_FILE_COMMANDS[name]
    path = _cache_file(tmp_path)
    res = _run(target, [*args, "--cache-root", str(path)])
    assert res.exit_code == 2, res.output
    assert f"error: cache root {path}" in res.output and "not a folder" in res.output
    assert "Traceback" not in res.output and "no prepared manifest" not in res.output


def test_cache_root_from_the_environment_is_checked_too(tmp_path):
    path = _cache_file(tmp_path)
    res = CliRunner().invoke(featstore_app, ["ls"], env={"CROSSLING_CACHE": str(path)})
    assert res.exit_code == 2 and "$CROSSLING_CACHE" in res.output, res.output


def test_study_with_a_cache_root_that_is_a_file(tmp_path):
    _cache_file(tmp_path)
    (tmp_path / "esd").mkdir()
    config = tmp_path / "s.toml"
    config.write_text('[study]\nout = "run"\ncache_root = "not-a-folder"\n[corpora.esd]\nreader = "esd"\n'
                      'root = "esd"\n[sed]\nenabled = false\n')
    res = _run(app, ["study", "--config", str(config)])
    assert res.exit_code == 2, res.output
    assert "not-a-folder" in res.output and "not a folder" in res.output and "Traceback" not in res.output
    assert "[study] cache_root" in res.output and "--cache-root" not in res.output.split("is a file")[0]


def test_ctrl_c_says_interrupted_and_exits_130(monkeypatch, tmp_path):
    import study.demo

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(study.demo, "run_demo", interrupted)
    res = _run(app, ["demo", "--cache-root", str(tmp_path)])
    assert res.exit_code == 130, res.output
    assert INTERRUPTED in res.output and "Traceback" not in res.output and "Aborted" not in res.output


def test_programming_errors_keep_their_traceback(monkeypatch, tmp_path):
    import study.demo

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(study.demo, "run_demo", broken)
    res = CliRunner().invoke(app, ["demo", "--cache-root", str(tmp_path)])
    assert res.exit_code == 1 and isinstance(res.exception, RuntimeError)
    assert "error: a bug" not in res.output


def test_os_errors_naming_a_file_are_user_errors(monkeypatch, tmp_path):
    import study.demo

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "[cn]" / "x.h5"))

    monkeypatch.setattr(study.demo, "run_demo", denied)
    res = _run(app, ["demo", "--cache-root", str(tmp_path)])
    assert res.exit_code == 2
    assert f"error: {tmp_path / '[cn]' / 'x.h5'}: Permission denied" in res.output


def _prepared(root: Path, *names: str) -> Path:
    (root / "manifests").mkdir(parents=True)
    for name in names:
        (root / "manifests" / f"{name}.parquet").write_bytes(b"")
    return root


@pytest.mark.parametrize("target, args", [
    (featstore_app, ["extract", "--model", "w2v2-cn", "--corpus", "pavoqe"]),
    (featstore_app, ["splits", "pavoqe"]),
    (finetune_app, ["peft", "--model", "w2v2-cn", "--train-corpus", "esd", "--test-corpus", "pavoqe"]),
    (finetune_app, ["eval", "--checkpoint", ".", "--corpus", "pavoqe"]),
    (probes_app, ["layerwise", "--corpora", "esd,pavoqe"]),
    (probes_app, ["sed", "concat", "--corpus", "pavoqe", "--out", "x"]),
])
def test_unknown_corpus_lists_the_known_ones(tmp_path, target, args):
    root = _prepared(tmp_path / "cache", "esd", "pavoque")
    res = _run(target, [*args, "--cache-root", str(root)])
    assert res.exit_code == 2, res.output
    assert "unknown corpus 'pavoqe'" in res.output
    assert "did you mean 'pavoque'" in res.output and "known: esd, pavoque" in res.output


def test_a_corpus_with_only_a_feature_cache_is_known(tmp_path):
    root = tmp_path / "cache"
    (root / "w2v2-cn").mkdir(parents=True)
    (root / "w2v2-cn" / "esd.shard-0-of-2.h5").write_bytes(b"")
    assert console_mod.prepared_corpora(root) == ["esd"]


def test_deprecated_spellings_still_work_and_say_so(monkeypatch, tmp_path):
    import study.demo

    seen = {}

    def fake_demo(config, log):
        seen["config"] = config
        return tmp_path / "report.html"

    monkeypatch.setattr(study.demo, "run_demo", fake_demo)
    res = _run(app, ["demo", "--cache-root", str(tmp_path), "--probe-epochs", "7", "--finetune-epochs=3"])
    assert res.exit_code == 0, res.output
    assert seen["config"].probe_epochs == 7 and seen["config"].finetune_epochs == 3
    assert "--probe-epochs is deprecated; use --probe-max-epochs" in res.output


def test_console_script_entry_point_runs_the_boundary(tmp_path):
    """The console scripts (`crossling = "cli:main"` ...) go through run_app: a real process
    at a 20-column terminal prints one unwrapped line and exits 2."""
    path = _cache_file(tmp_path)
    env = {**os.environ, "COLUMNS": "20", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-c", "import cli; cli.main()", "featstore", "ls", "--cache-root",
                           str(path)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: cache root {path} (from --cache-root) is a file, not a folder; "
        "give a folder with --cache-root or $CROSSLING_CACHE"]
    assert proc.stdout == ""


def test_table_cells_are_never_markup():
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    from featstore.console import cell

    table = Table()
    table.add_column("utt_id")
    table.add_row(cell("spk[cn]/[bold]x"))
    buf = StringIO()
    Console(file=buf, width=200).print(table)
    assert "spk[cn]/[bold]x" in buf.getvalue()
