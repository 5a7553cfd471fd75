"""Reading weight files safely and mapping their keys onto a bare encoder.

Checkpoints come as ``model.safetensors`` or ``pytorch_model.bin`` (each possibly
sharded with an ``*.index.json``), or as SpeechBrain ``.ckpt`` files. ``.bin`` and
``.ckpt`` files are read with ``torch.load(weights_only=True)``: a file that needs
anything beyond tensors and plain containers is refused, never unpickled.

Key mapping onto a bare encoder (``Wav2Vec2Model``, ``WavLMModel``, ``HubertModel``,
``Data2VecAudioModel``):

- wrapper prefixes are stripped (``module.``, ``model.`` and the encoder's family's own:
  ``wav2vec2.``, ``wavlm.``, ``hubert.`` or ``data2vec_audio.``; see ``registry.FAMILIES``);
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
import math
import pickle
import re
import struct
import warnings
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from featstore.errors import CrosslingError, UnsafeIdError, path_inside
from featstore.models.registry import FAMILIES

WRAPPER_PREFIXES = ("module.", "model.")
STRIP_PREFIXES = (*WRAPPER_PREFIXES, *dict.fromkeys(f.weight_prefix for f in FAMILIES.values() if f.weight_prefix))
"""Every prefix known (for messages about a checkpoint); loading strips the wrapper
prefixes and the encoder's own family prefix only (:func:`prefixes_for`)."""
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
_LIST_AT_MOST = 8
# bytes per element of the safetensors dtypes
_ST_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2,
                   "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
# torch's legacy (non-zip) format: a pickle (protocol 2) that starts with its magic number
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


class ModelLoadError(CrosslingError, ValueError):
    """A checkpoint that cannot be loaded faithfully; the message names the file and keys."""


def few(items: list | tuple | set, n: int = _LIST_AT_MOST) -> str:
    """At most ``n`` items of ``items`` (sorted) and how many more: keeps messages short."""
    items = sorted(str(i) for i in items)
    shown = ", ".join(items[:n])
    return shown + (f" ... (+{len(items) - n} more)" if len(items) > n else "")


def hf_weight_files(folder: Path) -> list[Path]:
    """The weight files of a Hugging Face folder, safetensors preferred, shards resolved.

    Raises
    ------
    ModelLoadError
        No weight file, an index that is not a shard index, an index naming a shard that
        is not there, or a shard name that leaves the folder.
    """
    folder = Path(folder)
    for name in HF_WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return [path]
        return _index_shards(path, folder, name.removesuffix(".index.json"))
    raise ModelLoadError(f"{folder}: no weight file (expected one of {', '.join(HF_WEIGHT_FILES)})")


def _index_shards(path: Path, folder: Path, weight_name: str) -> list[Path]:
    what = f"not a shard index of {weight_name} (expected JSON {{\"weight_map\": {{tensor name: shard file}}}})"
    _refuse_non_weight(path, path.read_bytes()[:512], json_ok=True)
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{path}: {what}: {err}") from err
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict):
        raise ModelLoadError(f"{path}: {what}: no 'weight_map' object")
    bad = [k for k, v in weight_map.items() if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ModelLoadError(f"{path}: {what}: tensor(s) {few(bad)} map to no file name")
    if not weight_map:
        raise ModelLoadError(f"{path}: the shard index lists no tensors")
    shards = []
    for shard in sorted(set(weight_map.values())):
        try:
            shards.append(path_inside(shard, folder, what="shard"))
        except UnsafeIdError as err:
            raise ModelLoadError(f"{path}: refused: {err}") from err
    absent = [s.name for s in shards if not s.is_file()]
    if absent:
        raise ModelLoadError(f"{path}: shard(s) listed in the index are missing from {folder}: {few(absent)}")
    return shards


def _refuse_non_weight(path: Path, head: bytes, json_ok: bool = False) -> None:
    """A :class:`ModelLoadError` for files that are plainly something else: empty, a Git
    LFS pointer, an HTML page (a download that returned a web page) or other text."""
    if not head:
        raise ModelLoadError(f"{path}: the file is empty (0 bytes): not a weight file (an interrupted download?)")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"version https://git-lfs"):
        raise ModelLoadError(
            f"{path}: this is a Git LFS pointer (a small text file), not the weights: fetch the real "
            "file (git lfs pull in its repository, or download it again)"
        )
    low = text[:256].lower()
    if low.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")) or b"<html" in low:
        raise ModelLoadError(
            f"{path}: this is an HTML/XML page, not weights (a download that returned a web page, "
            "e.g. a login or error page): download the file itself again"
        )
    if json_ok:
        return
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError as err:  # a character cut at the end of the head is still text
        decoded = head[: err.start].decode("utf-8") if err.start >= len(head) - 3 else None
    if decoded is not None and all(ch.isprintable() or ch in "\t\r\n" for ch in decoded):
        kind = "JSON" if text.startswith((b"{", b"[")) else "plain"
        raise ModelLoadError(f"{path}: this is a {kind} text file, not a weight file")


def _safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole safetensors file, or ``None`` when its header is sound."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        first = handle.read(8)
        if len(first) < 8:
            return f"only {size} bytes: too short for a safetensors file (truncated?)"
        (n_header,) = struct.unpack("<Q", first)
        if n_header > size - 8:
            return (f"its header claims {n_header} bytes but the file has {size} bytes: truncated, "
                    "or not a safetensors file")
        raw = handle.read(n_header)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "its header is not JSON: corrupt, or not a safetensors file"
    if not isinstance(header, dict):
        return "its header is not a JSON object: corrupt, or not a safetensors file"
    n_data = size - 8 - n_header
    end_max = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            n_bytes = _ST_DTYPE_BYTES[dtype] * math.prod(int(d) for d in shape)
            ok = all(isinstance(x, int) and x >= 0 for x in (start, end, *shape)) and start <= end
        except (TypeError, KeyError, ValueError):
            return f"its header entry for tensor {name!r} is malformed: corrupt, or not a safetensors file"
        if not ok or end - start != n_bytes:
            return f"its header lies about tensor {name!r} ({dtype} {shape} in bytes {start}..{end})"
        if end > n_data:
            return (f"truncated: tensor {name!r} ends at byte {end} of the data but the file holds "
                    f"{n_data} data bytes")
        end_max = max(end_max, end)
    if end_max != n_data:
        return f"its header covers {end_max} data bytes but the file holds {n_data}: corrupt"
    return None


def _torch_problem(path: Path, head: bytes) -> str | None:
    """Why ``path`` cannot be a torch checkpoint, or ``None`` when it may be one."""
    if head.startswith(_LEGACY_TORCH_MAGIC):
        return None
    if not head.startswith(b"PK\x03\x04"):
        if head.startswith(b"PK"):
            return "a damaged zip archive"
        return "neither a torch zip archive nor a legacy torch file (random or foreign bytes)"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "a damaged or truncated zip archive"
    if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        return f"a zip archive but not a torch checkpoint (no data.pkl among {few(names, 4)})"
    return None


def _torch_reason(err: BaseException) -> str:
    """torch's error, shortened, without its advice to load with ``weights_only=False``."""
    text = str(err)
    if isinstance(err, pickle.UnpicklingError) and "WeightsUnpickler error" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1]
        detail = detail.split("Check the documentation", 1)[0]
        detail = " ".join(detail.split())
        return ("it holds objects other than tensors and plain containers, which are never unpickled "
                "(weight files are read with weights_only=True only)" + (f": {detail[:200]}" if detail else ""))
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    for marker in (" This is an internal", " If you", "weights_only", " Re-running", " Please file"):
        first = first.split(marker, 1)[0]
    first = first.strip().rstrip(".,;:")[:200]
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def read_torch_object(path: Path) -> object:
    """Whatever a torch checkpoint holds, read with ``torch.load(weights_only=True)`` after
    checking that it is one. The one place torch files are opened.

    Raises
    ------
    ModelLoadError
        Naming ``path``: missing, empty, a Git LFS pointer or HTML page, not a torch file,
        truncated or corrupt, or holding more than tensors and plain containers. The
        message never suggests loading with ``weights_only=False``.
    """
    path = Path(path)
    head = _head(path)
    _refuse_non_weight(path, head)
    problem = _torch_problem(path, head)
    if problem:
        raise ModelLoadError(f"{path}: corrupt or not a torch weight file: {problem}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's pickle-protocol chatter
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = _torch_reason(err)
        if reason.startswith("it holds objects"):
            raise ModelLoadError(f"{path}: refused to load: {reason}") from None
        raise ModelLoadError(f"{path}: corrupt or not a torch weight file ({reason})") from None
    except Exception as err:  # torch raises KeyError, IndexError, RuntimeError ... on corrupt files
        raise ModelLoadError(f"{path}: corrupt or truncated torch weight file ({_torch_reason(err)})") from None


def _head(path: Path, n: int = 512) -> bytes:
    if not path.exists():
        raise ModelLoadError(f"{path}: no such weight file")
    if not path.is_file():
        raise ModelLoadError(f"{path}: not a file (a weight file was expected here)")
    try:
        with open(path, "rb") as handle:
            return handle.read(n)
    except OSError as err:
        raise ModelLoadError(f"{path}: cannot be read ({err.strerror or err})") from None


def read_safetensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, its header checked against its size first.

    Raises
    ------
    ModelLoadError
        Naming ``path``: missing, empty, LFS pointer, HTML, truncated, or a header that lies.
    """
    path = Path(path)
    _refuse_non_weight(path, _head(path))
    problem = _safetensors_problem(path)
    if problem:
        raise ModelLoadError(f"{path}: corrupt or not a safetensors file: {problem}")
    try:
        return load_file(str(path), device=device)
    except Exception as err:  # safetensors raises its own error types
        first = next((ln for ln in str(err).splitlines() if ln.strip()), type(err).__name__)[:200]
        raise ModelLoadError(f"{path}: corrupt safetensors file ({first})") from None


def read_weight_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of one weight file: safetensors (``.safetensors``), else a torch file
    (``.bin``, ``.ckpt``, ``.pt``...) read with ``weights_only=True``. Every weight file is
    read through here.

    Raises
    ------
    ModelLoadError
        Naming the file, for every way it can be bad (see :func:`read_torch_object` and
        :func:`read_safetensors`); never any other exception for a bad file.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return _check_tensor_dict(read_safetensors(path), path)
    return _unwrap_state_dict(read_torch_object(path), path)


def _unwrap_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    # Some exporters nest the weights one level down ({"state_dict": {...}}).
    if isinstance(obj, dict) and obj and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model", "module"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise ModelLoadError(f"{path}: not a weight file: expected a dict of tensors, found {type(obj).__name__}")
    return _check_tensor_dict({k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}, path)


def _check_tensor_dict(tensors: dict, path: Path) -> dict[str, torch.Tensor]:
    if not tensors:
        raise ModelLoadError(f"{path}: not a weight file: it holds no tensors")
    bad = [repr(k) for k in tensors if not isinstance(k, str)]
    if bad:
        raise ModelLoadError(f"{path}: not a weight file: tensor names must be text, found {few(bad)}")
    return tensors


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


def prefixes_for(encoder: torch.nn.Module) -> tuple[str, ...]:
    """Prefixes stripped from checkpoint keys for ``encoder``: ``module.``, ``model.`` and
    its family's own (``FamilySpec.weight_prefix``: ``hubert.`` for ``HubertForCTC`` ...);
    every known prefix for an encoder outside the registry."""
    family = FAMILIES.get(getattr(getattr(encoder, "config", None), "model_type", None))
    if family is None:
        return STRIP_PREFIXES
    return (*WRAPPER_PREFIXES, family.weight_prefix) if family.weight_prefix else WRAPPER_PREFIXES


def _strip(key: str, prefixes: tuple[str, ...] = STRIP_PREFIXES) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in prefixes:
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
    raw: dict[str, torch.Tensor], expected: set[str], prefixes: tuple[str, ...] = STRIP_PREFIXES
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Map checkpoint keys onto encoder keys (``prefixes`` stripped first, repeatedly).

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
        name = _weight_norm_alias(_strip(key, prefixes), expected)
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
    mapped, dropped, unexpected = map_encoder_keys(raw, expected, prefixes_for(encoder))
    missing = sorted(expected - set(mapped) - OPTIONAL_KEYS)
    shapes = sorted(
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in mapped.items()
        if tuple(v.shape) != tuple(own[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"{len(missing)} encoder weight(s) missing from the checkpoint: {few(missing)}")
    if unexpected:
        problems.append(
            f"{len(unexpected)} key(s) that are neither encoder weights nor known heads "
            f"(config and weights disagree?): {few(unexpected)}"
        )
    if shapes:
        problems.append(f"shape mismatch in {len(shapes)} weight(s): {few(shapes, 4)}")
    if problems:
        sizes = checkpoint_sizes(raw)
        if sizes and len(missing) + len(shapes) > len(expected) // 2:
            problems.insert(0, "the checkpoint does not fit this config: " + sizes
                            + f"; the config has {encoder_sizes(encoder)}")
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


def checkpoint_sizes(raw: dict[str, torch.Tensor]) -> str:
    """``"N transformer layers of width D"`` read off a checkpoint's keys and shapes ("" when unknown)."""
    layers = {int(m.group(1)) for k in raw if (m := re.search(r"encoder\.layers\.(\d+)\.", _strip(k)))}
    width = next((int(v.shape[0]) for k, v in raw.items()
                  if _strip(k) == "feature_projection.projection.weight" and v.ndim == 2), None)
    if not layers and width is None:
        return ""
    n = f"{max(layers) + 1} transformer layer(s)" if layers else "an unknown number of layers"
    return n + (f" of width {width}" if width is not None else "")


def encoder_sizes(encoder: torch.nn.Module) -> str:
    """``"N transformer layers of width D"`` of a built encoder."""
    config = getattr(encoder, "config", None)
    if config is None:
        return "another shape"
    return f"{config.num_hidden_layers} transformer layer(s) of width {config.hidden_size}"


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
