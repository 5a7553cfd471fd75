"""Every SSL family of the registry: loading from each on-disk form transformers writes, the
family read off config.json, and the exact batched forward pass (batched == one clip at a
time == transformers' own ``output_hidden_states``) for each front end / transformer variant."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers

from featstore.forward import (
    encoder_states,
    family_of,
    frame_counts,
    front_end,
    hidden_states,
    prepare_inputs,
)
from featstore.models import MODELS, load_model
from featstore.models.configs import CONFIG_CLASSES, ENCODER_CLASSES, transformers_class
from featstore.models.registry import FAMILIES, MULTILINGUAL
from featstore.models.testing import build_tiny_model, save_tiny_model, tiny_config

CONV_FAMILIES = ("hubert", "data2vec-audio", "wav2vec2", "wavlm")
# (fmt, safetensors, shards): bare model.safetensors, sharded safetensors with an index,
# task-head pytorch_model.bin (weights_only), sharded .bin with an index
FORMS = [("model", True, 1), ("model", True, 3), ("ctc", False, 1), ("ctc", False, 2)]
# (family, feat_extract_norm, config overrides): group-norm post-norm and layer-norm pre-norm
# of each family, HuBERT's variants, wav2vec 2.0 large / XLS-R / MMS, WavLM base
VARIANTS = [
    ("hubert", "group", {}),
    ("hubert", "layer", {}),
    ("hubert", "group", {"conv_pos_batch_norm": True}),
    ("hubert", "layer", {"feat_proj_layer_norm": False}),
    ("data2vec-audio", None, {}),
    ("wav2vec2", "layer", {}),
    ("wavlm", "group", {}),
]
IDS = ["hubert-base", "hubert-large", "hubert-bn", "hubert-noprojnorm", "data2vec-audio", "xlsr", "wavlm-base"]


def _encoder(family: str, norm: str | None, overrides: dict, n_layers: int = 3) -> torch.nn.Module:
    model = build_tiny_model(family, "model", tiny_config(family, norm, num_hidden_layers=n_layers, **overrides))
    pos = model.encoder.pos_conv_embed
    if getattr(pos, "batch_norm", None) is not None:  # running statistics away from 0 / 1
        with torch.no_grad():
            pos.batch_norm.running_mean.normal_(0.0, 0.5)
            pos.batch_norm.running_var.uniform_(0.5, 2.0)
    return model


def _clips(seed: int) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    lengths = [16000, 6400, 11025, 3200, 400]
    return prepare_inputs([rng.standard_normal(n).astype(np.float32) * 0.1 for n in lengths], do_normalize=True)


def test_family_registry_names_real_transformers_classes():
    for name, family in FAMILIES.items():
        assert CONFIG_CLASSES[name].model_type == name  # the key is config.json's model_type
        assert issubclass(ENCODER_CLASSES[name], transformers.PreTrainedModel)
        assert ENCODER_CLASSES[name].__name__ == family.model_class.rpartition(".")[2]
        if family.ctc_class:
            assert transformers_class(family.ctc_class).base_model_prefix + "." == family.weight_prefix
    for alias, spec in MODELS.items():
        assert spec.family in FAMILIES, alias
        multilingual = spec.pretraining_languages.endswith("languages")
        assert (spec.language == MULTILINGUAL) == multilingual, alias
    sizes = {a: (MODELS[a].family, MODELS[a].n_hidden_states, MODELS[a].hidden_size) for a in
             ("xlsr-300m", "mms-300m", "mhubert-147", "hubert-base", "data2vec-audio-base", "wavlm-base-plus")}
    assert sizes == {"xlsr-300m": ("wav2vec2", 25, 1024), "mms-300m": ("wav2vec2", 25, 1024),
                     "mhubert-147": ("hubert", 13, 768), "hubert-base": ("hubert", 13, 768),
                     "data2vec-audio-base": ("data2vec-audio", 13, 768), "wavlm-base-plus": ("wavlm", 13, 768)}


@pytest.mark.parametrize("fmt,safetensors,shards", FORMS, ids=["safetensors", "sharded-safetensors", "bin", "sharded-bin"])
@pytest.mark.parametrize("family", CONV_FAMILIES)
def test_every_form_loads_exactly(tmp_path, family, fmt, safetensors, shards):
    path = save_tiny_model(tmp_path / "m", family, fmt, safetensors=safetensors, shards=shards)
    names = {p.name for p in path.iterdir()}
    if shards > 1:
        assert ("model.safetensors.index.json" if safetensors else "pytorch_model.bin.index.json") in names
    assert json.loads((path / "config.json").read_text())["model_type"] == family
    loaded = load_model(str(path), language="en")
    assert loaded.family == family and family_of(loaded.encoder) is FAMILIES[family]
    assert type(loaded.encoder) is ENCODER_CLASSES[family] and not loaded.encoder.training
    assert len(loaded.weight_files) == shards
    assert loaded.n_hidden_states == 3 and loaded.hidden_size == 32
    # the reference: transformers reads the same folder itself
    ref_class = getattr(transformers, FAMILIES[family].model_class if fmt == "model" else FAMILIES[family].ctc_class)
    reference = ref_class.from_pretrained(str(path)).eval()
    reference = reference if fmt == "model" else getattr(reference, reference.base_model_prefix)
    mine, theirs = loaded.encoder.state_dict(), reference.state_dict()
    assert set(mine) - {"masked_spec_embed"} == set(theirs) - {"masked_spec_embed"}
    for key, value in theirs.items():
        if key != "masked_spec_embed":
            assert torch.equal(mine[key], value), key
    if fmt == "ctc":
        assert set(loaded.extras["load_report"]["dropped"]) == {"lm_head.weight", "lm_head.bias"}


def test_a_bin_with_pickled_code_is_refused(tmp_path):
    path = save_tiny_model(tmp_path / "m", "hubert", "model", safetensors=False)
    state = torch.load(path / "pytorch_model.bin", weights_only=True)
    state["evil"] = torch.nn.Linear(2, 2)  # a module needs unpickling beyond tensors
    torch.save(state, path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="refused to load"):
        load_model(str(path), language="en")


def test_family_follows_config_json_not_the_folder_name(tmp_path):
    path = save_tiny_model(tmp_path / "wav2vec2-looking-name", "data2vec-audio", "model")
    assert load_model(str(path), language="en").family == "data2vec-audio"
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "model_type": "hubert"}))
    with pytest.raises(ValueError, match="cannot load the encoder faithfully"):
        load_model(str(path), language="en")  # a data2vec checkpoint does not fit a HuBERT


@pytest.mark.parametrize("family,norm,overrides", VARIANTS, ids=IDS)
def test_one_clip_equals_transformers_output_hidden_states(family, norm, overrides):
    model = _encoder(family, norm, overrides)
    clip = _clips(0)[0]
    states, mask = hidden_states(model, [clip])
    with torch.no_grad():
        ref = model(clip[None], output_hidden_states=True)
    assert mask.all() and len(ref.hidden_states) == states.shape[0] == 4
    assert (states[-1, 0] - ref.last_hidden_state[0]).abs().max() <= 1e-5
    # pre-norm: transformers 5 records the last layer before the final layer norm; ours is the
    # model's real output (checked against last_hidden_state above)
    stable = bool(getattr(model.config, "do_stable_layer_norm", False))
    for i in range(len(ref.hidden_states) - (1 if stable else 0)):
        assert (states[i, 0] - ref.hidden_states[i][0]).abs().max() <= 1e-5, f"hidden state {i}"


@pytest.mark.parametrize("family,norm,overrides", VARIANTS, ids=IDS)
def test_batched_equals_one_clip_at_a_time(family, norm, overrides):
    model = _encoder(family, norm, overrides)
    clips = _clips(1)
    states, mask = hidden_states(model, clips)
    assert mask.sum(1).tolist() == frame_counts(model.config, [len(c) for c in clips]).tolist()
    worst = 0.0
    for b, clip in enumerate(clips):
        alone, _ = hidden_states(model, [clip])
        worst = max(worst, (states[:, b, : alone.shape[2]] - alone[:, 0]).abs().max().item())
    assert worst <= 1e-4


@pytest.mark.parametrize("family,norm,overrides", [VARIANTS[2], VARIANTS[4]], ids=["hubert-bn", "data2vec-audio"])
def test_positional_steps_need_the_padding_zeroed_again(family, norm, overrides):
    """Control: feeding the masked input to transformers' positional module in one go (what
    its padded batch does) changes a short clip's states; the re-masking is what makes it exact."""
    model = _encoder(family, norm, overrides)
    clips = _clips(2)[:2]
    with torch.no_grad():
        features, mask = front_end(model, clips)
        exact = encoder_states(model, features, mask)[0]
        h = features.masked_fill(~mask[..., None], 0.0)
        naive = model.encoder.layer_norm(h + model.encoder.pos_conv_embed(h))
    real = int(mask[1].sum())
    assert (naive[1, :real] - exact[1, :real]).abs().max() > 1e-3
    assert (naive[0] - exact[0]).abs().max() <= 1e-5  # the longest clip has no padding


@pytest.mark.parametrize("family,norm,overrides", VARIANTS, ids=IDS)
def test_start_from_a_cached_layer(family, norm, overrides):
    model = _encoder(family, norm, overrides)
    clips = _clips(3)[:3]
    with torch.no_grad():
        full, mask = hidden_states(model, clips)
        upper = encoder_states(model, full[2], mask, start_layer=2)
    m = mask[..., None]
    for j, h in enumerate(upper):
        assert ((h - full[2 + j]) * m).abs().max() <= 1e-5


def test_featstore_models_shows_family_size_and_pretraining_languages(tmp_path):
    from typer.testing import CliRunner

    from cli import featstore_app

    runner = CliRunner()
    res = runner.invoke(featstore_app, ["models", "--json", "--cache-root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rows = {r["alias"]: r for r in json.loads(res.output)}
    assert {k: rows["mms-300m"][k] for k in ("family", "n_layers", "hidden_size", "pretraining_languages")} == {
        "family": "wav2vec2", "n_layers": 24, "hidden_size": 1024, "pretraining_languages": "1406 languages"}
    assert rows["data2vec-audio-base"]["family"] == "data2vec-audio"
    assert rows["w2v2-cn"]["pretraining_languages"] == "cn"
    table = runner.invoke(featstore_app, ["models", "--cache-root", str(tmp_path)])
    assert table.exit_code == 0 and "pre-training language(s)" in table.output and "147 languages" in table.output
    # WavLM base (LibriSpeech 960 h) and base+ (94k h: Libri-Light, GigaSpeech, VoxPopuli English) are
    # English-only: the column says so, and the legend says the column is the pre-training data's language(s)
    assert rows["wavlm-base"]["pretraining_languages"] == rows["wavlm-base-plus"]["pretraining_languages"] == "en"
    assert "pre-training language(s): the language(s) of the speech the model was pre-trained on" in table.output


def test_hubert_pretraining_heads_are_dropped(tmp_path):
    """fairseq-converted HuBERT checkpoints may keep ``final_proj`` and ``label_embs_concat``."""
    from safetensors.torch import load_file, save_file

    path = save_tiny_model(tmp_path / "m", "hubert", "model")
    state = load_file(path / "model.safetensors")
    heads = {"final_proj.weight": torch.randn(16, 32), "final_proj.bias": torch.randn(16),
             "label_embs_concat": torch.randn(504, 16)}
    save_file({**{f"hubert.{k}": v for k, v in state.items()}, **heads}, str(path / "model.safetensors"))
    loaded = load_model(str(path), language="en")
    assert set(loaded.extras["load_report"]["dropped"]) == set(heads)
    assert all(torch.equal(loaded.encoder.state_dict()[k], v) for k, v in state.items())
