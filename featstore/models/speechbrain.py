"""The SpeechBrain folder of ``wavlm-emo`` (speechbrain/emotion-diarization-wavlm-large).

The folder holds:

- ``hyperparams.yaml``: SpeechBrain's object graph. It is read as plain data (its
  ``!new:``/``!ref``/``!name:`` tags are kept as strings or mappings, nothing is
  constructed or imported) for ``output_norm``, the input normalisation and the hub id
  of the WavLM;
- ``wav2vec2.ckpt``: the state dict of SpeechBrain's WavLM wrapper; keys carry wrapper
  prefixes (``model.``) that are stripped before mapping onto ``WavLMModel``;
- ``model.ckpt``: ``ModuleList([Linear(1024, 4, bias=False)])``, key ``0.w.weight``;
  any single 2-D weight of shape ``(n_labels, hidden)`` is accepted;
- ``input_norm.ckpt``: ``InputNormalization`` statistics; the model uses
  ``norm_type: sentence, std_norm: False``, i.e. each clip's mean is subtracted;
- ``label_encoder.txt``: ``'a' => 0`` lines; codes a/n/h/s mean angry/neutral/happy/sad.

What SpeechBrain does at inference (``Speech_Emotion_Diarization.encode_batch``):
subtract each clip's mean (``input_norm``); layer-normalise the waveform if the WavLM's
feature-extractor config says ``do_normalize`` (microsoft/wavlm-large's hub config says
no); run WavLM; ``output_norm=True`` applies ``F.layer_norm(out, out.shape[1:])`` to the
last hidden state, i.e. a non-affine normalisation over the whole clip (time AND
feature axes together, see ``output_norm``); the linear head gives 4 logits per 20 ms
frame. Every ``.ckpt`` is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from transformers import PretrainedConfig

from featstore.manifest import CANONICAL_EMOTIONS
from featstore.models.configs import WAVLM_LARGE_CONFIG, config_from_dict, read_config
from featstore.models.resolve import hf_cache_snapshots
from featstore.models.weights import (
    ModelLoadError,
    checkpoint_sizes,
    encoder_sizes,
    load_encoder_weights,
    read_torch_object,
    read_weight_file,
)

SPEECHBRAIN_CODES = {"a": "angry", "n": "neutral", "h": "happy", "s": "sad"}
DEFAULT_HUB_ID = "microsoft/wavlm-large"
# The published folder's settings, used when hyperparams.yaml is absent.
DEFAULT_HPARAMS = {
    "output_norm": True,
    "input_norm": {"norm_type": "sentence", "mean_norm": True, "std_norm": False},
    "hub_id": DEFAULT_HUB_ID,
    "window_length": 1,
    "stride": 1,
}


class _TagTolerantLoader(yaml.SafeLoader):
    """A safe YAML loader that reads SpeechBrain's custom tags as plain data."""


def _plain(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_TagTolerantLoader.add_multi_constructor("!", _plain)


def _ref(value: object, top: dict) -> object:
    # `!ref <name>` arrives as the string "<name>"; follow simple references only.
    for _ in range(5):
        if isinstance(value, str) and re.fullmatch(r"<[\w.]+>", value.strip()):
            value = top.get(value.strip()[1:-1])
        else:
            break
    return value


def _bool(value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)


def read_hyperparams(folder: Path) -> dict:
    """Settings of a SpeechBrain folder that matter here, from ``hyperparams.yaml``.

    Returns ``{"output_norm", "input_norm", "hub_id", "window_length", "stride",
    "source"}``; the published model's values when the file is absent.
    """
    path = Path(folder) / "hyperparams.yaml"
    if not path.is_file():
        return {**DEFAULT_HPARAMS, "source": "defaults of speechbrain/emotion-diarization-wavlm-large"}
    try:
        top = yaml.load(path.read_text(encoding="utf-8"), Loader=_TagTolerantLoader)  # noqa: S506 - safe loader subclass
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as err:
        raise ModelLoadError(f"{path}: unreadable YAML ({_first_line(err)})") from None
    if not isinstance(top, dict):
        raise ModelLoadError(f"{path}: expected a mapping at top level")
    lobe = next((top[k] for k in ("wav2vec2", "wavlm", "ssl_model") if isinstance(top.get(k), dict)), {})
    norm = top.get("input_norm") if isinstance(top.get("input_norm"), dict) else None
    # SpeechBrain's own defaults: the lobe's output_norm=False, InputNormalization global/mean/std.
    input_norm = (
        {
            "norm_type": str(_ref(norm.get("norm_type", "global"), top)),
            "mean_norm": _bool(_ref(norm.get("mean_norm"), top), True),
            "std_norm": _bool(_ref(norm.get("std_norm"), top), True),
        }
        if norm is not None
        else None
    )
    hub = _ref(lobe.get("source"), top) or _ref(top.get("wav2vec2_hub"), top) or DEFAULT_HUB_ID
    return {
        "output_norm": _bool(_ref(lobe.get("output_norm"), top), False),
        "input_norm": input_norm,
        "hub_id": str(hub),
        "window_length": _positive_int(_ref(top.get("window_length", 1), top), path, "window_length"),
        "stride": _positive_int(_ref(top.get("stride", 1), top), path, "stride"),
        "source": str(path),
    }


def _positive_int(value: object, path: Path, key: str) -> int:
    if value is None or value == "":
        return 1
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise ModelLoadError(f"{path}: {key} must be a whole number >= 1, found {value!r}")
    return number


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0][:200] if text else type(err).__name__)


def parse_label_encoder(path: Path) -> tuple[dict[int, str], dict[int, str]]:
    """``(labels, codes)``: index -> canonical emotion, and index -> the file's own code.

    The file is SpeechBrain's ``CategoricalEncoder`` text format: ``'a' => 0`` lines, a
    ``================`` separator, then settings such as ``'starting_index' => 0``.
    """
    codes: dict[int, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no such file (the SpeechBrain label encoder)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{path}: not a SpeechBrain label encoder text file ({_first_line(err)})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("====="):
            break
        match = re.fullmatch(r"(.+?)\s*=>\s*(-?\d+)", line)
        if not match:
            raise ModelLoadError(f"{path}:{lineno}: expected \"'label' => index\", found {line!r}")
        try:
            code = ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as err:
            raise ModelLoadError(f"{path}:{lineno}: label {match.group(1)!r} is not a literal") from err
        codes[int(match.group(2))] = str(code)
    if sorted(codes) != list(range(len(codes))) or not codes:
        raise ModelLoadError(f"{path}: indices must be 0..n-1, found {sorted(codes)}")
    labels = {}
    for index, code in codes.items():
        name = SPEECHBRAIN_CODES.get(code.lower(), code.lower())
        if name not in CANONICAL_EMOTIONS:
            raise ModelLoadError(f"{path}: label {code!r} is not one of {CANONICAL_EMOTIONS} or a/n/h/s")
        labels[index] = name
    return labels, codes


def _is_transformers_config(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return False
    return isinstance(data, dict) and "model_type" in data


def speechbrain_config(folder: Path, hub_id: str = DEFAULT_HUB_ID) -> tuple[PretrainedConfig, str]:
    """The WavLM config for a SpeechBrain folder and where it came from.

    Looked up in order: ``<folder>/config.json``; a ``config.json`` under
    ``<folder>/wav2vec2_checkpoint/`` (SpeechBrain's save path for the hub model); the
    local Hugging Face cache of ``hub_id``; the built-in copy of microsoft/wavlm-large's
    config (``WAVLM_LARGE_CONFIG``).
    """
    folder = Path(folder)
    options = [folder / "config.json"]
    saved = folder / "wav2vec2_checkpoint"
    if saved.is_dir():
        options += sorted(saved.rglob("config.json"))
    options += [snap / "config.json" for snap in hf_cache_snapshots(hub_id)]
    for path in options:
        # the hub repository's own config.json is SpeechBrain's (a few bytes, no model_type),
        # not the WavLM's: only a transformers config counts here
        if path.is_file() and _is_transformers_config(path):
            return read_config(path), str(path)
    return config_from_dict(
        dict(WAVLM_LARGE_CONFIG), "WAVLM_LARGE_CONFIG"
    ), f"built-in {DEFAULT_HUB_ID} config"


def speechbrain_do_normalize(folder: Path, hub_id: str = DEFAULT_HUB_ID) -> tuple[bool, str]:
    """Whether SpeechBrain's wrapper layer-normalises the waveform, and why.

    The wrapper reads ``do_normalize`` from the hub model's preprocessor config: a
    ``preprocessor_config.json`` in the folder or in the local cache of ``hub_id`` is
    used when present; otherwise ``False``, the value of microsoft/wavlm-large's config.
    """
    folder = Path(folder)
    options = [folder / "preprocessor_config.json"]
    options += [snap / "preprocessor_config.json" for snap in hf_cache_snapshots(hub_id)]
    for path in options:
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise ModelLoadError(f"{path}: unreadable preprocessor config ({_first_line(err)})") from None
            if not isinstance(data, dict):
                raise ModelLoadError(f"{path}: not a preprocessor config (expected a JSON object)")
            return bool(data.get("do_normalize", False)), str(path)
    return False, f"default of {DEFAULT_HUB_ID}"


def load_frame_classifier(path: Path, hidden_size: int, n_labels: int) -> torch.nn.Linear:
    """The frame classifier of ``model.ckpt`` as an ``nn.Linear(hidden_size, n_labels)``."""
    tensors = read_weight_file(Path(path))
    weights = {k: v for k, v in tensors.items() if v.ndim == 2}
    if len(weights) != 1:
        raise ModelLoadError(f"{path}: expected exactly one 2-D weight, found {sorted(weights)}")
    key, weight = next(iter(weights.items()))
    if tuple(weight.shape) != (n_labels, hidden_size):
        raise ModelLoadError(
            f"{path}: {key} has shape {tuple(weight.shape)}, expected ({n_labels}, {hidden_size})"
        )
    biases = [v for v in tensors.values() if v.ndim == 1 and tuple(v.shape) == (n_labels,)]
    layer = torch.nn.Linear(hidden_size, n_labels, bias=bool(biases))
    with torch.no_grad():
        layer.weight.copy_(weight)
        if biases:
            layer.bias.copy_(biases[0])
    return layer.eval()


def load_input_norm(path: Path, settings: dict | None) -> dict:
    """Input normalisation settings plus the statistics stored in ``input_norm.ckpt``."""
    result = dict(settings or DEFAULT_HPARAMS["input_norm"])
    path = Path(path)
    if path.is_file():
        result["stats"] = read_torch_object(path)  # weights_only=True; corrupt files are ModelLoadErrors
    return result


def load_wavlm_weights(encoder: torch.nn.Module, folder: Path, config_source: str) -> dict:
    """Load ``<folder>/wav2vec2.ckpt`` into ``encoder`` (built from the config found by
    :func:`speechbrain_config`, described by ``config_source``).

    A folder without ``config.json`` whose checkpoint does not fit the config used in its
    place gets one short message saying what is missing and where, not every key.
    """
    folder = Path(folder)
    ckpt = folder / "wav2vec2.ckpt"
    raw = read_weight_file(ckpt)
    try:
        return load_encoder_weights(encoder, raw, str(ckpt))
    except ModelLoadError as err:
        sizes = checkpoint_sizes(raw)
        own = folder / "config.json"
        if config_source == str(own) or not sizes or "does not fit" not in str(err):
            raise
        why = ("config.json is missing" if not own.exists() else
               f"{own} is not a transformers config (unreadable, or no model_type)")
        raise ModelLoadError(
            f"{folder}: {why}, and {ckpt.name} ({sizes}) does not fit the config used "
            f"in its place ({config_source}: {encoder_sizes(encoder)}). Put the transformers config.json "
            f"of the WavLM this model was trained from in {folder}"
        ) from None


def input_norm(wave: torch.Tensor, settings: dict) -> torch.Tensor:
    """SpeechBrain's ``sentence`` input normalisation of one clip ``(n_samples,)``."""
    if settings.get("norm_type", "sentence") != "sentence":
        raise ValueError(f"only sentence input normalisation is supported, got {settings}")
    out = wave - wave.mean() if settings.get("mean_norm", True) else wave
    if settings.get("std_norm", False):
        out = out / out.std().clamp_min(1e-10)
    return out


def output_norm(
    last_hidden: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-5
) -> torch.Tensor:
    """SpeechBrain's ``output_norm``: non-affine layer norm over each clip's (T, D) block.

    Parameters
    ----------
    last_hidden : Tensor, shape (B, T, D) or (T, D)
        Last hidden state of the encoder.
    mask : bool Tensor, shape (B, T), optional
        Real frames; statistics use real frames only, so a padded batch gives each clip
        what ``F.layer_norm(out, out.shape[1:])`` gives it alone.
    """
    if last_hidden.ndim == 2:
        return F.layer_norm(last_hidden, last_hidden.shape, eps=eps)
    if mask is None:
        return F.layer_norm(last_hidden, last_hidden.shape[1:], eps=eps)
    weight = mask.to(last_hidden.dtype)[..., None]
    count = weight.sum(dim=(1, 2), keepdim=True) * last_hidden.shape[-1]
    mean = (last_hidden * weight).sum(dim=(1, 2), keepdim=True) / count
    var = (((last_hidden - mean) ** 2) * weight).sum(dim=(1, 2), keepdim=True) / count
    return (last_hidden - mean) / torch.sqrt(var + eps) * weight
