"""Find a model's folder on disk, never on the network.

For a registered alias, and for any other plain name (a model saved under
``<cache root>/models/<name>/``, like the demo's ``untrained-w2v2-de``), the folders
searched are, in order:

1. ``<d>/<alias>`` for each ``d`` in the ``search_dirs`` argument;
2. ``$CROSSLING_MODELS/<alias>`` when the variable is set;
3. ``<cache root>/models/<alias>`` (``featstore.paths.cache_root``);
4. the local Hugging Face cache:
   ``$HF_HUB_CACHE`` (or ``$HF_HOME/hub``, or ``~/.cache/huggingface/hub``)
   ``/models--<org>--<name>/snapshots/<revision>/``, the revision named by
   ``refs/main`` first, then the others, newest first.

The Hugging Face cache is read by walking its folder structure; ``huggingface_hub`` is
not asked for anything, so no request can leave the machine. A folder counts only when it
holds every file its format needs (see ``registry.EXPECTED_FILES``); a half-present folder
is named in the error with the files it lacks. A plain name found nowhere is an
:class:`UnknownModelError` listing the registered and the cached names.

This module imports neither torch nor transformers: listing and resolving stay fast.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from featstore.errors import CrosslingError, UnknownNameError, known_as_hint, safe_file_stem, unknown_name
from featstore.models.registry import EXPECTED_FILES, MODELS, REPOSITORY_ALIASES, ModelSpec
from featstore.paths import cache_root

MODELS_ENV = "CROSSLING_MODELS"
HF_ID = re.compile(r"^[\w.\-]+/[\w.\-]+$")
"""A Hugging Face repository id ``org/name``."""


class ModelNotFoundError(CrosslingError, FileNotFoundError):
    """A model that is not on disk; the message says which folder or cache entry to provide."""


class UnknownModelError(UnknownNameError, ModelNotFoundError):
    """A model name that is neither registered, nor a folder under a model root, nor a path;
    the message lists the known names (closest first) and where to put the weights."""


@dataclass(frozen=True)
class Candidate:
    """One place searched for a model and what was found there."""

    path: Path
    origin: str
    status: str  # "ok", "missing" or "incomplete: <files>"


def hf_hub_cache() -> Path:
    """The local Hugging Face hub cache folder, as ``huggingface_hub`` would pick it."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def hf_cache_repo_dir(hf_id: str, hub: Path | None = None) -> Path:
    """``<hub>/models--<org>--<name>``: where the cache keeps repository ``hf_id``."""
    return (hub or hf_hub_cache()) / ("models--" + hf_id.replace("/", "--"))


def detect_format(folder: Path) -> str | None:
    """``"speechbrain"`` or ``"hf"`` from the files present, ``None`` if neither."""
    if (folder / "wav2vec2.ckpt").is_file() or (folder / "hyperparams.yaml").is_file():
        return "speechbrain"
    if (folder / "config.json").is_file():
        return "hf"
    return None


def missing_files(folder: Path, fmt: str) -> list[str]:
    """The file groups of ``fmt`` that ``folder`` lacks (``"a | b"`` means one of them)."""
    missing = []
    for group in EXPECTED_FILES[fmt]:
        if not any((folder / name).is_file() for name in group):
            missing.append(" | ".join(group))
    return missing


def _status(folder: Path, fmt: str | None) -> str:
    if not folder.is_dir():
        return "missing"
    fmt = fmt or detect_format(folder) or "hf"
    lacking = missing_files(folder, fmt)
    return "ok" if not lacking else "incomplete: lacks " + ", ".join(lacking)


def hf_cache_snapshots(hf_id: str, hub: Path | None = None) -> list[Path]:
    """Snapshot folders of ``hf_id`` in the local cache, ``refs/main`` first, then newest first."""
    repo = hf_cache_repo_dir(hf_id, hub)
    snaps = repo / "snapshots"
    if not snaps.is_dir():
        return []
    ordered: list[Path] = []
    ref = repo / "refs" / "main"
    if ref.is_file():
        main = snaps / ref.read_text().strip()
        if main.is_dir():
            ordered.append(main)
    others = sorted(
        (p for p in snaps.iterdir() if p.is_dir() and p not in ordered),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    return ordered + others


def model_roots(search_dirs: list[str | Path] | None = None, root: str | Path | None = None
                ) -> list[tuple[Path, str]]:
    """``(folder, origin)`` of every root holding ``<name>/`` model folders, in search order:
    the ``search_dirs``, ``$CROSSLING_MODELS``, ``<cache root>/models``."""
    roots: list[tuple[Path, str]] = [(Path(d), "search dir") for d in (search_dirs or ())]
    if os.environ.get(MODELS_ENV):
        roots.append((Path(os.environ[MODELS_ENV]), f"${MODELS_ENV}"))
    roots.append((cache_root(root) / "models", "cache root"))
    return roots


def candidates(
    alias: str, spec: ModelSpec | None, search_dirs: list[str | Path] | None = None, hf_id: str | None = None,
    root: str | Path | None = None,
) -> list[Candidate]:
    """Every place searched for ``alias`` (or the Hugging Face id ``hf_id``), in order
    (``root``: the cache root, default ``$CROSSLING_CACHE`` or ``./cache``)."""
    fmt = spec.format if spec else None
    found: list[Candidate] = []
    if spec is not None or hf_id is None:
        for root_dir, origin in model_roots(search_dirs, root):
            folder = root_dir / alias
            found.append(Candidate(folder, origin, _status(folder, fmt)))
    repo_id = spec.hf_id if spec else hf_id
    if repo_id:
        snaps = hf_cache_snapshots(repo_id)
        if not snaps:
            found.append(Candidate(hf_cache_repo_dir(repo_id) / "snapshots", "Hugging Face cache", "missing"))
        for snap in snaps:
            found.append(Candidate(snap, "Hugging Face cache", _status(snap, fmt)))
    return found


def not_found_message(
    alias: str, spec: ModelSpec | None, searched: list[Candidate], hf_id: str | None,
    root: str | Path | None = None,
) -> str:
    """The error text for a model that is not on disk: where we looked, what to provide."""
    fmt = spec.format if spec else "hf"
    repo_id = spec.hf_id if spec else hf_id
    groups = EXPECTED_FILES[fmt]
    files = ", ".join(" or ".join(g) for g in groups)
    title = f"Model {alias!r}" + (f" ({repo_id})" if repo_id and repo_id != alias else "")
    registered = registered_alias_hint(alias) if spec is None and hf_id else ""
    lines = [f"{title} is not on this machine, and nothing is downloaded here{registered}.", "Searched:"]
    lines += [f"  {c.path}  [{c.origin}: {c.status}]" for c in searched]
    lines.append("Provide one of:")
    named = spec is not None or hf_id is None  # looked for as <root>/<alias>/
    if named:
        target = cache_root(root) / "models" / alias
        extra = ", plus hyperparams.yaml and input_norm.ckpt" if fmt == "speechbrain" else ""
        lines.append(f"  - a folder {target}/ (or ${MODELS_ENV}/{alias}/) holding: {files}{extra};")
    else:
        lines.append(f"  - a local folder holding {files}, given as a path;")
    if repo_id:
        lines.append(
            f"  - the Hugging Face cache entry {hf_cache_repo_dir(repo_id)}/ "
            f"(set HF_HUB_CACHE or HF_HOME to use another cache folder)."
        )
        name = alias.split("/")[-1]
        where = f"to {cache_root(root) / 'models' / alias}/" if named else "here and pass its path"
        lines.append(
            f"On a machine with internet access: `hf download {repo_id} --local-dir {name}`, "
            f"then copy that folder {where}."
        )
    return "\n".join(lines)


def registered_alias_hint(name: str) -> str:
    """`` ('org/name' is the Hugging Face repository of model 'alias': give 'alias')`` for a
    registered model's repository id given where an alias serves better, `` (did you mean
    'alias' (org/name)?)`` for one close to such an id, else ``""``."""
    return known_as_hint(name, REPOSITORY_ALIASES, "model", "Hugging Face repository")


def _looks_like_model(folder: Path) -> bool:
    return folder.is_dir() and (detect_format(folder) is not None or any(folder.glob("*.safetensors"))
                                or any(folder.glob("*.bin")))


def cached_names(search_dirs: list[str | Path] | None = None, root: str | Path | None = None) -> list[str]:
    """Names of the model folders under the model roots (:func:`model_roots`) that are
    not registry aliases, sorted; a folder counts when it holds any model file."""
    names: set[str] = set()
    for root_dir, _ in model_roots(search_dirs, root):
        if not root_dir.is_dir():
            continue
        try:
            entries = list(root_dir.iterdir())
        except OSError:
            continue
        names.update(e.name for e in entries if e.name not in MODELS and _looks_like_model(e))
    return sorted(names)


def unknown_model(name: str, search_dirs: list[str | Path] | None = None, root: str | Path | None = None
                  ) -> UnknownModelError:
    """The error for a name found nowhere: what exists (registered and cached), the
    closest names, and the folder to put the weights in."""
    target = cache_root(root) / "models" / name
    files = " + ".join(" or ".join(g) for g in EXPECTED_FILES["hf"])
    hint = (f"registered models are found in <cache root>/models/<alias>/, ${MODELS_ENV}/<alias>/ or the "
            f"Hugging Face cache; any other model is used by name once its folder is at {target}/ "
            f"(holding {files}), or give the folder's path")
    err = unknown_name("model", name, [*MODELS, *cached_names(search_dirs, root)], hint,
                       known_as=REPOSITORY_ALIASES, known_as_label="Hugging Face repository")
    return UnknownModelError(str(err))


def locate(alias: str, search_dirs: list[str | Path] | None = None, root: str | Path | None = None) -> Path:
    """The folder holding model ``alias``: a registered alias, a name with a folder under a
    model root (``<cache root>/models/<name>/`` ...), or a cached Hugging Face id ``org/name``.

    ``root`` is the cache root (default ``$CROSSLING_CACHE`` or ``./cache``).

    Raises
    ------
    UnknownModelError
        A plain name that is neither registered nor a folder under any model root.
    ModelNotFoundError
        Nothing usable on disk; the message lists the folders searched and the files expected.
    """
    spec = MODELS.get(alias)
    hf_id = alias if spec is None and HF_ID.match(alias) else None
    if spec is None and hf_id is None:
        safe_file_stem(alias, "model name")
    searched = candidates(alias, spec, search_dirs, hf_id=hf_id, root=root)
    for cand in searched:
        if cand.status == "ok":
            return cand.path
    if spec is None and hf_id is None and all(c.status == "missing" for c in searched):
        raise unknown_model(alias, search_dirs, root)
    raise ModelNotFoundError(not_found_message(alias, spec, searched, hf_id, root))


def weights_source(hf_id: str, folder: Path) -> str:
    """What a provenance record names as the origin of ``folder``'s weights: ``hf_id``
    when the folder is a snapshot of that repository in the Hugging Face cache, else the
    folder itself (a folder under a model root may hold anything, random weights included)."""
    if Path(folder).is_relative_to(hf_cache_repo_dir(hf_id)):
        return hf_id
    return str(Path(folder).resolve())


def find_present(alias: str, search_dirs: list[str | Path] | None = None, root: str | Path | None = None
                 ) -> Path | None:
    """The folder of ``alias`` if present on disk, else ``None`` (never raises for absence)."""
    try:
        return locate(alias, search_dirs, root)
    except ModelNotFoundError:
        return None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_models(search_dirs: list[str | Path] | None = None, root: str | Path | None = None) -> list[dict]:
    """One row per unregistered model folder under the model roots (first root wins), read
    from its ``config.json`` and ``crossling.json`` without loading it."""
    rows = []
    for name in cached_names(search_dirs, root):
        folder, origin = next((r / name, o) for r, o in model_roots(search_dirs, root) if (r / name).is_dir())
        fmt = detect_format(folder) or "hf"
        config = _read_json(folder / "config.json")
        meta = _read_json(folder / "crossling.json")
        status = _status(folder, fmt)
        note = str(meta.get("note", "")) or ("untrained" if meta.get("untrained") else "")
        rows.append({
            "alias": name, "hf_id": None, "family": config.get("model_type"),
            "language": meta.get("language"), "format": fmt,
            "pretraining_languages": meta.get("pretraining_languages") or meta.get("language"),
            "n_layers": config.get("num_hidden_layers"), "hidden_size": config.get("hidden_size"),
            "present": status == "ok", "path": str(folder), "where": origin, "registered": False,
            "description": note or (status if status != "ok" else "local model folder"),
        })
    return rows


def list_models(search_dirs: list[str | Path] | None = None, root: str | Path | None = None) -> list[dict]:
    """One row per model: every registered alias (id, family, language, format, presence,
    folder, where it was found), then every other model folder under the model roots
    (:func:`cached_models`). ``root`` is the cache root. Loads no model."""
    rows = []
    for alias, spec in MODELS.items():
        searched = candidates(alias, spec, search_dirs, root=root)
        found = next((c for c in searched if c.status == "ok"), None)
        rows.append(
            {
                "alias": alias,
                "hf_id": spec.hf_id,
                "family": spec.family,
                "language": spec.language,
                "pretraining_languages": spec.pretraining_languages,
                "format": spec.format,
                "n_layers": spec.n_layers,
                "hidden_size": spec.hidden_size,
                "present": found is not None,
                "path": str(found.path) if found else None,
                "where": found.origin if found else None,
                "registered": True,
                "description": spec.description,
            }
        )
    return rows + cached_models(search_dirs, root)
