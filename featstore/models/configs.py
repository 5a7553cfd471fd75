"""Encoder configs: reading ``config.json``, building the bare encoder, input defaults.

Only the transformers classes named by the family registry
(``featstore.models.registry.FAMILIES``: ``Wav2Vec2Model``, ``WavLMModel``, ``HubertModel``,
``Data2VecAudioModel`` ...) are used; no ``AutoModel``, no remote code.
"""

from __future__ import annotations

import importlib
import json
import weakref
from pathlib import Path

import torch
import transformers
from transformers import PretrainedConfig

from featstore.models.registry import FAMILIES
from featstore.models.weights import ModelLoadError


def transformers_class(name: str) -> type:
    """A transformers class by name: ``"HubertModel"`` (exported by ``transformers``) or a
    full path ``"transformers.models.whisper.modeling_whisper.WhisperEncoder"``."""
    if "." not in name:
        return getattr(transformers, name)
    module, _, attr = name.rpartition(".")
    if not module.startswith("transformers."):
        raise ValueError(f"{name}: only transformers classes are used")
    return getattr(importlib.import_module(module), attr)


CONFIG_CLASSES: dict[str, type[PretrainedConfig]] = {
    name: transformers_class(family.config_class) for name, family in FAMILIES.items()}
"""``model_type`` -> transformers config class, from the family registry."""
ENCODER_CLASSES: dict[str, type[torch.nn.Module]] = {
    name: transformers_class(family.model_class) for name, family in FAMILIES.items()}
"""``model_type`` -> transformers bare encoder class, from the family registry."""
DEFAULT_SAMPLE_RATE_HZ = 16000

# microsoft/wavlm-large's config.json (transformers' conversion of the official
# checkpoint), used for the SpeechBrain wavlm-emo folder when no config.json is at hand:
# SpeechBrain builds that WavLM from the hub id, so its folder holds weights only.
WAVLM_LARGE_CONFIG: dict = {
    "model_type": "wavlm",
    "architectures": ["WavLMModel"],
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "hidden_act": "gelu",
    "hidden_dropout": 0.1,
    "activation_dropout": 0.0,
    "attention_dropout": 0.1,
    "feat_proj_dropout": 0.1,
    "final_dropout": 0.0,
    "layerdrop": 0.1,
    "layer_norm_eps": 1e-5,
    "initializer_range": 0.02,
    "feat_extract_norm": "layer",
    "feat_extract_activation": "gelu",
    "do_stable_layer_norm": True,
    "conv_dim": [512, 512, 512, 512, 512, 512, 512],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_bias": False,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "num_buckets": 320,
    "max_bucket_distance": 800,
    "apply_spec_augment": True,
    "mask_time_prob": 0.075,
    "mask_time_length": 10,
    "mask_feature_prob": 0.0,
    "mask_feature_length": 10,
    "num_codevectors_per_group": 320,
    "num_codevector_groups": 2,
    "codevector_dim": 768,
    "proj_codevector_dim": 768,
    "num_ctc_classes": 80,
    "vocab_size": 32,
    "use_weighted_layer_sum": False,
    "add_adapter": False,
}


def config_from_dict(data: dict, source: str) -> PretrainedConfig:
    """The family's config (``Wav2Vec2Config``, ``HubertConfig`` ...) from a ``config.json`` dict.

    Raises
    ------
    ValueError
        ``model_type`` is missing or not one of the supported families.
    """
    model_type = data.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_CLASSES:
        raise ModelLoadError(
            f"{source}: model_type {model_type!r} is not supported (supported: {sorted(CONFIG_CLASSES)})"
        )
    # Old transformers configs carry `gradient_checkpointing`, which would switch it on in
    # the built module; training code decides that itself.
    data = {k: v for k, v in data.items() if k != "gradient_checkpointing"}
    _check_sizes(data, source)
    try:
        config = CONFIG_CLASSES[model_type].from_dict(data)
    except Exception as err:  # transformers validates some fields itself
        raise ModelLoadError(f"{source}: not a usable {model_type} config ({err})") from None
    _SOURCES[id(config)] = source  # for build_encoder's messages; not stored in the config itself
    weakref.finalize(config, _SOURCES.pop, id(config), None)
    return config


_SOURCES: dict[int, str] = {}


# upper bounds far above any real model (wavlm-large: 1024 wide, 24 layers, 4096 FFN): a config
# beyond them is refused before torch allocates it (transformers allocates some weights
# outside the meta device, so a hostile hidden_size would take the machine's memory)
_POSITIVE_INTS = {"hidden_size": 1 << 15, "num_hidden_layers": 1 << 10, "num_attention_heads": 1 << 10,
                  "intermediate_size": 1 << 17, "num_conv_pos_embeddings": 1 << 12,
                  "num_conv_pos_embedding_groups": 1 << 10, "num_buckets": 1 << 14,
                  "max_bucket_distance": 1 << 16, "conv_pos_kernel_size": 1 << 12}
_MAX_CONV = 1 << 15
_INT_LISTS = ("conv_dim", "conv_kernel", "conv_stride")


def _check_sizes(data: dict, source: str) -> None:
    """The sizes an encoder is built from are positive whole numbers (a ModelLoadError naming
    ``source`` and the key otherwise), so that a bad config.json never fails inside torch."""
    def positive(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0

    for key, most in _POSITIVE_INTS.items():
        if key in data and not (positive(data[key]) and data[key] <= most):
            raise ModelLoadError(f"{source}: {key} must be a whole number in 1..{most}, found {data[key]!r}")
    lists = {k: data[k] for k in _INT_LISTS if k in data}
    for key, value in lists.items():
        if not isinstance(value, list) or not 0 < len(value) <= 64 or not all(
                positive(v) and v <= _MAX_CONV for v in value):
            raise ModelLoadError(f"{source}: {key} must be a list of 1..64 whole numbers in 1..{_MAX_CONV}")
    if len({len(v) for v in lists.values()}) > 1:
        raise ModelLoadError(f"{source}: conv_dim, conv_kernel and conv_stride must have the same length")
    from transformers.activations import ACT2FN

    arch = data.get("architectures")
    if arch is not None and not (isinstance(arch, list) and all(isinstance(a, str) for a in arch)):
        raise ModelLoadError(f"{source}: architectures must be a list of class names, found {arch!r}")

    for key in ("hidden_act", "feat_extract_activation"):
        if key in data and (not isinstance(data[key], str) or data[key] not in ACT2FN):
            raise ModelLoadError(f"{source}: {key} {data[key]!r} is not an activation transformers knows")
    heads, width = data.get("num_attention_heads"), data.get("hidden_size")
    if heads and width and width % heads:
        raise ModelLoadError(f"{source}: hidden_size {width} is not divisible by num_attention_heads {heads}")


def read_config(path: Path) -> PretrainedConfig:
    """Parse ``config.json`` at ``path`` into the family's config class."""
    head = Path(path).read_bytes()[:512] if Path(path).is_file() else b""
    if head.lstrip().startswith(b"version https://git-lfs"):
        raise ModelLoadError(f"{path}: this is a Git LFS pointer, not the config: fetch the real file")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ModelLoadError(f"{path}: unreadable config.json ({str(err).splitlines()[0][:200]})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return config_from_dict(data, str(path))


def build_encoder(config: PretrainedConfig) -> torch.nn.Module:
    """The bare encoder of ``config``'s family with SpecAugment switched off.

    SpecAugment masking (``apply_spec_augment``) would replace frames by the learnt
    mask embedding whenever the module is in training mode; extraction and fine-tuning
    here must see every frame, so it is turned off in the config.
    """
    config.apply_spec_augment = False
    try:
        return ENCODER_CLASSES[config.model_type](config)
    except Exception as err:  # a config value of the wrong type or size fails inside torch
        where = _SOURCES.get(id(config), f"the {config.model_type} config")
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ModelLoadError(f"{where}: cannot build the encoder from this config ({type(err).__name__}: {first})") from None


def read_preprocessor(folder: Path, config: PretrainedConfig) -> tuple[bool, int, str]:
    """``(do_normalize, sample_rate_hz, where)`` of a model folder.

    From ``preprocessor_config.json`` when present. Otherwise the default follows the
    convolutional front end: layer-norm front ends (``feat_extract_norm == "layer"``,
    wav2vec 2.0 large-lv60, XLS-R) were pre-trained on normalised waveforms, so
    ``do_normalize=True``; group-norm front ends (wav2vec 2.0 base) were not,
    ``do_normalize=False``.
    """
    path = Path(folder) / "preprocessor_config.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"{path}: unreadable preprocessor config ({str(err)[:200]})") from None
        if not isinstance(data, dict):
            raise ModelLoadError(f"{path}: expected a JSON object")
        rate = data.get("sampling_rate", DEFAULT_SAMPLE_RATE_HZ)
        if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
            raise ModelLoadError(f"{path}: sampling_rate must be a positive whole number of Hz, found {rate!r}")
        default_norm = front_end_norm(config) == "layer"
        return (
            bool(data.get("do_normalize", default_norm)),
            int(data.get("sampling_rate", DEFAULT_SAMPLE_RATE_HZ)),
            str(path),
        )
    return front_end_norm(config) == "layer", DEFAULT_SAMPLE_RATE_HZ, "default (feat_extract_norm)"


def front_end_norm(config: PretrainedConfig) -> str:
    """``"group"`` or ``"layer"``: the convolutional front end's normalisation
    (data2vec-audio has no ``feat_extract_norm``: its front end is always layer-normed)."""
    fixed = FAMILIES[config.model_type].front_end_norm if config.model_type in FAMILIES else ""
    return fixed or str(getattr(config, "feat_extract_norm", "layer"))
