"""Tiny random models written in every real on-disk format, for tests and the demo.

``save_tiny_model(dir, family, fmt)`` writes what the hub would give you:

- ``fmt="model"``: a bare encoder of any family in ``registry.FAMILIES``
  (``Wav2Vec2Model``, ``WavLMModel``, ``HubertModel``, ``Data2VecAudioModel``; like
  microsoft/wavlm-large, facebook/hubert-base-ls960, facebook/data2vec-audio-base);
- ``fmt="pretraining"`` (wav2vec 2.0 and WavLM): ``wav2vec2.``/``wavlm.``-prefixed encoder
  plus the quantizer and projection heads (like TencentGameMate/chinese-wav2vec2-base,
  wav2vec2-base-de-voxpopuli-v2, facebook/wav2vec2-xls-r-300m);
- ``fmt="ctc"``: ``*ForCTC`` with its ``lm_head`` and the family's prefix (``hubert.``,
  ``data2vec_audio.`` ...; like facebook/wav2vec2-base-960h, facebook/hubert-large-ls960-ft);
- ``fmt="speechbrain"``: the SpeechBrain folder of speechbrain/emotion-diarization-wavlm-large.

Weights go to ``model.safetensors`` (current names of the positional convolution's weight
norm) or ``pytorch_model.bin`` (the old ``weight_g``/``weight_v`` names, as in the hub's
older checkpoints); ``shards > 1`` writes ``*-0000i-of-0000n`` files plus an index.
Every family: ``tiny_config(family, ...)``; data2vec-audio's tiny model keeps its stack of
positional convolutions (3 layers of kernel 7 instead of 5 of kernel 19).
Tiny models use the real convolution schedule (kernels 10,3,3,3,3,2,2, strides
5,2,2,2,2,2,2), so frame counts are the real ones. ``size="base"`` gives a base-sized
config (12 layers, 768 dims) for benchmarks and the demo's untrained models.
Randomness comes from ``seed`` only (the global torch RNG is forked and restored).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import PretrainedConfig, Wav2Vec2Config, Wav2Vec2ForPreTraining

from featstore.models.configs import CONFIG_CLASSES, ENCODER_CLASSES, front_end_norm, transformers_class
from featstore.models.registry import FAMILIES

FORMATS = ("model", "pretraining", "ctc", "speechbrain")
SIZES = ("tiny", "base")
REAL_CONV = {"conv_kernel": (10, 3, 3, 3, 3, 2, 2), "conv_stride": (5, 2, 2, 2, 2, 2, 2)}
_TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "conv_dim": (16,) * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
    "num_codevectors_per_group": 8,
    "num_codevector_groups": 2,
    "codevector_dim": 16,
    "proj_codevector_dim": 16,
    "num_buckets": 16,
    "max_bucket_distance": 40,
}
_BASE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "conv_dim": (512,) * 7,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
}
_ARCH = {
    **{(name, "model"): f.model_class for name, f in FAMILIES.items()},
    **{(name, "ctc"): f.ctc_class for name, f in FAMILIES.items() if f.ctc_class},
    ("wav2vec2", "pretraining"): "Wav2Vec2ForPreTraining",
    # transformers has no WavLMForPreTraining; the layout mirrors wav2vec 2.0's.
    ("wavlm", "pretraining"): "WavLMForPreTraining",
    ("wav2vec2", "speechbrain"): "Wav2Vec2Model",
    ("wavlm", "speechbrain"): "WavLMModel",
}
# data2vec-audio: `num_conv_pos_embeddings` counts positional convolution layers (5 in the
# real models) and `conv_pos_kernel_size` is their kernel (19); a tiny stack of 3 x 7 here
_FAMILY_TINY = {"data2vec-audio": {"num_conv_pos_embeddings": 3, "conv_pos_kernel_size": 7}}
_FAMILY_BASE = {"data2vec-audio": {"num_conv_pos_embeddings": 5, "conv_pos_kernel_size": 19}}
LABEL_CODES = ("a", "n", "h", "s")


def tiny_config(
    family: str, feat_extract_norm: str | None = None, size: str = "tiny", **overrides: object
) -> PretrainedConfig:
    """The family's config (``Wav2Vec2Config``, ``HubertConfig`` ...) with the real
    convolution schedule.

    Parameters
    ----------
    family : a key of ``registry.FAMILIES`` (``"wav2vec2"``, ``"wavlm"``, ``"hubert"``,
        ``"data2vec-audio"``)
    feat_extract_norm : {"group", "layer"}, optional
        Front-end normalisation; default ``"group"`` for wav2vec 2.0 and HuBERT (base
        models) and ``"layer"`` for WavLM (large). ``"layer"`` also sets
        ``do_stable_layer_norm`` (pre-norm transformer, as in wav2vec 2.0 large / XLS-R /
        MMS and HuBERT large). data2vec-audio has a layer-norm front end and a post-norm
        transformer, always (``"group"`` is refused).
    size : {"tiny", "base"}
        ``tiny``: 2 layers, 32 dims; ``base``: 12 layers, 768 dims.
    **overrides
        Any config field.
    """
    if family not in CONFIG_CLASSES:
        raise ValueError(f"family must be one of {sorted(CONFIG_CLASSES)}, got {family!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    fixed = FAMILIES[family].front_end_norm
    norm = feat_extract_norm or fixed or ("layer" if family == "wavlm" else "group")
    if norm not in ("group", "layer"):
        raise ValueError(f"feat_extract_norm must be 'group' or 'layer', got {norm!r}")
    if fixed and norm != fixed:
        raise ValueError(f"{family} has a {fixed}-norm front end; feat_extract_norm={norm!r} is not possible")
    sizes = _TINY if size == "tiny" else {**_TINY, **_BASE, "num_buckets": 320, "max_bucket_distance": 800}
    sizes = {**sizes, **(_FAMILY_TINY if size == "tiny" else _FAMILY_BASE).get(family, {})}
    values: dict = {
        **REAL_CONV,
        **sizes,
        **({} if fixed else {"feat_extract_norm": norm, "do_stable_layer_norm": norm == "layer"}),
        "conv_bias": norm == "layer",
        "vocab_size": 12,
        "mask_time_prob": 0.05,
        "layerdrop": 0.0,
        "hidden_dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "feat_proj_dropout": 0.0,
        "final_dropout": 0.0,
    }
    values.update(overrides)
    values["conv_dim"] = tuple(values["conv_dim"])
    values["conv_kernel"] = tuple(values["conv_kernel"])
    values["conv_stride"] = tuple(values["conv_stride"])
    return CONFIG_CLASSES[family](**values)


def build_tiny_model(family: str, fmt: str, config: PretrainedConfig, seed: int = 0) -> torch.nn.Module:
    """The full random model of ``fmt`` (heads included), deterministic in ``seed``.

    For ``fmt="pretraining"`` with WavLM (no transformers class) a ``ModuleDict`` with
    ``wavlm`` (the encoder) and the pre-training heads of wav2vec 2.0 is returned.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if (family, fmt) not in _ARCH:
        raise ValueError(f"no tiny {family} model in format {fmt!r} (formats of {family}: "
                         f"{sorted(f for fam, f in _ARCH if fam == family)})")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if fmt in ("model", "speechbrain"):
            model = ENCODER_CLASSES[family](config)
        elif fmt == "ctc":
            model = transformers_class(FAMILIES[family].ctc_class)(config)
        elif family == "wav2vec2":
            model = Wav2Vec2ForPreTraining(config)
        else:
            heads = Wav2Vec2ForPreTraining(Wav2Vec2Config(**{**config.to_dict(), "model_type": "wav2vec2"}))
            model = torch.nn.ModuleDict(
                {
                    "wavlm": ENCODER_CLASSES["wavlm"](config),
                    "quantizer": heads.quantizer,
                    "project_hid": heads.project_hid,
                    "project_q": heads.project_q,
                }
            )
        # Fresh init leaves norms at 1 and biases at 0, so a weight loaded into the wrong
        # slot (or not at all) could go unnoticed; perturb every parameter.
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.05 * torch.randn_like(param))
    return model.eval()


def _legacy_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        key = key.replace(".parametrizations.weight.original0", ".weight_g")
        key = key.replace(".parametrizations.weight.original1", ".weight_v")
        renamed[key] = value
    return renamed


def _write_weights(state: dict[str, torch.Tensor], directory: Path, safetensors: bool, shards: int) -> None:
    state = {k: v.detach().contiguous().clone() for k, v in state.items()}
    stem, ext = ("model", "safetensors") if safetensors else ("pytorch_model", "bin")
    keys = list(state)
    if shards <= 1:
        parts = [(f"{stem}.{ext}", keys)]
    else:
        size = -(-len(keys) // shards)
        parts = [
            (f"{stem}-{i + 1:05d}-of-{shards:05d}.{ext}", keys[i * size : (i + 1) * size])
            for i in range(shards)
        ]
    weight_map = {}
    for name, part in parts:
        chunk = {k: state[k] for k in part}
        if safetensors:
            save_file(chunk, str(directory / name), metadata={"format": "pt"})
        else:
            torch.save(chunk, directory / name)
        weight_map.update({k: name for k in part})
    if shards > 1:
        total = sum(v.numel() * v.element_size() for v in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (directory / f"{stem}.{ext}.index.json").write_text(json.dumps(index, indent=2))


def _write_speechbrain(
    directory: Path, model: torch.nn.Module, config: PretrainedConfig, seed: int, output_norm: bool
) -> None:
    # SpeechBrain's wrapper keeps the transformers model as `.model`; old torch names.
    state = {"model." + k: v for k, v in _legacy_weight_norm(model.state_dict()).items()}
    torch.save(state, directory / "wav2vec2.ckpt")
    gen = torch.Generator().manual_seed(seed + 1)
    weight = torch.randn(len(LABEL_CODES), config.hidden_size, generator=gen) / config.hidden_size**0.5
    torch.save({"0.w.weight": weight}, directory / "model.ckpt")
    stats = {
        "count": 0,
        "glob_mean": torch.zeros(1),
        "glob_std": torch.ones(1),
        "spk_dict_mean": {},
        "spk_dict_std": {},
        "spk_dict_count": {},
    }
    torch.save(stats, directory / "input_norm.ckpt")
    lines = [f"'{code}' => {i}" for i, code in enumerate(LABEL_CODES)]
    (directory / "label_encoder.txt").write_text("\n".join([*lines, "=" * 16, "'starting_index' => 0", ""]))
    (directory / "hyperparams.yaml").write_text(
        _HYPERPARAMS.format(dim=config.hidden_size, n=len(LABEL_CODES), output_norm=output_norm)
    )


_HYPERPARAMS = """\
# Tiny stand-in for speechbrain/emotion-diarization-wavlm-large's hyperparams.yaml
HPARAMS_NEEDED: ["window_length", "stride", "encoder_dim", "out_n_neurons", "avg_pool", "log_softmax"]
MODULES_NEEDED: ["input_norm", "wav2vec2", "output_mlp"]
wav2vec2_hub: microsoft/wavlm-large
wav2vec2_folder: wav2vec2_checkpoint
pretrained_path: speechbrain/emotion-diarization-wavlm-large
encoder_dim: {dim}
out_n_neurons: {n}
window_length: 1
stride: 1
input_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
wav2vec2: !new:speechbrain.lobes.models.huggingface_transformers.wavlm.WavLM
    source: !ref <wav2vec2_hub>
    output_norm: {output_norm}
    freeze: True
    save_path: !ref <wav2vec2_folder>
avg_pool: !new:speechbrain.nnet.pooling.Pooling1d
    pool_type: "avg"
    kernel_size: !ref <window_length>
    stride: !ref <stride>
    ceil_mode: True
output_mlp: !new:speechbrain.nnet.linear.Linear
    input_size: !ref <encoder_dim>
    n_neurons: !ref <out_n_neurons>
    bias: False
model: !new:torch.nn.ModuleList
    - [!ref <output_mlp>]
label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        input_norm: !ref <input_norm>
        wav2vec2: !ref <wav2vec2>
        model: !ref <model>
        label_encoder: !ref <label_encoder>
    paths:
        input_norm: !ref <pretrained_path>/input_norm.ckpt
        wav2vec2: !ref <pretrained_path>/wav2vec2.ckpt
        model: !ref <pretrained_path>/model.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""


def save_tiny_model(
    directory: str | Path,
    family: str = "wav2vec2",
    fmt: str = "model",
    safetensors: bool = True,
    feat_extract_norm: str | None = None,
    seed: int = 0,
    *,
    size: str = "tiny",
    shards: int = 1,
    legacy_weight_norm: bool | None = None,
    preprocessor: bool = True,
    do_normalize: bool | None = None,
    write_config: bool = True,
    output_norm: bool = True,
    language: str | None = None,
    untrained: bool = True,
    note: str | None = None,
    **config_overrides: object,
) -> Path:
    """Write a random model in a real on-disk format and return its folder.

    Parameters
    ----------
    directory : path
        Folder to create (or fill).
    family : a key of ``registry.FAMILIES`` (``"wav2vec2"``, ``"wavlm"``, ``"hubert"``,
        ``"data2vec-audio"``)
    fmt : {"model", "pretraining", "ctc", "speechbrain"}
        ``"pretraining"`` for wav2vec 2.0 and WavLM, ``"speechbrain"`` for WavLM only.
    safetensors : bool
        ``model.safetensors`` if True, else ``pytorch_model.bin`` (ignored for speechbrain).
    feat_extract_norm : {"group", "layer"}, optional
        See ``tiny_config``.
    seed : int
        Seed of every random weight.
    size : {"tiny", "base"}
        Model size (see ``tiny_config``).
    shards : int
        Number of weight shards (with an index json) for Hugging Face formats.
    legacy_weight_norm : bool, optional
        Store the positional convolution as ``weight_g``/``weight_v``; default: for
        ``.bin`` and SpeechBrain files only.
    preprocessor : bool
        Write ``preprocessor_config.json`` (Hugging Face formats).
    do_normalize : bool, optional
        Its ``do_normalize``; default ``feat_extract_norm == "layer"``.
    write_config : bool
        For ``speechbrain``: also write ``config.json`` (the real folder has none; without
        it the loader falls back to the WavLM-large config, which does not fit a tiny model).
    output_norm : bool
        For ``speechbrain``: ``output_norm`` in ``hyperparams.yaml``.
    language : str, optional
        When given, write ``crossling.json`` with ``language``, ``untrained`` and ``note``.
    untrained, note
        Fields of ``crossling.json``.
    **config_overrides
        Any config field (``num_hidden_layers=3`` ...).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = tiny_config(family, feat_extract_norm, size=size, **config_overrides)
    config.architectures = [_ARCH[(family, fmt)]]
    model = build_tiny_model(family, fmt, config, seed=seed)
    if fmt == "speechbrain":
        _write_speechbrain(directory, model, config, seed, output_norm)
        if write_config:
            config.to_json_file(str(directory / "config.json"))
    else:
        state = model.state_dict()
        if legacy_weight_norm if legacy_weight_norm is not None else not safetensors:
            state = _legacy_weight_norm(state)
        _write_weights(state, directory, safetensors, shards)
        config.to_json_file(str(directory / "config.json"))
        if preprocessor:
            norm = front_end_norm(config) == "layer" if do_normalize is None else do_normalize
            (directory / "preprocessor_config.json").write_text(
                json.dumps(
                    {
                        "do_normalize": norm,
                        "feature_extractor_type": "Wav2Vec2FeatureExtractor",
                        "feature_size": 1,
                        "padding_side": "right",
                        "padding_value": 0.0,
                        "return_attention_mask": front_end_norm(config) == "layer",
                        "sampling_rate": 16000,
                    },
                    indent=2,
                )
            )
    if language is not None:
        meta = {
            "language": language,
            "untrained": untrained,
            "note": note or "random weights, for demos and tests",
        }
        (directory / "crossling.json").write_text(json.dumps(meta, indent=2))
    return directory
