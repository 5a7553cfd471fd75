"""Find a model's folder on disk, never on the network.

For a registered alias the folders searched are, in order:

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
is named in the error with the files it lacks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from featstore.models.registry import EXPECTED_FILES, MODELS, ModelSpec
from featstore.paths import cache_root

MODELS_ENV = "CROSSLING_MODELS"


class ModelNotFoundError(FileNotFoundError):
    """A model that is not on disk; the message says which folder or cache entry to provide."""


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


def candidates(
    alias: str, spec: ModelSpec | None, search_dirs: list[str | Path] | None = None, hf_id: str | None = None
) -> list[Candidate]:
    """Every place searched for ``alias`` (or the Hugging Face id ``hf_id``), in order."""
    fmt = spec.format if spec else None
    found: list[Candidate] = []
    if spec is not None or hf_id is None:
        roots: list[tuple[Path, str]] = [(Path(d), "search dir") for d in (search_dirs or ())]
        if os.environ.get(MODELS_ENV):
            roots.append((Path(os.environ[MODELS_ENV]), f"${MODELS_ENV}"))
        roots.append((cache_root() / "models", "cache root"))
        for root, origin in roots:
            folder = root / alias
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
    alias: str, spec: ModelSpec | None, searched: list[Candidate], hf_id: str | None
) -> str:
    """The error text for a model that is not on disk: where we looked, what to provide."""
    fmt = spec.format if spec else "hf"
    repo_id = spec.hf_id if spec else hf_id
    groups = EXPECTED_FILES[fmt]
    files = ", ".join(" or ".join(g) for g in groups)
    title = f"Model {alias!r}" + (f" ({repo_id})" if repo_id and repo_id != alias else "")
    lines = [f"{title} is not on this machine, and nothing is downloaded here.", "Searched:"]
    lines += [f"  {c.path}  [{c.origin}: {c.status}]" for c in searched]
    lines.append("Provide one of:")
    if spec is not None:
        target = cache_root() / "models" / alias
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
        where = f"to {cache_root() / 'models' / alias}/" if spec is not None else "here and pass its path"
        lines.append(
            f"On a machine with internet access: `hf download {repo_id} --local-dir {name}`, "
            f"then copy that folder {where}."
        )
    return "\n".join(lines)


def locate(alias: str, search_dirs: list[str | Path] | None = None) -> Path:
    """The folder holding registered model ``alias`` (or cached Hugging Face id ``org/name``).

    Raises
    ------
    ModelNotFoundError
        Nothing usable on disk; the message lists the folders searched and the files expected.
    """
    spec = MODELS.get(alias)
    hf_id = None if spec else alias
    searched = candidates(alias, spec, search_dirs, hf_id=hf_id)
    for cand in searched:
        if cand.status == "ok":
            return cand.path
    raise ModelNotFoundError(not_found_message(alias, spec, searched, hf_id))


def find_present(alias: str, search_dirs: list[str | Path] | None = None) -> Path | None:
    """The folder of ``alias`` if present on disk, else ``None`` (never raises for absence)."""
    try:
        return locate(alias, search_dirs)
    except ModelNotFoundError:
        return None


def list_models(search_dirs: list[str | Path] | None = None) -> list[dict]:
    """One row per registered alias: id, family, language, format, presence and folder."""
    rows = []
    for alias, spec in MODELS.items():
        path = find_present(alias, search_dirs)
        rows.append(
            {
                "alias": alias,
                "hf_id": spec.hf_id,
                "family": spec.family,
                "language": spec.language,
                "format": spec.format,
                "n_layers": spec.n_layers,
                "hidden_size": spec.hidden_size,
                "present": path is not None,
                "path": str(path) if path else None,
                "description": spec.description,
            }
        )
    return rows
