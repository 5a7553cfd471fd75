"""The study across package boundaries: a model's identity (alias, language) when its
folder is named otherwise, the diarization step end to end, and a changed manifest
rerunning exactly the steps that read it."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import study.report
from featstore.io import write_parquet
from featstore.models.testing import save_tiny_model
from featstore.paths import manifest_path
from featstore.synth import SynthConfig, synthesize_demo
from study import runner, steps
from study.config import load_study_config
from study.runner import run_study


def _ran(lines: list[str]) -> list[str]:
    return [line.split(maxsplit=2)[-1] for line in lines if line.startswith("[run ]")]


# ---- (c) model folders named unlike their aliases, fine-tuning at the best layer -------
@pytest.mark.slow
def test_study_keeps_alias_and_language_of_models_pinned_by_folder(tmp_path):
    """The alias and language of [models.X] reach extraction, the best-layer lookup and
    fine-tuning; without them fine-tuning would look up the best layer under the folder's
    name ``weights-A`` and fail."""
    data = tmp_path / "data"
    synthesize_demo(SynthConfig(out=data, per_emotion=4, languages=("cn", "de")))
    models = tmp_path / "models"
    # no language in the folders: only the study's [models] table says which it is
    save_tiny_model(models / "weights-A", "wav2vec2", "pretraining", feat_extract_norm="group")
    save_tiny_model(models / "weights-B", "wav2vec2", "ctc", feat_extract_norm="group", seed=1)
    path = tmp_path / "study.toml"
    path.write_text(f"""
[study]
out = "runs/tiny"
cache_root = "cache"
[corpora.esd]
reader = "esd"
root = "{data / 'cn'}"
[corpora.pavoque]
reader = "esd"
root = "{data / 'de'}"
language = "de"
[models.w2v2-cn]
path = "{models / 'weights-A'}"
language = "cn"
[models.w2v2-de]
path = "{models / 'weights-B'}"
language = "de"
[extract]
device = "cpu"
[probes]
models = ["w2v2-cn", "w2v2-de"]
corpora = ["esd", "pavoque"]
head = "logreg"
[finetune]
folds = 1
device = "cpu"
[finetune.train]
max_epochs = 1
[[finetune.runs]]
model = "w2v2-cn"
strategy = "lora"
train_corpus = "esd"
test_corpus = "esd"
layer = "best"
""")
    lines: list[str] = []
    run_study(load_study_config(path), log=lines.append)
    cache = tmp_path / "cache"
    assert (cache / "w2v2-cn" / "esd.h5").exists() and (cache / "w2v2-de" / "pavoque.h5").exists()
    assert not list(tmp_path.rglob("*weights-A*.h5")) and not (cache / "weights-A").exists()
    probes = pl.read_parquet(tmp_path / "runs" / "tiny" / "probes" / "results.parquet")
    assert set(probes["model"]) == {"w2v2-cn", "w2v2-de"}
    assert set(probes.filter(pl.col("model") == "w2v2-cn")["setting"]) == {"mono", "cross", "trans"}
    best = json.loads((cache / "runs" / "probes" / "best_layers.json").read_text())
    assert set(best) == {"w2v2-cn", "w2v2-de"}
    results = pl.read_parquet(next((tmp_path / "runs" / "tiny" / "finetune").rglob("results.parquet")))
    assert results["model"].to_list() == ["w2v2-cn"] and results["setting"].to_list() == ["mono"]
    assert results["layer"].to_list() == [best["w2v2-cn"]["mono"]]
    # a rerun finds everything under the aliases: nothing runs again
    again: list[str] = []
    run_study(load_study_config(path), log=again.append)
    assert _ran(again) == []


# ---- (d) the diarization step ------------------------------------------------------------
@pytest.mark.slow
def test_study_diarization_step_runs_end_to_end(tmp_path):
    from featstore.audio import load_row
    from featstore.manifest import load_manifest
    from probes.sed import ConcatConfig, concatenate_for_sed

    data, scratch = tmp_path / "data", tmp_path / "scratch"
    synthesize_demo(SynthConfig(out=data, per_emotion=3, languages=("en",)))
    steps.prepare("esd", data / "en", "demo-en", scratch, {"language": "en"})
    zed_dir = tmp_path / "zed"
    concatenate_for_sed(load_manifest(manifest_path("demo-en", scratch)), zed_dir, load_row, ConcatConfig(seed=0))
    save_tiny_model(tmp_path / "models" / "sb-folder", "wavlm", "speechbrain", language="en")
    path = tmp_path / "study.toml"
    path.write_text(f"""
[study]
out = "runs/study"
cache_root = "cache"
[corpora.zed]
reader = "zed"
root = "{zed_dir}"
[models.emo]
path = "{tmp_path / 'models' / 'sb-folder'}"
[probes]
enabled = false
[finetune]
enabled = false
[sed]
enabled = true
model = "emo"
corpus = "zed"
""")
    config = load_study_config(path)
    assert config.sed.run.device == "auto"  # the study's default; the library resolves it
    lines: list[str] = []
    report = run_study(config, log=lines.append)
    assert "sed" in _ran(lines)
    per = pl.read_parquet(tmp_path / "runs" / "study" / "sed" / "model" / "per_utterance.parquet")
    zed = load_manifest(manifest_path("zed", tmp_path / "cache"))
    assert sorted(per["utt_id"]) == sorted(zed["utt_id"])
    assert per["eder"].is_between(0, 1).all() and (per["n_frames"] > 0).all()
    assert report.exists()
    again: list[str] = []
    run_study(load_study_config(path), log=again.append)
    assert _ran(again) == []


# ---- (e) a changed manifest reruns exactly its dependants -------------------------------
def _write_manifest(name: str, root: Path, version: str) -> Path:
    """A prepared manifest as ``featstore prepare`` writes it: its fingerprint in the
    file-level ``crossling`` metadata."""
    frame = pl.DataFrame({"utt_id": [f"{name}-{version}"]})
    return write_parquet(frame, manifest_path(name, root), metadata={"fingerprint": version, "root": ""})


def test_a_changed_manifest_reruns_exactly_its_dependants(monkeypatch, tmp_path):
    def stub(name):
        def fn(*args, **kwargs):
            out = tmp_path / "outputs" / f"{name}-{len(list((tmp_path / 'outputs').glob('*')))}"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("x")
            return [out]
        return fn

    def prepare(reader, root, name, cache_root, options=None, check_audio=False):
        return [_write_manifest(name, cache_root, "v1")]

    monkeypatch.setattr(steps, "prepare", prepare)
    for name in ("splits", "probes", "finetune_run", "table_one"):
        monkeypatch.setattr(steps, name, stub(name))
    monkeypatch.setattr(runner, "_extract", stub("extract"))  # _manifest_fp is the real one
    monkeypatch.setattr(study.report, "build_report", lambda out: out / "report.html")
    for corpus in ("esd", "pavoque"):
        (tmp_path / corpus).mkdir()
    path = tmp_path / "study.toml"
    path.write_text("""
[study]
out = "run"
cache_root = "cache"
[corpora.esd]
reader = "esd"
root = "esd"
[corpora.pavoque]
reader = "pavoque"
root = "pavoque"
[models]
w2v2-cn = ""
[probes]
models = ["w2v2-cn"]
corpora = ["esd", "pavoque"]
[finetune]
folds = 1
[[finetune.runs]]
model = "w2v2-cn"
strategy = "lora"
train_corpus = "esd"
test_corpus = "esd"
layer = 3
[[finetune.runs]]
model = "w2v2-cn"
strategy = "lora"
train_corpus = "pavoque"
test_corpus = "pavoque"
layer = 3
""")
    config = load_study_config(path)
    first: list[str] = []
    run_study(config, log=first.append)
    assert len(_ran(first)) == 10
    unchanged: list[str] = []
    run_study(config, log=unchanged.append)
    assert _ran(unchanged) == []
    # PAVOQUE prepared again by hand, with other content: everything that reads it reruns,
    # nothing that reads only ESD does
    _write_manifest("pavoque", tmp_path / "cache", "v2")
    second: list[str] = []
    run_study(config, log=second.append)
    assert _ran(second) == ["splits/pavoque", "extract/w2v2-cn/pavoque", "probes",
                            "finetune/w2v2-cn/pavoque-to-pavoque/lora-every-layer-L3", "finetune/table1"]
