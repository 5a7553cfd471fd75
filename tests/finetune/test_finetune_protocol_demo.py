"""``finetune peft --protocol authors`` on the demo corpus: the epoch log follows the
authors' two-stage schedule; and the protocol options reach a study's runs from its TOML."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest
from typer.testing import CliRunner

from cli import finetune_app
from featstore.models.testing import save_tiny_model
from featstore.synth import SynthConfig, synthesize_demo
from study import steps

pytestmark = pytest.mark.slow

MAX_EPOCHS, PATIENCE = 12, 1


def _authors_schedule(stage1_losses: list[float], stage2_losses: list[float]) -> tuple[int | None, int]:
    """The switch epoch and the number of epochs the authors' loop runs, recomputed from the
    logged losses (``runner_various_peft.py:229-248, 320-329``: ``<=`` resets patience; a
    trigger is patience running out or epoch ``max_epochs // 2``; the first switches, the
    second ends)."""
    lowest, waited, early, stage, switch = math.inf, 0, False, 1, None
    losses = {1: iter(stage1_losses), 2: iter(stage2_losses)}
    for epoch in range(1, MAX_EPOCHS + 1):
        if early or epoch == MAX_EPOCHS // 2:
            if stage == 2:
                return switch, epoch - 1
            stage, switch, lowest, waited, early = 2, epoch, math.inf, 0, False
        loss = next(losses[stage])
        if loss <= lowest:
            lowest, waited = loss, 0
        else:
            waited += 1
            early = waited >= PATIENCE
    return switch, MAX_EPOCHS


def test_peft_protocol_authors_on_the_demo_follows_the_authors_schedule(tmp_path):
    data, root = tmp_path / "data", tmp_path / "cache"
    synthesize_demo(SynthConfig(out=data, per_emotion=4, languages=("cn", "de")))
    for lang in ("cn", "de"):
        steps.prepare("esd", data / lang, f"demo-{lang}", root, {"language": lang})
        steps.splits(f"demo-{lang}", root, 0)
    model = save_tiny_model(tmp_path / "models" / "tiny-cn", "wav2vec2", "model", language="cn",
                            num_hidden_layers=3, feat_extract_norm="group")
    out = tmp_path / "run"
    res = CliRunner().invoke(finetune_app, [
        "peft", "--model", str(model), "--source-corpus", "demo-cn", "--two-stage", "--train-corpus", "demo-de",
        "--test-corpus", "demo-de", "--protocol", "authors", "--layer", "1", "--strategy", "wg", "--fold", "0",
        "--max-epochs", str(MAX_EPOCHS), "--patience", str(PATIENCE), "--lr", "0.1", "--device", "cpu",
        "--cache-root", str(root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    log = pl.read_csv(out / "epochs.csv")
    s1 = log.filter(pl.col("stage") == "stage1")
    s2 = log.filter(pl.col("stage") == "stage2")
    switch, total = _authors_schedule(s1["valid_loss"].to_list(), s2["valid_loss"].to_list())
    # stage labels, switch epoch and budget as the authors' loop would have run on these losses
    assert log["run_epoch"].to_list() == list(range(1, total + 1))
    assert s1["run_epoch"].to_list() == list(range(1, switch)) and s2["run_epoch"][0] == switch
    assert log["stage"].to_list() == ["stage1"] * (switch - 1) + ["stage2"] * (total - switch + 1)
    # validation on the target corpus throughout
    assert set(log["valid_corpus"]) == {"demo-de"}
    # the kept epoch: the first epoch of the best validation accuracy over BOTH stages
    accs = log["valid_acc"].to_list()
    kept = accs.index(max(accs)) + 1
    assert log.filter(pl.col("kept"))["run_epoch"].to_list() == [kept]
    results = pl.read_parquet(out / "results.parquet")
    row = results.row(0, named=True)
    assert (row["switch_epoch"], row["kept_epoch"]) == (switch, kept)
    assert row["kept_stage"] == ("stage1" if kept < switch else "stage2")
    assert (row["protocol"], row["two_stage_schedule"], row["valid_corpus"], row["layer_means"]) == (
        "authors", "authors", "test", "authors")
    assert (row["batch_size"], row["train_mode_regularisation"], row["equal_loss_resets_patience"]) == (1, True, True)
    assert (row["model_language"], row["stage1_corpus"], row["stage2_corpus"], row["test_corpus"]) == (
        "cn", "demo-cn", "demo-de", "demo-de")
    assert row["hidden_state"] == 2
    saved = json.loads((out / "config.json").read_text())
    assert saved["protocol"] == "authors" and saved["two_stage_schedule"] == "authors"


def test_study_toml_takes_the_protocol_and_a_run_may_override_it(tmp_path):
    from study.config import load_study_config

    for d in ("cn", "de", "m"):
        (tmp_path / d).mkdir()
    (tmp_path / "study.toml").write_text(f"""
[study]
name = "p"
out = "runs/p"
cache_root = "cache"

[corpora.esd]
reader = "esd"
root = "{tmp_path / 'cn'}"

[corpora.pavoque]
reader = "esd"
root = "{tmp_path / 'de'}"
language = "de"

[models.w2v2-cn]
path = "{tmp_path / 'm'}"

[probes]
enabled = false

[finetune]
protocol = "authors"

[finetune.train]
max_epochs = 4

[[finetune.runs]]
model = "w2v2-cn"
train_corpus = "pavoque"
test_corpus = "pavoque"
two_stage = true
source_corpus = "esd"

[[finetune.runs]]
model = "w2v2-cn"
train_corpus = "pavoque"
test_corpus = "pavoque"
protocol = "text"
valid_corpus = "test"

[finetune.runs.train]
batch_size = 2
""")
    config = load_study_config(tmp_path / "study.toml")
    entry = config.models[0]
    first, second = (steps.finetune_config(r, entry, tmp_path / "cache", tmp_path / "o", 1)
                     for r in config.finetune.runs)
    assert first.effective()["protocol"] == "authors" and first.effective()["batch_size"] == 1
    assert first.two_stage_schedule == "authors" and first.train.max_epochs == 4
    eff = second.effective()
    assert (eff["protocol"], eff["valid_corpus"], eff["batch_size"], eff["two_stage_schedule"]) == (
        "text", "test", 2, "converge")
    bad = (tmp_path / "study.toml").read_text().replace('protocol = "authors"', 'protocol = "paper"')
    (tmp_path / "bad.toml").write_text(bad)
    with pytest.raises(ValueError, match="protocol"):
        load_study_config(tmp_path / "bad.toml")
