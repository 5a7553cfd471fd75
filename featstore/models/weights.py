"""Reading weight files safely and mapping their keys onto a bare encoder.

Checkpoints come as ``model.safetensors`` or ``pytorch_model.bin`` (each possibly
sharded with an ``*.index.json``), or as SpeechBrain ``.ckpt`` files. ``.bin`` and
``.ckpt`` files are read with ``torch.load(weights_only=True)``: a file that needs
anything beyond tensors and plain containers is refused, never unpickled.

Key mapping onto a ``Wav2Vec2Model`` / ``WavLMModel``:

- wrapper prefixes are stripped (``module.``, ``model.``, ``wav2vec2.``, ``wavlm.``);
- pre-training and task heads are dropped (``quantizer``, ``project_hid``,
  ``project_q``, ``lm_head``, ``classifier``, ``projector`` ...);
- the positional convolution's weight norm is accepted under both names: the old
  ``weight_g``/``weight_v`` and ``parametrizations.weight.original0/1``;
- every encoder weight must be found (``masked_spec_embed``, used only by SpecAugment
  during training, may be absent): a missing one, an unexpected non-head key or a shape
  mismatch is a ``ModelLoadError`` that lists the keys.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import torch
from safetensors.torch import load_file

STRIP_PREFIXES = ("module.", "model.", "wav2vec2.", "wavlm.")
HEAD_PREFIXES = (
    "quantizer.",
    "project_hid.",
    "project_q.",
    "lm_head.",
    "classifier.",
    "projector.",
    "feature_extractor_head.",
    "final_proj.",
    "label_embs_concat",
    "layer_weights",
    "tdnn.",
)
OPTIONAL_KEYS = frozenset({"masked_spec_embed"})
_WEIGHT_NORM_NAMES = (
    (".weight_g", ".parametrizations.weight.original0"),
    (".weight_v", ".parametrizations.weight.original1"),
)
HF_WEIGHT_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)
_CHUNK_BYTES = 1 << 20
_FINGERPRINTS: dict[tuple, str] = {}


class ModelLoadError(ValueError):
    """A checkpoint that cannot be loaded faithfully; the message names the file and keys."""


def hf_weight_files(folder: Path) -> list[Path]:
    """The weight files of a Hugging Face folder, safetensors preferred, shards resolved.

    Raises
    ------
    ModelLoadError
        No weight file, or an index naming a shard that is not there.
    """
    for name in HF_WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return [path]
        try:
            weight_map = json.loads(path.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ModelLoadError(f"{path}: not a shard index with a 'weight_map' ({err})") from err
        shards = [folder / s for s in sorted(set(weight_map.values()))]
        absent = [str(s) for s in shards if not s.is_file()]
        if absent:
            raise ModelLoadError(f"{path}: shards listed in the index are missing: {absent}")
        return shards
    raise ModelLoadError(f"{folder}: no weight file (expected one of {', '.join(HF_WEIGHT_FILES)})")


def read_weight_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of one weight file (safetensors, or a torch pickle read with ``weights_only``).

    Raises
    ------
    ModelLoadError
        The file is unreadable, or needs unpickling of something other than tensors.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own error types
            raise ModelLoadError(f"{path}: unreadable safetensors file ({err})") from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(
            f"{path}: refused to load: the file holds more than tensors and plain containers, and "
            f"only weights_only=True loading is allowed (never unpickle untrusted code). {first}"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise ModelLoadError(f"{path}: unreadable torch checkpoint ({err})") from err
    return _unwrap_state_dict(obj, path)


def _unwrap_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    # Some exporters nest the weights one level down ({"state_dict": {...}}).
    if isinstance(obj, dict) and obj and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model", "module"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise ModelLoadError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def read_state_dict(files: list[Path]) -> dict[str, torch.Tensor]:
    """All tensors of ``files`` merged into one dict (a key in two shards is an error)."""
    merged: dict[str, torch.Tensor] = {}
    for path in files:
        part = read_weight_file(path)
        dupes = sorted(set(part) & set(merged))
        if dupes:
            raise ModelLoadError(f"{path}: keys already read from another shard: {dupes[:10]}")
        merged.update(part)
    return merged


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in STRIP_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def _weight_norm_alias(key: str, expected: set[str]) -> str:
    if key in expected:
        return key
    for old, new in _WEIGHT_NORM_NAMES:
        if key.endswith(old) and key[: -len(old)] + new in expected:
            return key[: -len(old)] + new
        if key.endswith(new) and key[: -len(new)] + old in expected:
            return key[: -len(new)] + old
    return key


def map_encoder_keys(
    raw: dict[str, torch.Tensor], expected: set[str]
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Map checkpoint keys onto encoder keys.

    Returns
    -------
    mapped : dict
        Encoder key -> tensor.
    dropped : list of str
        Original keys of heads that were dropped on purpose.
    unexpected : list of str
        Original keys that are neither encoder weights nor known heads.
    """
    mapped: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    unexpected: list[str] = []
    for key, tensor in raw.items():
        name = _weight_norm_alias(_strip(key), expected)
        if name in expected:
            mapped[name] = tensor
        elif name.startswith(HEAD_PREFIXES) or name in OPTIONAL_KEYS:
            dropped.append(key)
        else:
            unexpected.append(key)
    return mapped, dropped, unexpected


def load_encoder_weights(encoder: torch.nn.Module, raw: dict[str, torch.Tensor], source: str) -> dict:
    """Load ``raw`` (a checkpoint's tensors) into ``encoder``, checking every key.

    Returns
    -------
    dict
        ``{"loaded": n, "dropped": [...], "optional_missing": [...]}`` for provenance.

    Raises
    ------
    ModelLoadError
        An encoder weight is missing, a key is unexpected, or a shape differs.
    """
    own = encoder.state_dict()
    expected = set(own)
    mapped, dropped, unexpected = map_encoder_keys(raw, expected)
    missing = sorted(expected - set(mapped) - OPTIONAL_KEYS)
    shapes = sorted(
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in mapped.items()
        if tuple(v.shape) != tuple(own[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"{len(missing)} encoder weight(s) missing from the checkpoint: {missing}")
    if unexpected:
        problems.append(
            f"{len(unexpected)} key(s) that are neither encoder weights nor known heads "
            f"(config and weights disagree?): {sorted(unexpected)}"
        )
    if shapes:
        problems.append(f"shape mismatch: {shapes}")
    if problems:
        raise ModelLoadError(f"{source}: cannot load the encoder faithfully:\n  " + "\n  ".join(problems))
    # assign=True lets the encoder be built on the meta device (no random init of 300M
    # weights); tensors are cast to the model's dtype first (checkpoints may be fp16).
    mapped = {k: v.to(own[k].dtype) if v.is_floating_point() else v for k, v in mapped.items()}
    result = encoder.load_state_dict(mapped, strict=False, assign=True)
    still_missing = sorted(set(result.missing_keys) - OPTIONAL_KEYS)
    if still_missing or result.unexpected_keys:
        raise ModelLoadError(
            f"{source}: load_state_dict left keys unloaded: {still_missing} / {result.unexpected_keys}"
        )
    _materialise_optional(encoder, set(mapped), source)
    return {
        "loaded": len(mapped),
        "dropped": sorted(dropped),
        "optional_missing": sorted(OPTIONAL_KEYS & (expected - set(mapped))),
    }


def _materialise_optional(encoder: torch.nn.Module, loaded: set[str], source: str) -> None:
    # Optional weights absent from the checkpoint (masked_spec_embed, used only by
    # SpecAugment, which is off) are set to zeros: deterministic, no hidden RNG. They are
    # reset even when not on the meta device: transformers builds masked_spec_embed with
    # torch.Tensor(n), which ignores the device context and holds uninitialised memory.
    for name, param in list(encoder.named_parameters()):
        if name in OPTIONAL_KEYS and name not in loaded:
            owner = encoder.get_submodule(name.rpartition(".")[0])
            zeros = torch.zeros(param.shape, dtype=param.dtype)
            setattr(owner, name.rpartition(".")[2], torch.nn.Parameter(zeros))
        elif param.is_meta:
            raise ModelLoadError(f"{source}: weight {name} was never loaded")
    meta_buffers = [name for name, buf in encoder.named_buffers() if buf.is_meta]
    if meta_buffers:
        raise ModelLoadError(f"{source}: buffers never initialised: {meta_buffers}")


def _stat_key(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


def fingerprint_files(paths: list[Path]) -> str:
    """16-hex SHA-256 of the files' bytes, streamed, in sorted file-name order.

    Memoised by (path, size, mtime, inode) so that a 1.3 GB checkpoint is hashed once per process.
    """
    files = sorted((Path(p) for p in paths), key=lambda p: p.name)
    key = tuple((str(p.resolve()), *_stat_key(p)) for p in files)
    if key in _FINGERPRINTS:
        return _FINGERPRINTS[key]
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK_BYTES):
                digest.update(chunk)
    value = digest.hexdigest()[:16]
    _FINGERPRINTS[key] = value
    return value
