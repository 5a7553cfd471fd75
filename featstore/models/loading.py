"""``load_model``: a registered alias, a local folder or a cached Hugging Face id -> encoder.

The weights are read and mapped here (``weights.py``), not by ``from_pretrained``, so
that every encoder weight is accounted for and ``.bin`` files are only ever read with
``weights_only=True``. Nothing touches the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import PretrainedConfig

from featstore.models import speechbrain as sb
from featstore.models.configs import build_encoder, read_config, read_preprocessor
from featstore.models.device import resolve_device
from featstore.models.registry import MODELS, ModelSpec
from featstore.models.resolve import (
    HF_ID,
    ModelNotFoundError,
    detect_format,
    locate,
    missing_files,
    registered_alias_hint,
    weights_source,
)
from featstore.models.weights import (
    ModelLoadError,
    fingerprint_files,
    hf_weight_files,
    load_encoder_weights,
    read_state_dict,
)
from featstore.paths import safe_name

CROSSLING_JSON = "crossling.json"


@dataclass(frozen=True)
class LoadedModel:
    """A loaded encoder and everything needed to feed it and to record where it came from.

    Attributes
    ----------
    alias : str
        The name given with ``alias=``, else the registry alias, the folder / id name.
    source : str
        Where the weights were read from: the Hugging Face id for a snapshot in the local
        Hugging Face cache, else the folder's path (a registered alias found under
        ``$CROSSLING_MODELS`` or ``<cache root>/models`` included: that folder may hold
        other weights than the registry's repository).
    family : str
        A key of ``featstore.models.registry.FAMILIES`` (``"wav2vec2"``, ``"wavlm"``,
        ``"hubert"``, ``"data2vec-audio"``), read from ``config.json``'s ``model_type``.
    language : str
        The paper's language code of the model.
    encoder : torch.nn.Module
        The family's bare encoder (``Wav2Vec2Model``, ``WavLMModel``, ``HubertModel``,
        ``Data2VecAudioModel``) in eval mode on the requested device.
    config : PretrainedConfig
        Its config (``apply_spec_augment`` switched off).
    do_normalize : bool
        Whether each clip is normalised to zero mean, unit variance before the encoder.
    sample_rate_hz : int
        Input sampling rate.
    fingerprint : str
        16-hex SHA-256 of the weight files.
    n_hidden_states : int
        ``num_hidden_layers + 1`` (layer 0 = transformer input).
    hidden_size : int
        Width of every hidden state.
    extras : dict
        Format-specific parts. SpeechBrain ``wavlm-emo``: ``frame_classifier``
        (``nn.Linear(hidden, 4)``), ``labels`` (index -> canonical emotion),
        ``label_codes``, ``output_norm`` (bool; see ``speechbrain.output_norm``),
        ``input_norm`` (settings and stored statistics), ``frame_window``/``frame_stride``.
        Local folders with a ``crossling.json``: ``untrained`` and ``note``.
        Always: ``load_report`` (keys loaded, heads dropped), ``normalize_source``.
    path : Path
        Folder the model was loaded from.
    format : str
        ``"hf"`` or ``"speechbrain"``.
    weight_files : tuple of str
        Files hashed into ``fingerprint``.
    """

    alias: str
    source: str
    family: str
    language: str
    encoder: torch.nn.Module
    config: PretrainedConfig
    do_normalize: bool
    sample_rate_hz: int
    fingerprint: str
    n_hidden_states: int
    hidden_size: int
    extras: dict = field(default_factory=dict)
    path: Path | None = None
    format: str = "hf"
    weight_files: tuple[str, ...] = ()

    def provenance(self) -> dict:
        """JSON-able record of the model for caches and results tables."""
        return {
            "alias": self.alias,
            "source": self.source,
            "path": str(self.path) if self.path else None,
            "format": self.format,
            "family": self.family,
            "language": self.language,
            "fingerprint": self.fingerprint,
            "do_normalize": self.do_normalize,
            "sample_rate_hz": self.sample_rate_hz,
            "n_hidden_states": self.n_hidden_states,
            "hidden_size": self.hidden_size,
            "config": self.config.to_dict(),
            "untrained": bool(self.extras.get("untrained", False)),
        }


def _read_crossling_json(folder: Path) -> dict:
    path = folder / CROSSLING_JSON
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ModelLoadError(f"{path}: unreadable ({err})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: expected a JSON object")
    return data


def load_hf_folder(folder: Path) -> tuple[torch.nn.Module, PretrainedConfig, list[Path], dict]:
    """Encoder, config, weight files and load report of a Hugging Face folder (CPU)."""
    config = read_config(folder / "config.json")
    files = hf_weight_files(folder)
    with torch.device("meta"):  # weights come from the checkpoint: skip the random init
        encoder = build_encoder(config)
    report = load_encoder_weights(encoder, read_state_dict(files), str(folder))
    report["architectures"] = list(config.architectures or [])
    return encoder, config, files, report


def load_speechbrain_folder(folder: Path) -> tuple[torch.nn.Module, PretrainedConfig, list[Path], dict]:
    """Encoder, config, hashed files and extras of a SpeechBrain ``wavlm-emo`` folder (CPU)."""
    lacking = missing_files(folder, "speechbrain")
    if lacking:
        raise ModelLoadError(f"{folder}: SpeechBrain folder lacks {', '.join(lacking)}")
    hparams = sb.read_hyperparams(folder)
    config, config_source = sb.speechbrain_config(folder, hparams["hub_id"])
    with torch.device("meta"):  # weights come from the checkpoint: skip the random init
        encoder = build_encoder(config)
    report = sb.load_wavlm_weights(encoder, folder, config_source)
    labels, codes = sb.parse_label_encoder(folder / "label_encoder.txt")
    classifier = sb.load_frame_classifier(folder / "model.ckpt", config.hidden_size, len(labels))
    do_normalize, norm_source = sb.speechbrain_do_normalize(folder, hparams["hub_id"])
    extras = {
        "frame_classifier": classifier,
        "labels": labels,
        "label_codes": codes,
        "output_norm": hparams["output_norm"],
        "output_norm_axes": "time_and_feature",
        "input_norm": sb.load_input_norm(folder / "input_norm.ckpt", hparams["input_norm"]),
        "frame_window": hparams["window_length"],
        "frame_stride": hparams["stride"],
        "hyperparams_source": hparams["source"],
        "config_source": config_source,
        "do_normalize": do_normalize,
        "normalize_source": norm_source,
        "load_report": report,
    }
    files = [folder / n for n in ("wav2vec2.ckpt", "model.ckpt", "input_norm.ckpt", "label_encoder.txt")]
    return encoder, config, [f for f in files if f.is_file()], extras


def _resolve(
    name_or_path: str, search_dirs: list[str | Path] | None, root: str | Path | None = None
) -> tuple[Path, str, str, ModelSpec | None]:
    """``(folder, alias, source, spec)`` for a name or path (``spec`` only for aliases)."""
    spec = MODELS.get(name_or_path)
    if spec is not None:
        folder = locate(name_or_path, search_dirs, root)
        return folder, spec.alias, weights_source(spec.hf_id, folder), spec
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        folder = path.resolve()
        return folder, folder.name, str(folder), None
    if path.exists():
        raise ModelLoadError(f"{path}: is a file; give the folder that holds the model files")
    if HF_ID.match(name_or_path):
        return locate(name_or_path, search_dirs, root), name_or_path.split("/")[1], name_or_path, None
    if any(sep in name_or_path for sep in ("/", "\\")) or name_or_path.startswith((".", "~")):
        raise ModelNotFoundError(f"{name_or_path}: no such model folder (nor a registered model: "
                                 f"{', '.join(MODELS)}, nor a Hugging Face id 'org/name')")
    # a plain name: a folder <root>/<name>/ under a model root (e.g. the demo's untrained models)
    folder = locate(name_or_path, search_dirs, root).resolve()
    return folder, name_or_path, str(folder), None


def load_model(
    name_or_path: str | Path,
    *,
    alias: str | None = None,
    language: str | None = None,
    device: str = "cpu",
    cache_root: str | Path | None = None,
    search_dirs: list[str | Path] | None = None,
) -> LoadedModel:
    """Load an SSL encoder from disk.

    Parameters
    ----------
    name_or_path : str or Path
        A registered alias (``featstore.models.MODELS``), the name of a folder under a model
        root (``<cache root>/models/<name>/``, ``$CROSSLING_MODELS/<name>/``), a local
        folder, or a Hugging Face id ``org/name`` already in the local cache.
    alias : str, optional
        The model's name everywhere downstream (cache folder, result rows, best layers);
        default: the registry alias, the name, or the folder's name. A model pinned by path
        keeps the alias given here.
    language : str, optional
        Language code; required for models outside the registry unless their folder holds
        a ``crossling.json`` with ``"language"`` or ``alias`` is a registered alias. Must
        agree with the registry and ``crossling.json`` otherwise.
    device : str
        Torch device for the encoder (and the SpeechBrain frame classifier); ``auto``: CUDA
        when present, else CPU (:func:`featstore.models.device.resolve_device`).
    cache_root : path, optional
        Cache root whose ``models/`` folder is searched (default ``$CROSSLING_CACHE`` or ``./cache``).
    search_dirs : list of path, optional
        Extra roots searched first for ``<root>/<alias>`` folders.

    Raises
    ------
    UnknownModelError
        A plain name found nowhere; the message lists the registered and cached names.
    ModelNotFoundError
        Not on disk; the message lists the folders searched and the files expected.
    ModelLoadError
        On disk but not loadable faithfully (missing encoder weight, unsafe pickle ...).
    ValueError
        No language known, or one that contradicts the registry.
    """
    name_or_path = str(name_or_path)
    folder, found_alias, source, spec = _resolve(name_or_path, search_dirs, cache_root)
    if alias is not None:
        safe_name(alias)  # an alias becomes a folder name: refuse one that would leave its folder
    meta = _read_crossling_json(folder)
    language = _pick_language(name_or_path, language, spec, meta, folder, alias)
    alias = alias or found_alias
    device = str(resolve_device(device))
    fmt = detect_format(folder)
    if fmt is None or (fmt == "hf" and missing_files(folder, "hf")):
        expected = "config.json plus model.safetensors or pytorch_model.bin (or their *.index.json shards)"
        raise ModelLoadError(f"{folder}: not a model folder; expected {expected}, or a SpeechBrain folder")
    if fmt == "speechbrain":
        encoder, config, files, extras = load_speechbrain_folder(folder)
        do_normalize = extras.pop("do_normalize")
        sample_rate_hz = 16000
    elif _whisper_folder(folder):  # Whisper hook (branch whisper): the encoder of a Whisper checkpoint
        from featstore.models.whisper import load_whisper_folder
        encoder, config, files, extras, do_normalize, sample_rate_hz = load_whisper_folder(folder)
    else:
        encoder, config, files, report = load_hf_folder(folder)
        do_normalize, sample_rate_hz, norm_source = read_preprocessor(folder, config)
        extras = {"load_report": report, "normalize_source": norm_source}
    if meta:
        extras["untrained"] = bool(meta.get("untrained", False))
        extras["note"] = str(meta.get("note", ""))
    encoder.eval().to(device)
    if "frame_classifier" in extras:
        extras["frame_classifier"].to(device)
    return LoadedModel(
        alias=alias,
        source=source,
        family=config.model_type,
        language=language,
        encoder=encoder,
        config=config,
        do_normalize=do_normalize,
        sample_rate_hz=sample_rate_hz,
        fingerprint=fingerprint_files(files),
        n_hidden_states=config.num_hidden_layers + 1,
        hidden_size=config.hidden_size,
        extras=extras,
        path=folder,
        format=fmt,
        weight_files=tuple(str(f) for f in files),
    )


def _whisper_folder(folder: Path) -> bool:
    """Whisper hook (branch whisper): whether ``folder`` holds a Whisper checkpoint."""
    from featstore.models.whisper import is_whisper_folder
    return is_whisper_folder(folder)


def _pick_language(name: str, language: str | None, spec: ModelSpec | None, meta: dict, folder: Path,
                   alias: str | None = None) -> str:
    sources = {}
    if spec is not None:
        sources[f"the registry ({spec.alias})"] = spec.language
    if meta.get("language"):
        sources[str(folder / CROSSLING_JSON)] = str(meta["language"])
    if language is not None:
        sources["the language argument"] = language
    if len(set(sources.values())) > 1:
        said = "; ".join(f"{where} says {code!r}" for where, code in sources.items())
        raise ValueError(f"{name}: the model's language contradicts itself: {said}")
    chosen = next(iter(sources.values()), None)
    for named in (alias, folder.name):
        if chosen is None and named in MODELS:
            # a folder given by path with a registered alias (or named after one): its language, last
            chosen = MODELS[named].language
    if not chosen:
        raise ValueError(
            f"{name}: unknown language: pass language= (command line: --model-language) or add "
            f'{folder / CROSSLING_JSON} with {{"language": "<code>"}}{registered_alias_hint(name)}'
        )
    return str(chosen)
