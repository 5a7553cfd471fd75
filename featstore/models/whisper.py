"""Whisper's encoder: loading it from every on-disk form, its log-mel front end, tiny models.

A Whisper checkpoint is an encoder-decoder (``WhisperModel`` or
``WhisperForConditionalGeneration``); only the encoder is kept. It is held in a
:class:`WhisperEncoderOnly`, whose ``.encoder`` is transformers' ``WhisperEncoder`` (so
``encoder.encoder.layers`` names the transformer layers as for wav2vec 2.0 / WavLM) and
whose ``.mel`` is the ``WhisperFeatureExtractor`` that turns 16 kHz audio into the
log-mel windows it reads (30 s, 3000 mel frames -> 1500 encoder frames, 50 per second).

The feature extractor comes from the checkpoint's ``preprocessor_config.json`` when there is
one, else from the config's ``num_mel_bins`` with transformers' defaults; nothing is
downloaded. Weights are read through :mod:`featstore.models.weights` (``.bin`` files only
with ``weights_only=True``) and every encoder weight must be found.

The exact forward pass is :mod:`featstore.forward_whisper`; ``docs/whisper.md`` says why
the window is padded and what cropping means.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from featstore.models.weights import ModelLoadError, hf_weight_files, load_encoder_weights, read_state_dict

SAMPLE_RATE_HZ = 16000
HOP_SAMPLES = 160
"""Samples between log-mel frames (10 ms at 16 kHz)."""
SAMPLES_PER_FRAME = 320
"""Samples per encoder frame: the second convolution has stride 2 (20 ms, 50 frames per second)."""
FRAMES_PER_SECOND = SAMPLE_RATE_HZ // SAMPLES_PER_FRAME
DECODER_PREFIXES = ("decoder.", "proj_out.")
"""Checkpoint keys (after ``model.``) of the parts that are dropped: decoder and LM head."""
FORMATS = ("model", "conditional", "encoder")

# sizes a config.json may ask for (far above any real Whisper: large-v3 is 1280 wide, 32 layers)
_POSITIVE_INTS = {"d_model": 1 << 14, "encoder_layers": 1 << 8, "encoder_attention_heads": 1 << 8,
                  "encoder_ffn_dim": 1 << 16, "num_mel_bins": 1 << 10, "max_source_positions": 1 << 14}


class WhisperEncoderOnly(nn.Module):
    """Whisper's encoder with its front end.

    Attributes
    ----------
    encoder : transformers ``WhisperEncoder`` (``conv1``, ``conv2``, ``embed_positions``,
        ``layers``, ``layer_norm``); state-dict keys are ``encoder.*`` as in ``WhisperModel``
    config : its ``WhisperConfig`` (``model_type == "whisper"``)
    mel : ``WhisperFeatureExtractor`` (not a module; no parameters)
    """

    def __init__(self, config: WhisperConfig, mel: WhisperFeatureExtractor | None = None) -> None:
        super().__init__()
        self.config = config
        self.encoder = WhisperEncoder(config)
        self.mel = mel if mel is not None else default_feature_extractor(config)

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        """transformers' encoder forward on (B, n_mels, 3000) log-mel windows: (B, 1500, D)."""
        return self.encoder(input_features).last_hidden_state


def default_feature_extractor(config: WhisperConfig) -> WhisperFeatureExtractor:
    """transformers' Whisper front end for ``config.num_mel_bins`` (30 s windows at 16 kHz)."""
    return WhisperFeatureExtractor(feature_size=int(config.num_mel_bins), sampling_rate=SAMPLE_RATE_HZ)


def window_samples(encoder: nn.Module) -> int:
    """Samples of one encoder window (480000: 30 s at 16 kHz)."""
    return int(encoder.mel.n_samples)


def window_frames(encoder: nn.Module) -> int:
    """Encoder frames of one window (``max_source_positions``: 1500)."""
    return int(encoder.config.max_source_positions)


def whisper_config_from_dict(data: dict, source: str) -> WhisperConfig:
    """A ``WhisperConfig`` from a ``config.json`` dict, sizes checked before anything is built.

    Raises
    ------
    ModelLoadError
        Naming ``source``: not a Whisper config, or a size that is not a positive whole
        number in range, or a width not divisible by the head count.
    """
    if data.get("model_type") != "whisper":
        raise ModelLoadError(f"{source}: model_type {data.get('model_type')!r} is not 'whisper'")
    for key, most in _POSITIVE_INTS.items():
        value = data.get(key)
        if key in data and not (isinstance(value, int) and not isinstance(value, bool) and 0 < value <= most):
            raise ModelLoadError(f"{source}: {key} must be a whole number in 1..{most}, found {value!r}")
    width, heads = data.get("d_model", 0), data.get("encoder_attention_heads", 0)
    if width and heads and width % heads:
        raise ModelLoadError(f"{source}: d_model {width} is not divisible by encoder_attention_heads {heads}")
    data = {k: v for k, v in data.items() if k != "gradient_checkpointing"}
    try:
        config = WhisperConfig.from_dict(data)
    except Exception as err:  # transformers validates some fields itself
        raise ModelLoadError(f"{source}: not a usable whisper config ({err})") from None
    return prepare_config(config)


def prepare_config(config: WhisperConfig) -> WhisperConfig:
    """Settings every Whisper encoder gets here: SpecAugment off, and
    ``do_stable_layer_norm = True`` (Whisper is a pre-norm transformer whose last hidden
    state gets the encoder's final layer norm, as transformers reports it; fine-tuning
    reads this flag to apply that norm when it pools the last layer)."""
    config.apply_spec_augment = False
    config.do_stable_layer_norm = True
    return config


def is_whisper_folder(folder: str | Path) -> bool:
    """Whether ``folder/config.json`` declares ``model_type: whisper`` (False when unreadable:
    the generic loader then reports the problem)."""
    path = Path(folder) / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("model_type") == "whisper"


def read_feature_extractor(folder: str | Path, config: WhisperConfig) -> tuple[WhisperFeatureExtractor, bool, str]:
    """``(feature extractor, do_normalize, where)`` of a Whisper folder.

    From ``preprocessor_config.json`` when present (its ``feature_size`` must equal the
    config's ``num_mel_bins``, its ``sampling_rate`` be 16000 Hz), else
    :func:`default_feature_extractor`. ``do_normalize`` (per-clip zero mean, unit variance
    of the waveform, done by :func:`featstore.forward.prepare_inputs`) defaults to False, as
    in every OpenAI checkpoint.
    """
    path = Path(folder) / "preprocessor_config.json"
    if not path.is_file():
        return default_feature_extractor(config), False, "default (num_mel_bins)"
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{path}: unreadable preprocessor config ({str(err)[:200]})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: expected a JSON object")
    # dither (random noise added to the spectrum) is never taken: features must repeat exactly
    keep = ("feature_size", "sampling_rate", "hop_length", "chunk_length", "n_fft", "padding_value")
    try:
        mel = WhisperFeatureExtractor(**{k: data[k] for k in keep if k in data})
    except Exception as err:  # a value of the wrong type fails inside transformers
        raise ModelLoadError(f"{path}: not a usable Whisper feature extractor ({err})") from None
    if mel.feature_size != config.num_mel_bins:
        raise ModelLoadError(f"{path}: feature_size {mel.feature_size} differs from config.json's "
                             f"num_mel_bins {config.num_mel_bins}")
    if mel.sampling_rate != SAMPLE_RATE_HZ or mel.hop_length != HOP_SAMPLES:
        raise ModelLoadError(f"{path}: expected sampling_rate {SAMPLE_RATE_HZ} and hop_length {HOP_SAMPLES}, "
                             f"found {mel.sampling_rate} and {mel.hop_length}")
    if mel.nb_max_frames != 2 * config.max_source_positions:
        raise ModelLoadError(f"{path}: a {mel.chunk_length} s window makes {mel.nb_max_frames} mel frames but the "
                             f"encoder reads {2 * config.max_source_positions} (max_source_positions "
                             f"{config.max_source_positions})")
    return mel, bool(data.get("do_normalize", False)), str(path)


def encoder_keys(raw: dict[str, torch.Tensor], source: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The encoder's tensors of a checkpoint keyed ``encoder.*``, and the dropped keys.

    Accepts ``WhisperModel`` (``encoder.*``, ``decoder.*``), ``WhisperForConditionalGeneration``
    (``model.encoder.*``, ``model.decoder.*``, ``proj_out.*``) and a bare ``WhisperEncoder``
    (``conv1.*``, ``layers.*`` ...). Other keys are kept and then refused by the loader.
    """
    bare = not any(k.removeprefix("model.").startswith("encoder.") for k in raw)
    kept, dropped = {}, []
    for key, tensor in raw.items():
        name = key.removeprefix("model.")
        if name.startswith(DECODER_PREFIXES):
            dropped.append(key)
        else:
            kept["encoder." + name if bare else name] = tensor
    if not kept:
        raise ModelLoadError(f"{source}: the checkpoint holds no encoder weights (only {len(dropped)} decoder keys)")
    return kept, dropped


def load_whisper_folder(folder: str | Path) -> tuple[WhisperEncoderOnly, WhisperConfig, list[Path], dict, bool, int]:
    """``(model, config, weight files, extras, do_normalize, sample_rate_hz)`` of a Whisper
    folder, on the CPU, in eval mode.

    Raises
    ------
    ModelLoadError
        Bad config or preprocessor config, unreadable weights, a missing encoder weight,
        an unexpected key or a shape mismatch (the message names the file and keys).
    """
    folder = Path(folder)
    path = folder / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{path}: unreadable config.json ({str(err).splitlines()[0][:200]})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: expected a JSON object")
    config = whisper_config_from_dict(data, str(path))
    mel, do_normalize, where = read_feature_extractor(folder, config)
    files = hf_weight_files(folder)
    kept, dropped = encoder_keys(read_state_dict(files), str(folder))
    with torch.device("meta"):  # weights come from the checkpoint: skip the random init
        model = WhisperEncoderOnly(config, mel)
    report = load_encoder_weights(model, kept, str(folder))
    report["dropped"] = sorted(report["dropped"] + dropped)
    report["architectures"] = list(config.architectures or [])
    extras = {"load_report": report, "normalize_source": where, "feature_extractor_source": where,
              "window_s": mel.chunk_length, "frames_per_second": FRAMES_PER_SECOND}
    return model.eval(), config, files, extras, do_normalize, SAMPLE_RATE_HZ


# ---------------------------------------------------------------- tiny models for tests

_TINY = {"d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 4, "encoder_ffn_dim": 64,
         "decoder_layers": 1, "decoder_attention_heads": 4, "decoder_ffn_dim": 64, "num_mel_bins": 80,
         "vocab_size": 64, "max_target_positions": 32, "max_source_positions": 1500,
         "decoder_start_token_id": 1, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
         "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
         "encoder_layerdrop": 0.0, "decoder_layerdrop": 0.0}
# openai/whisper-base: 6 encoder layers of width 512 (8 heads, FFN 2048)
_BASE = {**_TINY, "d_model": 512, "encoder_layers": 6, "encoder_attention_heads": 8, "encoder_ffn_dim": 2048,
         "decoder_attention_heads": 8, "decoder_ffn_dim": 2048}
SIZES = {"tiny": _TINY, "base": _BASE}


def tiny_whisper_config(size: str = "tiny", **overrides: object) -> WhisperConfig:
    """A random-model ``WhisperConfig``: ``tiny`` (2 layers x 32) or ``base`` (6 x 512, the
    encoder of openai/whisper-base), always with real 30 s windows (1500 positions, 80 mels)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    return WhisperConfig(**{**SIZES[size], **overrides})


def build_tiny_whisper(fmt: str, config: WhisperConfig, seed: int = 0) -> nn.Module:
    """The full random model of ``fmt`` (``model``: ``WhisperModel``; ``conditional``:
    ``WhisperForConditionalGeneration``; ``encoder``: a bare ``WhisperEncoder``), every
    parameter perturbed so that a weight in the wrong slot shows; deterministic in ``seed``."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    classes = {"model": WhisperModel, "conditional": WhisperForConditionalGeneration, "encoder": WhisperEncoder}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = classes[fmt](config)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.05 * torch.randn_like(param))
    return model.eval()


def tiny_whisper_encoder(seed: int = 0, size: str = "tiny", **overrides: object) -> WhisperEncoderOnly:
    """A random :class:`WhisperEncoderOnly` in eval mode (what loading a saved tiny model gives)."""
    config = prepare_config(tiny_whisper_config(size, **overrides))
    full = build_tiny_whisper("model", config, seed=seed)
    model = WhisperEncoderOnly(config)
    model.encoder.load_state_dict(full.encoder.state_dict())
    return model.eval()


def save_tiny_whisper(directory: str | Path, fmt: str = "model", *, safetensors: bool = True, shards: int = 1,
                      seed: int = 0, size: str = "tiny", preprocessor: bool = True,
                      language: str | None = None, **overrides: object) -> Path:
    """Write a random Whisper checkpoint as transformers does and return its folder.

    ``model.safetensors`` or ``pytorch_model.bin`` (``safetensors=False``), ``shards > 1``
    files ``*-0000i-of-0000n`` plus the ``*.index.json``; ``config.json``; with
    ``preprocessor``, the ``preprocessor_config.json`` of ``WhisperFeatureExtractor``;
    with ``language``, a ``crossling.json``. Tied weights (``proj_out`` = the decoder's
    token embedding) are written once, as ``save_pretrained`` does.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = tiny_whisper_config(size, **overrides)
    config.architectures = [{"model": "WhisperModel", "conditional": "WhisperForConditionalGeneration",
                             "encoder": "WhisperEncoder"}[fmt]]
    model = build_tiny_whisper(fmt, config, seed=seed)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    if fmt == "conditional":
        state.pop("proj_out.weight", None)  # tied to model.decoder.embed_tokens.weight
    from featstore.models.testing import _write_weights  # the shard writer every tiny model uses

    _write_weights(state, directory, safetensors, shards)
    config.to_json_file(str(directory / "config.json"))
    if preprocessor:
        default_feature_extractor(config).to_json_file(str(directory / "preprocessor_config.json"))
    if language is not None:
        meta = {"language": language, "untrained": True, "note": "random weights, for demos and tests"}
        (directory / "crossling.json").write_text(json.dumps(meta, indent=2))
    return directory
