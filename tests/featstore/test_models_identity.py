"""A model keeps its identity: a model pinned by path keeps the alias and language given
(loading, extraction's cache folder and provenance); models saved under
<cache root>/models/<name>/ resolve by name and are listed by `featstore models`; an
unknown name lists what exists."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import h5py
import pytest
from extract_testkit import write_clips
from typer.testing import CliRunner

from featstore.errors import CrosslingError, UnknownNameError, UnsafeIdError
from featstore.extract import ExtractConfig, run_extraction
from featstore.manifest import save_manifest
from featstore.models import MODELS, UnknownModelError, list_models, load_model, resolve_device
from featstore.models.testing import save_tiny_model
from featstore.paths import features_path, manifest_path


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """An empty cache root and Hugging Face cache, no $CROSSLING_MODELS."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "CROSSLING_MODELS", "CROSSLING_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)  # a relative name must not be found as ./<name> by accident
    return tmp_path


def test_a_model_pinned_by_path_keeps_the_alias_and_language_given(env):
    folder = save_tiny_model(env / "downloads" / "chinese-wav2vec2-base", "wav2vec2", "model")
    loaded = load_model(folder, alias="w2v2-cn", language="cn")
    assert (loaded.alias, loaded.language) == ("w2v2-cn", "cn")
    assert loaded.path == folder.resolve() and loaded.provenance()["alias"] == "w2v2-cn"
    # a registered alias given for a pinned folder brings its language when none is given
    assert load_model(folder, alias="w2v2-cn").language == "cn"
    # any alias, any language: both kept
    other = load_model(str(folder), alias="my-model", language="yue")
    assert (other.alias, other.language) == ("my-model", "yue")
    # without an alias the folder's name stays the name, and no language is guessed
    with pytest.raises(ValueError, match="unknown language"):
        load_model(folder)
    assert load_model(folder, language="cn").alias == "chinese-wav2vec2-base"
    # a language contradicting the folder's own crossling.json is refused, naming both
    tagged = save_tiny_model(env / "downloads" / "tagged", "wav2vec2", "model", language="de")
    with pytest.raises(ValueError, match="contradicts"):
        load_model(tagged, alias="x", language="cn")
    with pytest.raises(UnsafeIdError):
        load_model(folder, alias="../escape", language="cn")


def test_extraction_writes_under_the_alias_not_the_folder_name(env):
    folder = save_tiny_model(env / "downloads" / "chinese-wav2vec2-base", "wav2vec2", "model")
    manifest = write_clips(env / "audio", 6, corpus="toy")
    root = env / "cache"
    save_manifest(manifest, manifest_path("toy", root))
    config = ExtractConfig(model=str(folder), alias="w2v2-cn", model_language="cn", corpus="toy", cache_root=root,
                           progress=False, device="cpu")
    report = run_extraction(config)
    assert report.path == features_path("w2v2-cn", "toy", root) and report.path.is_file()
    assert not (root / "chinese-wav2vec2-base").exists()
    with h5py.File(report.path, "r") as f:
        prov = json.loads(f.attrs["provenance"])
    assert prov["model_alias"] == "w2v2-cn" and prov["model_language"] == "cn"
    assert prov["model_source"] == str(folder.resolve())
    with pytest.raises(UnsafeIdError):
        ExtractConfig(model=str(folder), alias="..", corpus="toy")


def test_a_model_under_cache_models_resolves_by_name_and_is_listed(env):
    root = env / "cache"
    save_tiny_model(root / "models" / "untrained-w2v2-de", "wav2vec2", "model", language="de")
    loaded = load_model("untrained-w2v2-de", cache_root=root)
    assert (loaded.alias, loaded.language) == ("untrained-w2v2-de", "de")
    assert loaded.path == (root / "models" / "untrained-w2v2-de").resolve()
    assert loaded.extras["untrained"] is True
    # extraction by that name writes under the name
    manifest = write_clips(env / "audio", 4, corpus="toy")
    save_manifest(manifest, manifest_path("toy", root))
    report = run_extraction(ExtractConfig(model="untrained-w2v2-de", corpus="toy", cache_root=root, progress=False,
                                          device="cpu"))
    assert report.path == features_path("untrained-w2v2-de", "toy", root)
    rows = {r["alias"]: r for r in list_models(root=root)}
    assert set(MODELS) <= set(rows)
    row = rows["untrained-w2v2-de"]
    assert row["present"] and not row["registered"] and row["where"] == "cache root"
    assert row["path"] == str(root / "models" / "untrained-w2v2-de") and row["language"] == "de"
    assert (row["family"], row["n_layers"]) == ("wav2vec2", 2)

    from cli import featstore_app

    result = CliRunner().invoke(featstore_app, ["models", "--json", "--cache-root", str(root)])
    assert result.exit_code == 0, result.output
    listed = {r["alias"]: r for r in json.loads(result.output)}
    assert listed["untrained-w2v2-de"]["path"] == str(root / "models" / "untrained-w2v2-de")
    table = CliRunner().invoke(featstore_app, ["models", "--cache-root", str(root)])
    assert table.exit_code == 0 and "untrained-w2v2-de" in table.output


def test_an_unknown_name_lists_what_exists_and_where_to_put_it(env):
    root = env / "cache"
    save_tiny_model(root / "models" / "untrained-w2v2-de", "wav2vec2", "model", language="de")
    with pytest.raises(UnknownNameError) as err:
        load_model("untrained-w2v2-dee", cache_root=root)
    message = str(err.value)
    assert "did you mean 'untrained-w2v2-de'" in message
    for name in (*MODELS, "untrained-w2v2-de"):
        assert name in message
    assert str(root / "models" / "untrained-w2v2-dee") in message
    assert isinstance(err.value, UnknownModelError) and isinstance(err.value, CrosslingError)
    # a typo of a registered alias is offered the alias
    with pytest.raises(UnknownNameError, match="did you mean 'w2v2-cn'"):
        load_model("w2v2-cm", cache_root=root)
    # extraction shows the same message (a CrosslingError, not a traceback)
    with pytest.raises(UnknownNameError, match="untrained-w2v2-de"):
        run_extraction(ExtractConfig(model="untrained-w2v2-dee", corpus="toy", cache_root=root, progress=False),
                       manifest=write_clips(env / "audio", 2, corpus="toy"))


def test_resolve_device_is_the_one_rule():
    import torch

    from featstore.extract._compute import pick_device

    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want == pick_device("auto").type
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(CrosslingError, match="not a torch device"):
        resolve_device("gpu-please")
    with pytest.raises(CrosslingError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_listing_models_imports_neither_torch_nor_transformers(tmp_path):
    code = ("import sys; from featstore.models import list_models; list_models(root=sys.argv[1]); "
            "import featstore.commands.models; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    assert time.perf_counter() - start < 30  # generous: the point is the imports above
