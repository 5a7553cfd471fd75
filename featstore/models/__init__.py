"""SSL models: the registry (``MODELS``), ``load_model`` for every real on-disk format,
and tiny random models for tests (``featstore.models.testing``).

Nothing is ever downloaded: see ``resolve.py`` for where models are looked for and
``weights.py`` for how checkpoint keys are mapped onto the bare encoder.
"""

from featstore.models.loading import LoadedModel, load_model
from featstore.models.registry import MODELS, ModelSpec
from featstore.models.resolve import ModelNotFoundError, find_present, hf_hub_cache, list_models, locate
from featstore.models.weights import ModelLoadError, fingerprint_files

__all__ = [
    "MODELS",
    "LoadedModel",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelSpec",
    "find_present",
    "fingerprint_files",
    "hf_hub_cache",
    "list_models",
    "load_model",
    "locate",
]
