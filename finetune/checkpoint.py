"""Checkpoints: adapters and head only (safetensors) plus a JSON config naming the base
model and its weight fingerprint.

Layout of a checkpoint folder::

    adapters.safetensors   adapter + head tensors, keys as SERModel.trainable_state_dict()
    config.json            {"format", "version", "base": {...}, "model": {...}, "labels", "info"}

Loading rebuilds the model on the base encoder and refuses a base whose weight fingerprint
differs from the one recorded: adapters trained on other weights would load silently and
predict nonsense.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import save_file

from featstore.errors import CrosslingError
from featstore.io import atomic_write, atomic_write_text
from featstore.manifest import CANONICAL_EMOTIONS
from featstore.models.weights import ModelLoadError, read_safetensors
from finetune.model import PeftModelConfig, SERModel

FORMAT = "crossling-finetune"
VERSION = 1
WEIGHTS_FILE = "adapters.safetensors"
CONFIG_FILE = "config.json"


if TYPE_CHECKING:  # pragma: no cover
    from featstore.models import LoadedModel


class CheckpointError(CrosslingError, ValueError):
    """A checkpoint folder that is missing, malformed, or does not fit the base model."""


def base_record(base: LoadedModel) -> dict:
    """What a checkpoint records of its base model (a ``featstore.models.LoadedModel``)."""
    return {
        "alias": base.alias, "source": base.source, "family": base.family, "language": base.language,
        "fingerprint": base.fingerprint, "do_normalize": bool(base.do_normalize),
        "sample_rate_hz": int(base.sample_rate_hz), "hidden_size": int(base.hidden_size),
        "n_hidden_states": int(base.n_hidden_states),
    }


def save_checkpoint(directory: str | Path, model: SERModel, base: LoadedModel | Mapping,
                    info: Mapping[str, Any] | None = None) -> Path:
    """Write ``model``'s adapters and head to ``directory`` (created; files replaced
    atomically).

    Parameters
    ----------
    directory : output folder
    model : the trained :class:`SERModel`
    base : the ``LoadedModel`` it was built on, or an already made :func:`base_record`
    info : extra JSON-able provenance (corpora, fold, setting, seed, metrics...)
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    record = dict(base) if isinstance(base, Mapping) else base_record(base)
    config = {
        "format": FORMAT, "version": VERSION, "base": record, "model": model.config.to_dict(),
        "labels": list(CANONICAL_EMOTIONS)[: model.config.n_classes], "info": dict(info or {}),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.trainable_state_dict().items()}
    # the config goes last: a folder with a config always has the weights it describes
    atomic_write(out / WEIGHTS_FILE, lambda tmp: save_file(
        tensors, str(tmp), metadata={"format": FORMAT, "base_fingerprint": record["fingerprint"]}))
    atomic_write_text(out / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out


def read_checkpoint_config(directory: str | Path) -> dict:
    """The JSON config of a checkpoint folder (checked for format and required parts)."""
    folder = Path(directory)
    path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such checkpoint folder")
    if not path.exists() or not (folder / WEIGHTS_FILE).exists():
        raise CheckpointError(f"{folder}: not a fine-tuning checkpoint (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"{path}: not a readable JSON file ({err})") from err
    if (not isinstance(config, dict) or config.get("format") != FORMAT
            or not isinstance(config.get("base"), dict) or not isinstance(config.get("model"), dict)):
        raise CheckpointError(f"{path}: not a {FORMAT} config")
    missing = [k for k in ("alias", "fingerprint", "do_normalize") if k not in config["base"]]
    if missing:
        raise CheckpointError(f"{path}: the base model record lacks {missing}")
    return config


def load_checkpoint(directory: str | Path, base: LoadedModel | None = None, device: str = "cpu",
                    search_dirs: list[str | Path] | None = None) -> tuple[SERModel, dict]:
    """Rebuild a fine-tuned model from a checkpoint folder.

    Parameters
    ----------
    directory : folder written by :func:`save_checkpoint`
    base : the base ``LoadedModel`` (default: ``featstore.models.load_model`` of the
        recorded source, else alias); its encoder is copied, never changed
    device : torch device
    search_dirs : extra model folders for ``load_model``

    Returns
    -------
    (model in eval mode, checkpoint config dict)

    Raises
    ------
    CheckpointError : missing/malformed folder, or a base whose fingerprint differs
    """
    from featstore.models import load_model, resolve_device

    config = read_checkpoint_config(directory)
    want = config["base"]
    device = str(resolve_device(device))
    if base is None:
        source = want.get("source") or ""
        name = source if source and Path(source).exists() else want["alias"]
        # a base pinned by path keeps the alias it was trained under
        base = load_model(name, alias=want["alias"], language=want.get("language"), device=device,
                          search_dirs=search_dirs)
    if base.fingerprint != want["fingerprint"]:
        raise CheckpointError(
            f"{directory}: these adapters were trained on {want['alias']} with weight fingerprint "
            f"{want['fingerprint']}, but the base model given ({base.alias}, {getattr(base, 'path', '') or base.source}) "
            f"has fingerprint {base.fingerprint}; load the same weights the checkpoint was trained on"
        )
    model_config = PeftModelConfig.from_dict(config["model"])
    model = SERModel(copy.deepcopy(base.encoder), model_config, bool(want["do_normalize"])).to(device)
    try:
        state = read_safetensors(Path(directory) / WEIGHTS_FILE, device=str(device))
    except ModelLoadError as err:  # corrupt or not a safetensors file: named, never a traceback
        raise CheckpointError(str(err)) from err
    try:
        model.load_trainable_state_dict(state)
    except ValueError as err:
        raise CheckpointError(f"{directory}: {err}") from err
    model.train(False)
    return model, config
