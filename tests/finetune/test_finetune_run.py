"""End to end on prepared tiny corpora: run_finetune (two-stage, cache reuse), results and
Table I, checkpoints (save -> load -> predict, fingerprint refusal), and the commands."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import soundfile as sf
import torch
from finetune_testkit import pitch_clips
from typer.testing import CliRunner

from cli import finetune_app
from featstore.cache import write_cache
from featstore.forward import hidden_states, prepare_inputs
from featstore.manifest import (
    CANONICAL_EMOTIONS,
    load_manifest,
    make_manifest,
    manifest_fingerprint,
    save_manifest,
)
from featstore.models import load_model
from featstore.models.testing import save_tiny_model
from featstore.paths import features_path, manifest_path, splits_path
from finetune.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_config
from finetune.predict import predict_files
from finetune.run import FinetuneConfig, FinetuneError, run_finetune
from finetune.train import TrainConfig

QUICK = TrainConfig(lr=3e-3, batch_size=4, max_epochs=2, patience=5, seed=0)


def _prepare(root, name: str, language: str, seed: int) -> pl.DataFrame:
    ids, waves, labels = pitch_clips(4, seed, prefix=f"{name}_")
    rows = []
    for u, y in zip(ids, labels, strict=True):
        path = root / "audio" / name / f"{u}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, waves[u], 16000)
        rows.append({"utt_id": u, "corpus": name, "language": language, "speaker": f"s{int(u[-1]) % 2}",
                     "emotion": CANONICAL_EMOTIONS[y], "label": CANONICAL_EMOTIONS[y], "path": str(path),
                     "duration": len(waves[u]) / 16000, "sample_rate": 16000})
    manifest = make_manifest(rows)
    save_manifest(manifest, manifest_path(name, root))
    folds = []
    for f in range(2):
        for u in ids:
            j = int(u.rsplit("_", 1)[1])
            part = "test" if j == f else ("valid" if j == (f + 1) % 4 else "train")
            folds.append({"fold": f, "part": part, "utt_id": u})
    meta = {"scheme": json.dumps("test"), "seed": "0", "manifest_fingerprint": json.dumps(manifest_fingerprint(manifest))}
    path = splits_path(name, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(folds).write_parquet(path, metadata=meta)
    return manifest


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    _prepare(root, "src", "cn", 1)
    _prepare(root, "tgt", "de", 2)
    model_dir = save_tiny_model(root / "models" / "tiny-cn", "wav2vec2", "model", language="cn",
                                num_hidden_layers=3, feat_extract_norm="group")
    return root, model_dir


def _config(root, model_dir, **kw) -> FinetuneConfig:
    base = dict(model=str(model_dir), train_corpus="tgt", test_corpus="tgt", layer=2, strategy="lora+wg",
                folds=(0, 1), train=QUICK, cache_root=str(root), use_cache=False)
    return FinetuneConfig(**(base | kw))


def test_run_two_stage_writes_results_predictions_and_table_one(setup):
    root, model_dir = setup
    out = root / "run_two_stage"
    frame = run_finetune(_config(root, model_dir, two_stage=True, source_corpus="src", out=str(out)))
    assert frame.height == 2 and frame["fold"].to_list() == [0, 1]
    assert set(frame["setting"]) == {"trans"} and set(frame["strategy"]) == {"lora+wg"}
    assert frame["two_stage"].all() and set(frame["source_corpus"]) == {"src"}
    assert frame["stage1_epochs"].to_list() == [2, 2]
    preds = pl.read_parquet(out / "predictions.parquet")
    for row in frame.iter_rows(named=True):  # reported UA == an independent computation
        p = preds.filter(pl.col("fold") == row["fold"])
        recalls = [np.mean(p.filter(pl.col("true") == c)["pred"].to_numpy() == c) for c in CANONICAL_EMOTIONS]
        assert row["ua"] == pytest.approx(float(np.mean(recalls)))
        folds = pl.read_parquet(splits_path("tgt", root))
        test_ids = folds.filter((pl.col("fold") == row["fold"]) & (pl.col("part") == "test"))["utt_id"]
        assert sorted(p["utt_id"]) == sorted(test_ids)  # tested on the target's test part only
        assert np.allclose(p.select([f"prob_{c}" for c in CANONICAL_EMOTIONS]).to_numpy().sum(1), 1.0, atol=1e-5)
        assert json.loads(row["config_json"])["strategy"] == "lora+wg"
        assert row["model_fingerprint"] and row["manifest_fingerprint"] and row["fold_scheme"] == "test"
    log = pl.read_csv(out / "epochs.csv")
    assert set(log["stage"]) == {"stage1", "stage2"}
    table = pl.read_csv(out / "table_one.csv")
    assert table.height == 1
    assert table["ua_pct"][0] == pytest.approx(100 * frame["ua"].mean())
    assert table["ua_std_pct"][0] == pytest.approx(100 * float(np.std(frame["ua"].to_numpy(), ddof=1)))
    assert "| 2-stg |" in (out / "table_one.md").read_text()


def test_checkpoint_roundtrip_predicts_identically_and_refuses_other_weights(setup):
    root, model_dir = setup
    out = root / "run_ckpt"
    run_finetune(_config(root, model_dir, strategy="lora+ba+wg", folds=(0,), out=str(out)))
    ckpt = out / "checkpoints" / "fold0"
    config = read_checkpoint_config(ckpt)
    assert config["base"]["fingerprint"] == load_model(str(model_dir)).fingerprint
    from safetensors.torch import load_file

    keys = load_file(str(ckpt / "adapters.safetensors")).keys()
    assert keys and all(k.startswith("head.") or any(s in k for s in ("lora_", "ba_", "wg_")) for k in keys)
    preds = pl.read_parquet(out / "predictions.parquet")
    files = [str(root / "audio" / "tgt" / f"{u}.wav") for u in preds["utt_id"]]
    got = predict_files(ckpt, files)
    want = preds.select([f"prob_{c}" for c in CANONICAL_EMOTIONS]).to_numpy()
    have = got.select([f"prob_{c}" for c in CANONICAL_EMOTIONS]).to_numpy()
    np.testing.assert_allclose(have, want, atol=1e-5)
    again = predict_files(ckpt, files)
    assert again.equals(got)
    other = save_tiny_model(root / "models" / "other", "wav2vec2", "model", language="cn", seed=7,
                            num_hidden_layers=3, feat_extract_norm="group")
    with pytest.raises(CheckpointError, match="fingerprint"):
        load_checkpoint(ckpt, base=load_model(str(other)))
    runner = CliRunner()
    res = runner.invoke(finetune_app, ["predict", "--checkpoint", str(ckpt), files[0], "--csv", str(root / "p.csv")])
    assert res.exit_code == 0, res.output
    assert got["label"][0] in res.output and (root / "p.csv").exists()
    res = runner.invoke(finetune_app, ["predict", "--checkpoint", str(root / "nowhere"), files[0]])
    assert res.exit_code == 2 and "Traceback" not in res.output
    res = runner.invoke(finetune_app, ["eval", "--checkpoint", str(ckpt), "--corpus", "tgt", "--fold", "0",
                                       "--cache-root", str(root), "--json"])
    assert res.exit_code == 0, res.output
    row = pl.read_parquet(out / "results.parquet").row(0, named=True)
    assert json.loads(res.output)["ua"] == pytest.approx(row["ua"])


@pytest.mark.parametrize("scope", ["every-layer", "target-layer"])
def test_run_with_cache_matches_run_without(setup, scope, monkeypatch):
    root, model_dir = setup
    base = load_model(str(model_dir))
    state = 0 if scope == "every-layer" else 1
    manifest = pl.read_parquet(manifest_path("tgt", root))
    frames, means = [], []
    import soundfile

    with torch.no_grad():
        for row in manifest.iter_rows(named=True):
            wave, _ = soundfile.read(row["path"], dtype="float32")
            s, _ = hidden_states(base.encoder, prepare_inputs([wave], base.do_normalize))
            frames.append(s[[state], 0].numpy())  # only the state this scope reads
            means.append(s[:, 0].mean(1).numpy())
    mean = np.stack(means, axis=1)
    cache_file = features_path(base.alias, "tgt", root)
    write_cache(cache_file, manifest["utt_id"].to_list(), mean, mean,
                {"model_fingerprint": base.fingerprint}, manifest, frames=frames, frame_layers=[state], dtype="float32")
    messages: list[str] = []
    kw = dict(layer=2, scope=scope, folds=(0,), save_checkpoints=False)
    cached = run_finetune(_config(root, model_dir, use_cache=True, out=str(root / f"c_{scope}"), **kw), log=messages.append)
    assert any("from the frame cache" in m for m in messages), messages
    plain = run_finetune(_config(root, model_dir, use_cache=False, out=str(root / f"p_{scope}"), **kw))
    # a run that fails after opening the cache (no fold 7) still closes its files
    import finetune.run as run_module

    handles, real = [], run_module._usable_cache

    def spy(*args, **kwargs):
        cache, why = real(*args, **kwargs)
        handles.extend(cache._files if cache is not None else [])
        return cache, why

    monkeypatch.setattr(run_module, "_usable_cache", spy)
    with pytest.raises(run_module.FinetuneError, match="fold 7"):
        run_finetune(_config(root, model_dir, use_cache=True, out=str(root / f"x_{scope}"), **(kw | {"folds": (7,)})))
    monkeypatch.undo()
    assert handles and not any(bool(h) for h in handles)
    assert cached["cache_fingerprint"][0] and not plain["cache_fingerprint"][0]
    a = pl.read_csv(root / f"c_{scope}" / "epochs.csv")
    b = pl.read_csv(root / f"p_{scope}" / "epochs.csv")
    np.testing.assert_allclose(a["train_loss"].to_numpy(), b["train_loss"].to_numpy(), atol=1e-4)
    np.testing.assert_allclose(a["valid_loss"].to_numpy(), b["valid_loss"].to_numpy(), atol=1e-4)
    pa = pl.read_parquet(root / f"c_{scope}" / "predictions.parquet").sort("utt_id")
    pb = pl.read_parquet(root / f"p_{scope}" / "predictions.parquet").sort("utt_id")
    np.testing.assert_allclose(pa["prob_angry"].to_numpy(), pb["prob_angry"].to_numpy(), atol=1e-4)
    # a float16 cache would not equal what the model computes: it is refused, audio is used
    write_cache(cache_file, manifest["utt_id"].to_list(), mean, mean,
                {"model_fingerprint": base.fingerprint}, manifest, frames=frames, frame_layers=[state], dtype="float16")
    messages.clear()
    run_finetune(_config(root, model_dir, use_cache=True, out=str(root / f"h_{scope}"), **kw), log=messages.append)
    assert any("need float32" in m for m in messages), messages
    cache_file.unlink()


def test_peft_command_reports_bad_input_cleanly(setup, monkeypatch):
    root, model_dir = setup
    runner = CliRunner()
    import featstore.audio

    def unreadable(row, **kwargs):
        raise featstore.audio.AudioError(row["path"], "cannot decode")

    with monkeypatch.context() as m:
        m.setattr(featstore.audio, "load_row", unreadable)
        res = runner.invoke(finetune_app, ["peft", "--model", str(model_dir), "--train-corpus", "tgt", "--test-corpus", "tgt",
                                           "--layer", "1", "--no-use-cache", "--cache-root", str(root)])
    assert res.exit_code == 2 and "cannot decode" in res.output and "Traceback" not in res.output
    res = runner.invoke(finetune_app, ["peft", "--model", str(model_dir), "--train-corpus", "nope", "--test-corpus", "nope",
                                       "--layer", "1", "--cache-root", str(root)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    res = runner.invoke(finetune_app, ["peft", "--model", str(model_dir), "--train-corpus", "tgt", "--test-corpus", "tgt",
                                       "--strategy", "lora+dora", "--cache-root", str(root)])
    assert res.exit_code == 2
    res = runner.invoke(finetune_app, ["peft", "--model", str(model_dir), "--train-corpus", "tgt", "--test-corpus", "tgt",
                                       "--layer", "2", "--max-epochs", "1", "--fold", "0", "--strategy", "wg",
                                       "--cache-root", str(root), "--out", str(root / "cli_run")])
    assert res.exit_code == 0, res.output
    assert (root / "cli_run" / "results.parquet").exists() and "UA mean" in res.output
    assert "trainable of" in res.output and "%)" in res.output


def test_layer_best_comes_from_the_probes(setup):
    from finetune.run import FinetuneError
    from probes.results import best_layers_path, write_best_layers

    root, model_dir = setup
    alias = load_model(str(model_dir)).alias
    cfg = _config(root, model_dir, layer="best", folds=(0,), train=TrainConfig(max_epochs=1, batch_size=8),
                  save_checkpoints=False, out=str(root / "best"))
    path = best_layers_path(root)
    if path.exists():
        path.unlink()
    with pytest.raises(FinetuneError, match="probes layerwise"):
        run_finetune(cfg)
    write_best_layers({alias: {"trans": 3, "mono": 1}}, path)
    frame = run_finetune(cfg)
    assert frame["layer"].to_list() == [3] and frame["setting"].to_list() == ["trans"]


def test_bench_command_times_both_scopes():
    res = CliRunner().invoke(finetune_app, ["bench", "--model-size", "tiny", "--layer", "2", "--n-utts", "4",
                                            "--duration-s", "0.5", "--epochs", "1", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["scope"] for r in rows] == ["every-layer", "target-layer"]
    assert all(r["recompute_s"] > 0 and r["cached_s"] > 0 for r in rows)
    assert all(r["speedup"] == pytest.approx(r["recompute_s"] / r["cached_s"]) for r in rows)
    assert [r["target"] for r in rows] == [1.3, 3.0]
    assert all(r["meets_target"] == (r["speedup"] >= r["target"]) for r in rows)
    text = CliRunner().invoke(finetune_app, ["bench", "--model-size", "tiny", "--layer", "2", "--n-utts", "4",
                                             "--duration-s", "0.5", "--epochs", "1"])
    assert text.exit_code == 0 and text.output.count("target >= ") == 2, text.output
    bad = CliRunner().invoke(finetune_app, ["bench", "--model-size", "tiny", "--layer", "9"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def _mixed_language_copy(root, folds_with_en: bool) -> str:
    """Corpus 'mix': the German 'tgt' rows plus English rows; the folds take German only
    (like ESD's folds of its Mandarin speakers), or also one English row."""
    base = load_manifest(manifest_path("tgt", root))
    en = base.with_columns(pl.lit("en").alias("language"), (pl.col("utt_id") + "_en").alias("utt_id"))
    manifest = pl.concat([base, en]).with_columns(pl.lit("mix").alias("corpus"))
    save_manifest(manifest, manifest_path("mix", root))
    folds = pl.read_parquet(splits_path("tgt", root))
    if folds_with_en:
        folds = pl.concat([folds, pl.DataFrame({"fold": [0], "part": ["train"], "utt_id": [en["utt_id"][0]]})])
    meta = {"scheme": json.dumps("test"), "seed": "0", "manifest_fingerprint": json.dumps(manifest_fingerprint(manifest))}
    folds.write_parquet(splits_path("mix", root), metadata=meta)
    return "mix"


def test_only_the_folds_languages_count(setup):
    root, model_dir = setup
    name = _mixed_language_copy(root, folds_with_en=False)
    frame = run_finetune(_config(root, model_dir, train_corpus=name, test_corpus=name, folds=(0,),
                                 out=str(root / "runs" / "mix")))
    assert frame["setting"].to_list() == ["trans"]  # German folds, Mandarin model
    preds = pl.read_parquet(root / "runs" / "mix" / "predictions.parquet")
    assert not any(u.endswith("_en") for u in preds["utt_id"])
    name = _mixed_language_copy(root, folds_with_en=True)
    with pytest.raises(FinetuneError, match="folds mix languages"):
        run_finetune(_config(root, model_dir, train_corpus=name, test_corpus=name, folds=(0,)))
