"""Where models are looked for, what a missing model says, and `featstore models`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket

import pytest
from typer.testing import CliRunner

from featstore.models import MODELS, ModelNotFoundError, hf_hub_cache, list_models, load_model, locate
from featstore.models.testing import save_tiny_model


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """An empty cache root, models folder and Hugging Face cache; no network at all."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "CROSSLING_MODELS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CROSSLING_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CROSSLING_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    return tmp_path


def test_registry_matches_the_paper():
    paper = {"w2v2-cn", "w2v2-de", "w2v2-en", "wavlm-emo", "wavlm-large"}
    whisper = {"whisper-base", "whisper-small"}  # Whisper hook (branch whisper)
    assert paper | whisper <= set(MODELS)
    assert MODELS["w2v2-cn"].hf_id == "TencentGameMate/chinese-wav2vec2-base"
    assert MODELS["w2v2-de"].hf_id == "facebook/wav2vec2-base-de-voxpopuli-v2"
    assert MODELS["w2v2-en"].hf_id == "facebook/wav2vec2-base-960h"
    assert MODELS["wavlm-emo"].hf_id == "speechbrain/emotion-diarization-wavlm-large"
    assert MODELS["wavlm-emo"].format == "speechbrain"
    assert [MODELS[a].language for a in ("w2v2-cn", "w2v2-de", "w2v2-en")] == ["cn", "de", "en"]
    for alias in ("w2v2-cn", "w2v2-de", "w2v2-en"):
        assert (MODELS[alias].n_hidden_states, MODELS[alias].hidden_size) == (13, 768)
    assert (MODELS["wavlm-large"].n_layers, MODELS["wavlm-large"].hidden_size) == (24, 1024)


def test_missing_alias_lists_every_folder_searched_without_network(env):
    with pytest.raises(ModelNotFoundError) as err:
        load_model("w2v2-en", search_dirs=[env / "extra"])
    message = str(err.value)
    for expected in (
        str(env / "extra" / "w2v2-en"),
        str(env / "models" / "w2v2-en"),
        str(env / "cache" / "models" / "w2v2-en"),
        str(env / "hub" / "models--facebook--wav2vec2-base-960h"),
        "config.json",
        "model.safetensors",
        "pytorch_model.bin",
        "facebook/wav2vec2-base-960h",
    ):
        assert expected in message, expected
    assert isinstance(err.value, FileNotFoundError)


def test_incomplete_folder_is_reported_with_what_it_lacks(env):
    folder = save_tiny_model(env / "models" / "w2v2-de", "wav2vec2", "pretraining")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="incomplete: lacks .*model.safetensors"):
        locate("w2v2-de")


def test_search_order(env):
    in_cache = save_tiny_model(env / "cache" / "models" / "w2v2-cn", "wav2vec2", "pretraining", seed=1)
    assert locate("w2v2-cn") == in_cache
    in_env = save_tiny_model(env / "models" / "w2v2-cn", "wav2vec2", "pretraining", seed=2)
    assert locate("w2v2-cn") == in_env
    # a folder under a model root holds whatever was put there (random weights too): the
    # source is that folder, not the registry's repository
    assert load_model("w2v2-cn").source == str(in_env.resolve())
    explicit = save_tiny_model(env / "mine" / "w2v2-cn", "wav2vec2", "pretraining", seed=3)
    loaded = load_model("w2v2-cn", search_dirs=[env / "mine"])
    assert loaded.path == explicit
    assert (loaded.alias, loaded.language, loaded.source) == ("w2v2-cn", "cn", str(explicit.resolve()))


def _as_hf_cache(src, hub, hf_id, revision):
    """Lay ``src`` out as huggingface_hub does: blobs named by hash, snapshot symlinks."""
    repo = hub / ("models--" + hf_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    snap = repo / "snapshots" / revision
    snap.mkdir(parents=True)
    for file in src.iterdir():
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copy(file, repo / "blobs" / digest)
        os.symlink(os.path.relpath(repo / "blobs" / digest, snap), snap / file.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return snap


def test_hf_cache_layout_is_found(env):
    src = save_tiny_model(env / "src", "wav2vec2", "ctc", safetensors=True)
    snap = _as_hf_cache(src, env / "hub", "facebook/wav2vec2-base-960h", "a" * 40)
    # an older, incomplete snapshot must not be picked
    (snap.parent / ("b" * 40)).mkdir()
    loaded = load_model("w2v2-en")
    assert loaded.path == snap
    assert loaded.source == "facebook/wav2vec2-base-960h" and loaded.language == "en"
    assert loaded.fingerprint == hashlib.sha256((src / "model.safetensors").read_bytes()).hexdigest()[:16]
    rows = {r["alias"]: r for r in list_models()}
    assert rows["w2v2-en"]["present"] and rows["w2v2-en"]["path"] == str(snap)
    assert not rows["w2v2-de"]["present"]


def test_hf_home_variant(env, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(env / "hfhome"))
    assert hf_hub_cache() == env / "hfhome" / "hub"
    src = save_tiny_model(env / "src", "wavlm", "model")
    snap = _as_hf_cache(src, env / "hfhome" / "hub", "microsoft/wavlm-large", "c" * 40)
    assert locate("wavlm-large") == snap


def test_unregistered_hf_id_from_cache_needs_a_language(env):
    src = save_tiny_model(env / "src", "wavlm", "model")
    _as_hf_cache(src, env / "hub", "someone/tiny-wavlm", "d" * 40)
    with pytest.raises(ValueError, match="language"):
        load_model("someone/tiny-wavlm")
    loaded = load_model("someone/tiny-wavlm", language="de")
    assert (loaded.alias, loaded.source, loaded.language) == ("tiny-wavlm", "someone/tiny-wavlm", "de")
    with pytest.raises(ModelNotFoundError, match="models--someone--absent"):
        load_model("someone/absent", language="de")


def test_a_registered_repository_id_points_to_its_alias(env):
    with pytest.raises(ModelNotFoundError, match="repository of model 'w2v2-en': give 'w2v2-en'"):
        load_model("facebook/wav2vec2-base-960h")
    with pytest.raises(ModelNotFoundError, match=r"did you mean 'w2v2-en' \(facebook/wav2vec2-base-960h\)"):
        load_model("facebook/wav2vec2-base")
    # in the Hugging Face cache but given by repository: the language error names the alias
    src = save_tiny_model(env / "src", "wavlm", "model")
    _as_hf_cache(src, env / "hub", "microsoft/wavlm-base", "e" * 40)
    with pytest.raises(ValueError, match="unknown language.*give 'wavlm-base'"):
        load_model("microsoft/wavlm-base")


def test_local_folder_language_rules(env):
    path = save_tiny_model(env / "any" / "my-model", "wav2vec2", "model")
    with pytest.raises(ValueError, match="crossling.json"):
        load_model(str(path))
    assert load_model(str(path), language="tj").language == "tj"
    (path / "crossling.json").write_text(json.dumps({"language": "yue"}))
    assert load_model(str(path)).language == "yue"
    with pytest.raises(ValueError, match="contradicts"):
        load_model(str(path), language="en")
    save_tiny_model(env / "models" / "w2v2-en", "wav2vec2", "ctc")
    with pytest.raises(ValueError, match="contradicts"):
        load_model("w2v2-en", language="de")
    assert load_model("w2v2-en", language="en").language == "en"
    # a registered alias whose folder says another language: refuse rather than guess
    save_tiny_model(env / "models" / "w2v2-de", "wav2vec2", "ctc", language="yue")
    with pytest.raises(ValueError, match="crossling.json says 'yue'"):
        load_model("w2v2-de")


def test_folder_named_after_an_alias(env):
    path = save_tiny_model(env / "elsewhere" / "w2v2-de", "wav2vec2", "model")
    assert load_model(str(path)).language == "de"  # the alias's language as the last resort
    assert load_model(str(path), language="yue").language == "yue"  # a path is not the alias


def test_unknown_name(env):
    with pytest.raises(ModelNotFoundError, match="unknown model 'no-such-model'.*known: .*w2v2-cn"):
        load_model("no-such-model")
    with pytest.raises(ModelNotFoundError, match="no such model folder"):
        load_model(str(env / "no" / "such-folder"))


def test_models_command(env):
    from cli import featstore_app

    save_tiny_model(env / "cache" / "models" / "w2v2-de", "wav2vec2", "pretraining")
    runner = CliRunner()
    result = runner.invoke(featstore_app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["alias"]: r for r in json.loads(result.output)}
    assert set(rows) == set(MODELS)
    assert rows["w2v2-de"]["present"] and rows["w2v2-de"]["path"] == str(env / "cache" / "models" / "w2v2-de")
    assert not rows["wavlm-emo"]["present"]
    table = runner.invoke(featstore_app, ["models"])
    assert table.exit_code == 0
    assert "speechbrain/emotion-diarization-wavlm-large" in table.output and "w2v2-de" in table.output
