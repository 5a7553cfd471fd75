"""The typed configuration of a whole study (``crossling study --config study.toml``).

Every section has defaults equal to the paper's settings; paths are resolved relative to
the TOML file's folder. ``load_study_config`` validates everything it can before any work
starts, so a typo fails at once with the file and key named.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from finetune.model import SCOPES
from finetune.tuners import STRATEGIES


class StudyConfigError(ValueError):
    """A study config that cannot be run, with the file and key that are wrong."""


@dataclass(frozen=True)
class CorpusEntry:
    """A corpus to prepare: ``reader`` from ``featstore corpora``, its ``root`` on disk."""

    name: str
    reader: str
    root: Path
    language: str | None = None
    label_map: str | None = None
    paper_splits: Path | None = None  # a folder in the paper's split layout to import
    split_languages: tuple[str, ...] = ()  # generated folds keep only these (ESD: ["cn"])
    check_audio: bool = False


@dataclass(frozen=True)
class ModelEntry:
    """A model alias, optionally pinned to a local folder (and its language)."""

    alias: str
    path: Path | None = None
    language: str | None = None

    @property
    def source(self) -> str:
        """What ``featstore.models.load_model`` is given."""
        return str(self.path) if self.path else self.alias


@dataclass(frozen=True)
class ProbesSection:
    enabled: bool = True
    models: tuple[str, ...] = ()
    corpora: tuple[str, ...] = ()
    settings: tuple[str, ...] = ("mono", "cross", "trans")
    head: str = "mlp"
    seed: int = 0
    max_epochs: int = 100
    n_jobs: int = 1


@dataclass(frozen=True)
class FinetuneRun:
    model: str
    strategy: str
    train: str
    test: str
    two_stage: bool = False
    source: str | None = None
    layer: str = "best"
    scope: str = "every-layer"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise StudyConfigError(f"finetune strategy {self.strategy!r}: choose from {', '.join(STRATEGIES)}")
        where = f"finetune run {self.model} {self.train}->{self.test}"
        if self.two_stage and not self.source:
            raise StudyConfigError(f"{where}: two_stage needs source")
        if self.source and not self.two_stage:
            raise StudyConfigError(f"{where}: source {self.source!r} is only used with two_stage = true")
        if self.scope not in SCOPES:
            raise StudyConfigError(f"{where}: scope {self.scope!r}: choose from {', '.join(SCOPES)}")
        if str(self.layer) != "best" and not (str(self.layer).isdigit() and int(self.layer) >= 1):
            raise StudyConfigError(f"{where}: layer {self.layer!r}: give 'best' or a layer number >= 1")


@dataclass(frozen=True)
class FinetuneSection:
    enabled: bool = True
    runs: tuple[FinetuneRun, ...] = ()
    folds: int = 5
    max_epochs: int = 100
    seed: int = 0


@dataclass(frozen=True)
class HumanSection:
    enabled: bool = False
    results: tuple[Path, ...] = ()
    key: Path | None = None
    group_column: str | None = "native_language"
    groups_table: Path | None = None


@dataclass(frozen=True)
class SedSection:
    enabled: bool = False
    model: str = "wavlm-emo"
    corpus: str = "zed"
    listeners: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class StudyConfig:
    name: str
    out: Path
    cache_root: Path
    seed: int = 0
    corpora: tuple[CorpusEntry, ...] = ()
    models: tuple[ModelEntry, ...] = ()
    probes: ProbesSection = field(default_factory=ProbesSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    human: HumanSection = field(default_factory=HumanSection)
    sed: SedSection = field(default_factory=SedSection)

    def corpus(self, name: str) -> CorpusEntry:
        """The corpus entry called ``name``."""
        for entry in self.corpora:
            if entry.name == name:
                return entry
        raise StudyConfigError(f"corpus {name!r} is used but not declared under [corpora]")


def _build(cls: type, data: dict[str, Any], where: str, base: Path) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise StudyConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    kwargs = {}
    for key, value in data.items():
        hint = str(known[key].type)
        if "Path" in hint and value is not None:
            value = tuple(_path(v, base) for v in value) if isinstance(value, list) else _path(value, base)
        elif "tuple" in hint and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def _path(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and validate a study TOML (see ``study.example.toml``)."""
    path = Path(path)
    if not path.exists():
        raise StudyConfigError(f"{path}: no such study config (start from study.example.toml)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise StudyConfigError(f"{path}: not valid TOML ({err})") from err
    base = path.parent.resolve()
    head = raw.pop("study", {})
    corpora = tuple(
        _build(CorpusEntry, {"name": name, **entry}, f"{path} [corpora.{name}]", base)
        for name, entry in raw.pop("corpora", {}).items()
    )
    models = tuple(
        _build(ModelEntry, {"alias": alias, **(entry if isinstance(entry, dict) else {"path": entry or None})},
               f"{path} [models.{alias}]", base)
        for alias, entry in raw.pop("models", {}).items()
    )
    ft_raw = dict(raw.pop("finetune", {}))
    runs = tuple(_build(FinetuneRun, r, f"{path} [[finetune.runs]]", base) for r in ft_raw.pop("runs", []))
    sections = {
        "probes": _build(ProbesSection, raw.pop("probes", {}), f"{path} [probes]", base),
        "finetune": _build(FinetuneSection, {**ft_raw, "runs": runs}, f"{path} [finetune]", base),
        "human": _build(HumanSection, raw.pop("human", {}), f"{path} [human]", base),
        "sed": _build(SedSection, raw.pop("sed", {}), f"{path} [sed]", base),
    }
    if raw:
        raise StudyConfigError(f"{path}: unknown section(s) {sorted(raw)}")
    head.setdefault("name", path.stem)
    head["out"] = _path(head.get("out", f"cache/runs/{head['name']}"), base)
    head["cache_root"] = _path(head.get("cache_root", "cache"), base)
    config = StudyConfig(**head, corpora=corpora, models=models, **sections)
    _check_references(config, path)
    return config


def _check_references(config: StudyConfig, path: Path) -> None:
    names = {c.name for c in config.corpora}
    aliases = {m.alias for m in config.models}
    used = set(config.probes.corpora)
    for run in config.finetune.runs:
        used |= {run.train, run.test} | ({run.source} if run.source else set())
        if run.model not in aliases:
            raise StudyConfigError(f"{path}: finetune model {run.model!r} is not declared under [models]")
    if config.sed.enabled:
        used.add(config.sed.corpus)
    missing = sorted(used - names)
    if missing:
        raise StudyConfigError(f"{path}: corpus/corpora {missing} used but not declared under [corpora]")
    unknown_models = sorted(set(config.probes.models) - aliases)
    if unknown_models:
        raise StudyConfigError(f"{path}: probes model(s) {unknown_models} not declared under [models]")
    for entry in config.corpora:
        if not entry.root.exists():
            raise StudyConfigError(
                f"{path} [corpora.{entry.name}]: root {entry.root} does not exist; put the {entry.reader} "
                "corpus there or fix the path"
            )
