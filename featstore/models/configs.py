"""Encoder configs: reading ``config.json``, building the bare encoder, input defaults.

Only the transformers classes of the two families are used (``Wav2Vec2Model``,
``WavLMModel``); no ``AutoModel``, no remote code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import PretrainedConfig, Wav2Vec2Config, Wav2Vec2Model, WavLMConfig, WavLMModel

CONFIG_CLASSES: dict[str, type[PretrainedConfig]] = {"wav2vec2": Wav2Vec2Config, "wavlm": WavLMConfig}
ENCODER_CLASSES: dict[str, type[torch.nn.Module]] = {"wav2vec2": Wav2Vec2Model, "wavlm": WavLMModel}
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
    """A ``Wav2Vec2Config`` or ``WavLMConfig`` from a ``config.json`` dict.

    Raises
    ------
    ValueError
        ``model_type`` is missing or not one of the supported families.
    """
    model_type = data.get("model_type")
    if model_type not in CONFIG_CLASSES:
        raise ValueError(
            f"{source}: model_type {model_type!r} is not supported (supported: {sorted(CONFIG_CLASSES)})"
        )
    # Old transformers configs carry `gradient_checkpointing`, which would switch it on in
    # the built module; training code decides that itself.
    data = {k: v for k, v in data.items() if k != "gradient_checkpointing"}
    return CONFIG_CLASSES[model_type].from_dict(data)


def read_config(path: Path) -> PretrainedConfig:
    """Parse ``config.json`` at ``path`` into the family's config class."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable config.json ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return config_from_dict(data, str(path))


def build_encoder(config: PretrainedConfig) -> torch.nn.Module:
    """The bare encoder of ``config``'s family with SpecAugment switched off.

    SpecAugment masking (``apply_spec_augment``) would replace frames by the learnt
    mask embedding whenever the module is in training mode; extraction and fine-tuning
    here must see every frame, so it is turned off in the config.
    """
    config.apply_spec_augment = False
    return ENCODER_CLASSES[config.model_type](config)


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
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: unreadable preprocessor config ({err})") from err
        default_norm = config.feat_extract_norm == "layer"
        return (
            bool(data.get("do_normalize", default_norm)),
            int(data.get("sampling_rate", DEFAULT_SAMPLE_RATE_HZ)),
            str(path),
        )
    return config.feat_extract_norm == "layer", DEFAULT_SAMPLE_RATE_HZ, "default (feat_extract_norm)"
