"""``--protocol text|authors`` and its six options, end to end on tiny prepared corpora.

Each test reads what a run wrote (the epoch log ``epochs.csv``, the results, the saved
``config.json`` and the checkpoints) and fails if that point of the protocol is wrong:
validation corpus, layers kept, batch size, train-mode regularisation, best layer per
target; the schedule itself is tested on built curves in ``test_finetune_schedule.py``.
"""

from __future__ import annotations

import json

import polars as pl
import pytest
import torch
from finetune_testkit import pitch_clips, tiny_encoder
from test_finetune_run import _prepare

import finetune.train as train_mod
from featstore.models import load_model
from featstore.models.testing import save_tiny_model
from finetune.checkpoint import load_checkpoint, read_checkpoint_config
from finetune.model import PeftModelConfig, SERModel
from finetune.run import FinetuneConfig, best_layer_for_target, run_finetune
from finetune.train import TrainConfig

QUICK = dict(lr=3e-3, max_epochs=2, patience=5, seed=0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("proto")
    _prepare(root, "src", "cn", 1)
    _prepare(root, "tgt", "de", 2)
    model_dir = save_tiny_model(root / "models" / "tiny-cn", "wav2vec2", "model", language="cn",
                                num_hidden_layers=3, feat_extract_norm="group")
    return root, model_dir


def _run(root, model_dir, name, **kw):
    train = TrainConfig(**(QUICK | kw.pop("train", {})))
    base = dict(model=str(model_dir), train_corpus="src", test_corpus="tgt", layer=1, strategy="wg", folds=(0,),
                train=train, cache_root=str(root), use_cache=False, out=str(root / name))
    frame = run_finetune(FinetuneConfig(**(base | kw)))
    log = pl.read_csv(root / name / "epochs.csv")
    saved = json.loads((root / name / "config.json").read_text())
    return frame, log, saved


def test_protocol_fills_only_what_is_unset():
    text = FinetuneConfig(model="m", train_corpus="a", test_corpus="b")
    assert text.effective() == {"protocol": "text", "valid_corpus": "train", "two_stage_schedule": "converge",
                                "layer_means": "hidden-state", "train_mode_regularisation": False,
                                "best_layer_by": "setting", "batch_size": 16, "equal_loss_resets_patience": False}
    authors = FinetuneConfig(model="m", train_corpus="a", test_corpus="b", protocol="authors")
    assert authors.effective() == {"protocol": "authors", "valid_corpus": "test", "two_stage_schedule": "authors",
                                   "layer_means": "authors", "train_mode_regularisation": True,
                                   "best_layer_by": "target", "batch_size": 1, "equal_loss_resets_patience": True}
    mixed = FinetuneConfig(model="m", train_corpus="a", test_corpus="b", protocol="authors", valid_corpus="train",
                           layer_means="hidden-state", train=TrainConfig(batch_size=16))
    eff = mixed.effective()
    assert (eff["valid_corpus"], eff["layer_means"], eff["batch_size"]) == ("train", "hidden-state", 16)
    assert eff["two_stage_schedule"] == "authors" and eff["train_mode_regularisation"] is True
    with pytest.raises(ValueError, match="protocol"):
        FinetuneConfig(model="m", train_corpus="a", test_corpus="b", protocol="paper")
    with pytest.raises(ValueError, match="two_stage_schedule"):
        FinetuneConfig(model="m", train_corpus="a", test_corpus="b", two_stage_schedule="sometimes")


@pytest.mark.parametrize("protocol, valid", [("text", "src"), ("authors", "tgt")])
def test_validation_corpus_of_a_cross_run(setup, protocol, valid):
    root, model_dir = setup
    # layer_means / regularisation / batch pinned so only the validation corpus differs
    frame, log, saved = _run(root, model_dir, f"valid_{protocol}", protocol=protocol, layer_means="hidden-state",
                             train_mode_regularisation=False, train={"batch_size": 4})
    assert set(log["valid_corpus"]) == {valid}
    assert frame["stage1_valid_corpus"].to_list() == [valid] and frame["stage2_valid_corpus"].to_list() == [None]
    assert saved["valid_corpus"] == ("train" if protocol == "text" else "test")
    assert frame["setting"].to_list() == ["cross"] and frame["test_corpus"].to_list() == ["tgt"]


@pytest.mark.parametrize("valid_corpus, stages", [("train", ["src", "tgt"]), ("test", ["tgt", "tgt"]),
                                                  ("src", ["src", "src"])])
def test_validation_corpus_of_each_stage(setup, valid_corpus, stages):
    root, model_dir = setup
    frame, log, saved = _run(root, model_dir, f"valid2_{valid_corpus}", train_corpus="tgt", two_stage=True,
                             source_corpus="src", valid_corpus=valid_corpus, train={"batch_size": 4})
    per_stage = log.group_by("stage").agg(pl.col("valid_corpus").unique()).sort("stage")
    assert per_stage["valid_corpus"].to_list() == [[stages[0]], [stages[1]]]
    assert (frame["stage1_valid_corpus"][0], frame["stage2_valid_corpus"][0]) == tuple(stages)
    # the Table I labels of a two-stage run
    assert frame.select("model_language", "stage1_corpus", "stage2_corpus", "test_corpus").row(0) == (
        "cn", "src", "tgt", "tgt")
    assert saved["valid_corpus"] == valid_corpus


@pytest.mark.parametrize("means, kept", [("hidden-state", 1), ("authors", 2)])
def test_layers_kept_follow_the_layer_meaning(setup, means, kept):
    root, model_dir = setup
    frame, _, saved = _run(root, model_dir, f"layers_{means}", layer_means=means, train={"batch_size": 4})
    assert frame["layer"].to_list() == [1] and frame["hidden_state"].to_list() == [kept]
    model, config = load_checkpoint(frame["checkpoint"][0])
    assert len(model.encoder.encoder.layers) == kept and config["model"]["layer"] == kept
    assert config["info"]["layer_means"] == means and saved["layer_means"] == means
    # adapters on every kept layer (the authors' range(k + 1))
    gates = {n.split(".")[3] for n in model.trainable_state_dict() if n.startswith("encoder.encoder.layers.")}
    assert gates == {str(i) for i in range(kept)}


@pytest.mark.parametrize("protocol, size", [("text", 16), ("authors", 1)])
def test_batch_size_follows_the_protocol(setup, monkeypatch, protocol, size):
    root, model_dir = setup
    sizes = []
    real = train_mod.length_sorted_batches

    def spy(lengths, batch_size, rng):
        out = real(lengths, batch_size, rng)
        if rng is not None:  # training batches
            sizes.extend(len(b) for b in out)
        return out

    monkeypatch.setattr(train_mod, "length_sorted_batches", spy)
    frame, _, saved = _run(root, model_dir, f"batch_{protocol}", protocol=protocol, layer_means="hidden-state",
                           train_mode_regularisation=False)
    n_train = frame["n_train"][0]  # 8 clips: one batch of 8 (text) or 8 of 1 (authors)
    assert max(sizes) == min(size, n_train) and sum(sizes) == 2 * n_train
    assert frame["batch_size"].to_list() == [size] and saved["train"]["batch_size"] == size
    assert read_checkpoint_config(frame["checkpoint"][0])["info"]["batch_size"] == size


@pytest.mark.parametrize("source", [dict(mask_time_prob=0.5, mask_time_length=2, layerdrop=0.0),
                                    dict(mask_time_prob=0.0, layerdrop=0.5)], ids=["spec-augment", "layerdrop"])
def test_train_mode_regularisation_turns_masking_and_layerdrop_on(source):
    ids, waves, _ = pitch_clips(1, 3)
    clips = [waves[u] for u in ids]
    outs = {}
    for on in (False, True):
        enc = tiny_encoder("wav2vec2", apply_spec_augment=True, hidden_dropout=0.0, attention_dropout=0.0,
                           activation_dropout=0.0, feat_proj_dropout=0.0, **source)
        model = SERModel(enc, PeftModelConfig(layer=3, strategy="wg", train_mode_regularisation=on), True)
        model.train(True)
        assert model.encoder.training is on
        torch.manual_seed(0)
        with torch.no_grad():
            draws = [model.pooled(*model.input_states(clips)) for _ in range(6)]
        outs[on] = any(not torch.equal(draws[0], d) for d in draws[1:])
        model.train(False)
        assert model.encoder.training is False
        with torch.no_grad():  # evaluation is deterministic either way
            torch.testing.assert_close(model.pooled(*model.input_states(clips)),
                                       model.pooled(*model.input_states(clips)))
    assert outs == {False: False, True: True}


def test_train_mode_regularisation_is_recorded_and_bypasses_the_cache(setup):
    root, model_dir = setup
    lines: list[str] = []
    cfg = FinetuneConfig(model=str(model_dir), train_corpus="tgt", test_corpus="tgt", layer=1, strategy="wg",
                         folds=(0,), train=TrainConfig(**QUICK, batch_size=4), cache_root=str(root), use_cache=True,
                         out=str(root / "reg"), train_mode_regularisation=True)
    frame = run_finetune(cfg, log=lines.append)
    assert any("train-mode regularisation" in line for line in lines)
    assert frame["train_mode_regularisation"].to_list() == [True]
    assert read_checkpoint_config(frame["checkpoint"][0])["model"]["train_mode_regularisation"] is True


def test_best_layer_per_target_differs_from_per_setting(setup):
    from probes.results import best_layers_path, write_best_layers

    root, model_dir = setup
    alias = load_model(str(model_dir)).alias
    # setting cross, two test corpora: averaged, layer 2 wins (0.65 vs 0.5); for tgt alone layer 1
    rows = [{"model": alias, "setting": "cross", "test_corpus": t, "layer": layer, "ua": ua, "fold": f}
            for t, per in (("tgt", {0: 0.99, 1: 0.9, 2: 0.5}), ("other", {0: 0.99, 1: 0.1, 2: 0.8}))
            for layer, ua in per.items() for f in (0, 1)]
    results = root / "runs" / "probes" / "layerwise-x" / "results.parquet"
    results.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).write_parquet(results)
    write_best_layers({alias: {"cross": 2}}, best_layers_path(root))
    assert best_layer_for_target(alias, "cross", "tgt", str(root)) == 1  # layer 0 is never chosen
    assert best_layer_for_target(alias, "cross", "other", str(root), probe_results=results) == 2
    by_target, _, saved = _run(root, model_dir, "best_target", layer="best", best_layer_by="target",
                               layer_means="hidden-state", train={"batch_size": 4})
    by_setting, _, _ = _run(root, model_dir, "best_setting", layer="best", best_layer_by="setting",
                            train={"batch_size": 4})
    assert by_target["layer"].to_list() == [1] and by_target["best_layer_by"].to_list() == ["target"]
    assert by_setting["layer"].to_list() == [2] and saved["best_layer_by"] == "target"
    with pytest.raises(ValueError, match="no probe results"):
        best_layer_for_target(alias, "mono", "tgt", str(root))
