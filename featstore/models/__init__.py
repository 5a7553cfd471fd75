"""SSL models: the registry (``MODELS``), ``load_model`` for every real on-disk format,
and tiny random models for tests (``featstore.models.testing``).

Nothing is ever downloaded: see ``resolve.py`` for where models are looked for and
``weights.py`` for how checkpoint keys are mapped onto the bare encoder.

The names below are imported on first use (PEP 562), so that listing models
(``featstore models``) or resolving a name reads the registry and the folders without
importing torch or transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from featstore.models.device import resolve_device
    from featstore.models.loading import LoadedModel, load_model
    from featstore.models.registry import MODELS, ModelSpec
    from featstore.models.resolve import (
        ModelNotFoundError,
        UnknownModelError,
        cached_models,
        find_present,
        hf_hub_cache,
        list_models,
        locate,
    )
    from featstore.models.weights import ModelLoadError, fingerprint_files

_WHERE = {
    "MODELS": "registry",
    "ModelSpec": "registry",
    "LoadedModel": "loading",
    "load_model": "loading",
    "ModelLoadError": "weights",
    "fingerprint_files": "weights",
    "ModelNotFoundError": "resolve",
    "UnknownModelError": "resolve",
    "cached_models": "resolve",
    "find_present": "resolve",
    "hf_hub_cache": "resolve",
    "list_models": "resolve",
    "locate": "resolve",
    "resolve_device": "device",
}

__all__ = [
    "MODELS", "LoadedModel", "ModelLoadError", "ModelNotFoundError", "ModelSpec", "UnknownModelError",
    "cached_models", "find_present", "fingerprint_files", "hf_hub_cache", "list_models", "load_model",
    "locate", "resolve_device",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'featstore.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"featstore.models.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
