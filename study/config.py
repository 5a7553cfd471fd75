"""The typed configuration of a whole study (``crossling study --config study.toml``).

The study config is made of the libraries' own configs, so every setting, default, rule
and help text is written once, in the field of the library that uses it:

- ``[extract]``: :class:`ExtractSettings`, the fields of ``featstore.extract.ExtractConfig``
  except those the runner fills per (model, corpus);
- ``[probes]``: which models, corpora and settings, and ``probes.config.ProbeConfig``'s
  keys (``head``, ``max_epochs``, ``n_jobs`` ...) in the same table;
- ``[finetune]``: ``folds``, and defaults for every run: the fields of
  ``finetune.run.FinetuneConfig`` (``device``, ``strategy`` ...) with its sub-tables
  ``[finetune.train]`` (``TrainConfig``: ``lr``, ``patience``, ``batch_size``,
  ``max_epochs``, ``seed`` ...), ``[finetune.lora]`` (``r``, ``alpha``, ``dropout``),
  ``[finetune.ba]`` (``reduction``) and ``[finetune.wg]``; each ``[[finetune.runs]]``
  names ``model``, ``train_corpus``, ``test_corpus`` and overrides any default;
- ``[sed]``: ``probes.sed.ModelRunConfig``'s keys (``model``, ``corpus``, ``device``
  ...) plus the listening-test files;
- ``[human]``, ``[corpora.NAME]``, ``[models.ALIAS]``, ``[study]`` (``executor = "local"``,
  ``"slurm"`` or ``"dask"``: where the study's jobs run);
- ``[executor]``: :class:`ExecutorSettings` (submitit's cluster and folder, the Dask
  scheduler ...); ``[resources.<kind>]``: :class:`ResourceSpec` of each kind of job
  (``extract``, ``probes``, ``finetune``, ``sed``, ``default``), see ``docs/cluster.md``.

:func:`load_study_config` reads the file with one strict reader
(:mod:`featstore.configs`): unknown keys, wrong types, values out of range and references
to undeclared corpora or models, or to folders that do not exist, are ALL reported in one
:class:`StudyConfigError` before any step runs. Paths are relative to the TOML's folder.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from featstore.configs import ConfigError, ConfigReader, check_fields, subset_config
from featstore.corpora import READERS
from featstore.extract import ExtractConfig
from finetune.run import FinetuneConfig
from finetune.table_one import TWO_STAGE_READINGS
from finetune.tuners import canonical_strategy
from probes.config import LayerwiseConfig, ProbeConfig
from probes.sed import ModelRunConfig


class StudyConfigError(ConfigError):
    """A study config that cannot be run; lists every problem with its file and key."""


ExtractSettings = subset_config(
    ExtractConfig, name="ExtractSettings", module=__name__,
    # filled by the runner for each (model, corpus); a study extracts whole corpora
    exclude=("model", "corpus", "cache_root", "model_language", "alias", "language", "manifest", "out", "shard",
             "progress"),
    placeholders={"model": "model", "corpus": "corpus"},
    doc="``[extract]``: how every cache of the study is made (``featstore.extract.ExtractConfig``'s "
        "settings; the runner fills model, corpus, language, cache root and output file).")

_RUN_FILLED = ("cache_root", "out", "language", "alias", "folds")
FinetuneRun = subset_config(
    FinetuneConfig, name="FinetuneRun", module=__name__, exclude=_RUN_FILLED,
    doc="One ``[[finetune.runs]]``: a ``finetune.run.FinetuneConfig`` without what the runner fills "
        "(the model's folder and language from ``[models]``, cache root, output folder, folds).")
FinetuneDefaults = subset_config(
    FinetuneConfig, name="FinetuneDefaults", module=__name__,
    exclude=(*_RUN_FILLED, "model", "train_corpus", "test_corpus", "source_corpus", "two_stage"),
    placeholders={"model": "model", "train_corpus": "corpus", "test_corpus": "corpus"},
    doc="The keys of ``[finetune]`` that every run starts from (a run's own keys win).")
SedRun = subset_config(
    ModelRunConfig, name="SedRun", module=__name__, exclude=(),
    doc="The diarization model run of ``[sed]`` (``probes.sed.ModelRunConfig``).")

_LAYERWISE = {f.name: f for f in fields(LayerwiseConfig)}


@dataclass(frozen=True)
class CorpusEntry:
    """A corpus to prepare: ``reader`` from ``featstore corpora``, its ``root`` on disk."""

    name: str = field(metadata={"help": "the corpus's name in the cache (the TOML table's name)"})
    reader: str = field(metadata={"help": "corpus reader (featstore corpora)", "choices": tuple(READERS)})
    root: Path = field(metadata={"help": "the corpus on disk (folder, or a table file for the table reader)"})
    language: str | None = field(default=None, metadata={"help": "language code (readers that need one)"})
    label_map: str | None = field(default=None, metadata={"help": "label renames, e.g. negation=angry"})
    paper_splits: Path | None = field(default=None, metadata={
        "help": "a folder in the paper's split layout to import (else folds are generated)"})
    split_languages: tuple[str, ...] = field(default=(), metadata={
        "help": "generated folds keep only these languages (ESD: [\"cn\"])"})
    check_audio: bool = field(default=False, metadata={"help": "decode every file while preparing"})

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class ModelEntry:
    """A model alias, optionally pinned to a local folder (and its language)."""

    alias: str = field(metadata={"help": "the model's name in the cache and the results (the TOML key)"})
    path: Path | None = field(default=None, metadata={"help": "local model folder (default: found by alias)"})
    language: str | None = field(default=None, metadata={"help": "the model's language (models outside the registry)"})

    @property
    def source(self) -> str:
        """What ``featstore.models.load_model`` is given."""
        return str(self.path) if self.path else self.alias


@dataclass(frozen=True)
class ProbesSection:
    """``[probes]``: the layer-wise analysis; ProbeConfig's keys sit in the same table."""

    enabled: bool = field(default=True, metadata={"help": "run the layer-wise analysis"})
    models: tuple[str, ...] = field(default=(), metadata=_LAYERWISE["models"].metadata)
    corpora: tuple[str, ...] = field(default=(), metadata=_LAYERWISE["corpora"].metadata)
    settings: tuple[str, ...] = field(default=_LAYERWISE["settings"].default, metadata=_LAYERWISE["settings"].metadata)
    layers: tuple[int, ...] | None = field(default=None, metadata=_LAYERWISE["layers"].metadata)
    n_folds: int = field(default=_LAYERWISE["n_folds"].default, metadata=_LAYERWISE["n_folds"].metadata)
    probe: ProbeConfig = field(default_factory=ProbeConfig, metadata={
        "help": "how each head is trained (probes.config.ProbeConfig)", "inline": True})

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class FinetuneSection:
    """``[finetune]``: the PEFT runs (Table I) over folds ``0 .. folds-1``."""

    enabled: bool = field(default=True, metadata={"help": "run the fine-tuning runs"})
    runs: tuple[FinetuneRun, ...] = field(default=(), metadata={"help": "the runs ([[finetune.runs]])"})
    folds: int = field(default=5, metadata={"help": "folds 0 .. folds-1 of every run", "min": 1})
    two_stage_reading: str = field(default="text", metadata={
        "help": "which runs fill Table I's ambiguous 2-stg cells (docs/fidelity.md, 'Table I cells')",
        "choices": TWO_STAGE_READINGS})

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class HumanSection:
    """``[human]``: the listening-test comparison (Tables II/III)."""

    enabled: bool = field(default=False, metadata={"help": "compare listeners with the models"})
    results: tuple[Path, ...] = field(default=(), metadata={"help": "webMUSHRA lss.csv result files"})
    key: Path | None = field(default=None, metadata={"help": "the key.csv written by `probes human build`"})
    group_column: str | None = field(default="native_language", metadata={
        "help": "questionnaire column that gives each listener's group"})
    groups_table: Path | None = field(default=None, metadata={"help": "a listener,group table instead"})
    group_languages: dict[str, str] = field(default_factory=dict, metadata={
        "help": "listener group -> language code, for group names that are not codes or known aliases "
                "(e.g. {Mandarin-speakers = \"cn\"}); zh/chinese/german/english... are known"})


@dataclass(frozen=True)
class SedSection:
    """``[sed]``: speech emotion diarization (Table IV); ModelRunConfig's keys sit in the
    same table."""

    enabled: bool = field(default=False, metadata={"help": "run the diarization model (and score listeners)"})
    run: SedRun = field(default_factory=SedRun, metadata={
        "help": "the diarization model run (probes.sed.ModelRunConfig)", "inline": True})
    listeners: Path | None = field(default=None, metadata={
        "help": "listener answers: listener,group,stimulus,label,start,end"})
    key: Path | None = field(default=None, metadata={
        "help": "the key.csv written by `probes sed listeners build`"})


EXECUTOR_KINDS: tuple[str, ...] = ("local", "slurm", "dask")
"""Where a study's jobs can run (the registry is ``study.executors.EXECUTORS``)."""


@dataclass(frozen=True)
class ExecutorSettings:
    """``[executor]``: how the jobs are sent (the executor itself is ``[study] executor``)."""

    kind: str = field(default="local", metadata={
        "help": "where the jobs run: local (this process), slurm (submitit), dask", "choices": EXECUTOR_KINDS})
    cluster: str = field(default="slurm", metadata={
        "help": "submitit's cluster for the slurm executor: slurm, or local (each job a subprocess: tests, "
                "one machine)", "choices": ("slurm", "local")})
    folder: Path | None = field(default=None, metadata={
        "help": "submitit's job files and logs (default <out>/jobs/submitit; on the shared file system)"})
    scheduler: str | None = field(default=None, metadata={
        "help": "Dask scheduler address, e.g. tcp://host:8786 (default: a local cluster)"})
    workers: int = field(default=2, metadata={"help": "worker processes of the local Dask cluster", "min": 1})
    extract_shards: int = field(default=1, metadata={
        "help": "extraction jobs per (model, corpus) on slurm and dask: shards of the corpus by duration, "
                "merged into one cache after", "min": 1})
    poll_s: float = field(default=0.2, metadata={"help": "seconds between looks at jobs in flight", "gt": 0})
    pool: int = field(default=0, metadata={
        "help": "slurm: long-lived worker jobs per resource kind that run the study's jobs one after another "
                "(queue wait and imports paid once per worker); 0: one SLURM job per study job", "min": 0})
    pool_idle_s: float = field(default=60.0, metadata={
        "help": "slurm pool: a worker exits after this many seconds without a job", "gt": 0})

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class ResourceSpec:
    """``[resources.<kind>]``: what one job of a kind asks the scheduler for."""

    gpus: int = field(default=0, metadata={"help": "GPUs per job", "min": 0})
    cpus: int = field(default=2, metadata={"help": "CPU cores per job", "min": 1})
    memory_gb: float = field(default=8.0, metadata={"help": "memory per job, GB", "gt": 0})
    time_min: int = field(default=60, metadata={"help": "time limit per job, minutes", "min": 1})
    partition: str | None = field(default=None, metadata={"help": "SLURM partition (default: the cluster's)"})
    account: str | None = field(default=None, metadata={"help": "SLURM account to charge"})
    array_parallelism: int = field(default=16, metadata={
        "help": "jobs of this kind running at once (SLURM array throttle)", "min": 1})
    extra: dict[str, str] = field(default_factory=dict, metadata={
        "help": "further sbatch options, e.g. {qos = \"high\", constraint = \"a100\"}"})

    def __post_init__(self) -> None:
        check_fields(self)


RESOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "extract": {"gpus": 1, "cpus": 4, "memory_gb": 32.0, "time_min": 240},
    "probes": {"gpus": 0, "cpus": 8, "memory_gb": 32.0, "time_min": 240},
    "finetune": {"gpus": 1, "cpus": 4, "memory_gb": 32.0, "time_min": 720},
    "sed": {"gpus": 1, "cpus": 4, "memory_gb": 16.0, "time_min": 120},
    "default": {"gpus": 0, "cpus": 2, "memory_gb": 8.0, "time_min": 60},
}
"""The defaults of each ``[resources.<kind>]``: extraction, fine-tuning (one job per fold)
and diarization ask for a GPU, the probes for CPUs; ``default`` is every other job
(preparing corpora, folds, the listening-test comparison)."""


def default_resources() -> dict[str, ResourceSpec]:
    """Every resource kind at its defaults."""
    return {kind: ResourceSpec(**values) for kind, values in RESOURCE_DEFAULTS.items()}


@dataclass(frozen=True)
class StudySettings:
    """``[study]``."""

    name: str | None = field(default=None, metadata={"help": "the study's name (default: the file's stem)"})
    out: Path | None = field(default=None, metadata={"help": "results, figures and report (default cache/runs/NAME)"})
    cache_root: Path | None = field(default=None, metadata={
        "help": "manifests, folds and hidden-state caches (default: cache next to the file)"})
    seed: int = field(default=0, metadata={"help": "seed of the generated folds", "min": 0})
    executor: str = field(default="local", metadata={
        "help": "where the jobs run: local (this process), slurm (submitit), dask", "choices": EXECUTOR_KINDS})


@dataclass(frozen=True)
class StudyConfig:
    """A whole study, as :func:`load_study_config` reads it (or built in Python)."""

    name: str = field(metadata={"help": "the study's name"})
    out: Path = field(metadata={"help": "results, figures and report"})
    cache_root: Path = field(metadata={"help": "manifests, folds and hidden-state caches"})
    seed: int = field(default=0, metadata={"help": "seed of the generated folds", "min": 0})
    corpora: tuple[CorpusEntry, ...] = field(default=(), metadata={"help": "[corpora.NAME] tables"})
    models: tuple[ModelEntry, ...] = field(default=(), metadata={"help": "[models] aliases and folders"})
    extract: ExtractSettings = field(default_factory=ExtractSettings, metadata={"help": "[extract]"})
    probes: ProbesSection = field(default_factory=ProbesSection, metadata={"help": "[probes]"})
    finetune: FinetuneSection = field(default_factory=FinetuneSection, metadata={"help": "[finetune]"})
    human: HumanSection = field(default_factory=HumanSection, metadata={"help": "[human]"})
    sed: SedSection = field(default_factory=SedSection, metadata={"help": "[sed]"})
    executor: ExecutorSettings = field(default_factory=ExecutorSettings, metadata={
        "help": "[study] executor and [executor]"})
    resources: dict[str, ResourceSpec] = field(default_factory=default_resources, metadata={
        "help": "[resources.<kind>] of each kind of job"})

    def __post_init__(self) -> None:
        check_fields(self)

    def corpus(self, name: str) -> CorpusEntry:
        """The corpus entry called ``name``."""
        for entry in self.corpora:
            if entry.name == name:
                return entry
        raise StudyConfigError(f"corpus {name!r} is used but not declared under [corpora]")


# keys of the earlier format, and where they are now
_MOVED_FINETUNE = {"max_epochs": "[finetune.train] max_epochs", "seed": "[finetune.train] seed"}
_MOVED_RUN = {"test": "test_corpus", "source": "source_corpus"}


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _table(reader: ConfigReader, raw: Mapping[str, Any], key: str, quiet: bool = False) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        if not quiet:
            reader.say(key, f"expected a table [{key}], got {value!r}")
        return {}
    return dict(value)


def _read_finetune(reader: ConfigReader, data: dict[str, Any]) -> FinetuneSection | None:
    runs_raw = data.pop("runs", [])
    for old, new in _MOVED_FINETUNE.items():
        if old in data:
            reader.say(f"finetune.{old}", f"moved: write it as {new}")
            data.pop(old)
    section_keys = {f.name for f in fields(FinetuneSection)} - {"runs"}
    head = {k: data.pop(k) for k in list(data) if k in section_keys}
    defaults = reader.build(FinetuneDefaults, data, "finetune")
    default_keys = data if defaults is not None else {}  # bad defaults are reported once, not per run
    if not isinstance(runs_raw, list):
        reader.say("finetune.runs", "expected a list of [[finetune.runs]] tables")
        runs_raw = []
    runs = []
    for i, run in enumerate(runs_raw):
        where = f"finetune.runs.{i + 1}"
        if not isinstance(run, Mapping):
            reader.say(where, f"expected a table, got {run!r}")
            continue
        run = dict(run)
        # keys of the earlier format: said once, their values carried over (no "missing" as well)
        if isinstance(run.get("train"), str):
            reader.say(f"{where}.train", "the training corpus is now `train_corpus` (`train` holds "
                       "training settings: lr, patience, batch_size, max_epochs, seed ...)")
            run.setdefault("train_corpus", run.pop("train"))
        for old, new in _MOVED_RUN.items():
            if old in run:
                reader.say(f"{where}.{old}", f"renamed: write it as {new}")
                run.setdefault(new, run.pop(old))
        runs.append(reader.build(FinetuneRun, _deep_merge(default_keys, run), where))
    section = reader.build(FinetuneSection, head, "finetune")
    if section is None or any(r is None for r in runs):
        return None
    return FinetuneSection(**{**{f.name: getattr(section, f.name) for f in fields(section)}, "runs": tuple(runs)})


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and check a study TOML (see ``study.example.toml``); raise one
    :class:`StudyConfigError` listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise StudyConfigError(f"{path}: no such study config (start from study.example.toml)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise StudyConfigError(f"{path}: not valid TOML ({err})") from err
    base = path.parent.resolve()
    reader = ConfigReader(path, base)
    known = ("study", "corpora", "models", "extract", "probes", "finetune", "human", "sed", "executor", "resources")
    for key in raw:
        if key not in known:
            from featstore.errors import did_you_mean

            reader.say(key, f"unknown section{did_you_mean(key, known)}", ", ".join(known))
    head = reader.build(StudySettings, _table(reader, raw, "study"), "study")
    corpora = []
    for name, entry in _table(reader, raw, "corpora").items():
        if not isinstance(entry, Mapping):
            reader.say(f"corpora.{name}", f"expected a table (reader, root ...), got {entry!r}")
            continue
        corpora.append(reader.build(CorpusEntry, entry, f"corpora.{name}", fixed={"name": name}))
    models = []
    for alias, entry in _table(reader, raw, "models").items():
        if isinstance(entry, str):  # alias = "folder" ("" = found by alias)
            entry = {"path": entry} if entry else {}
        if not isinstance(entry, Mapping):
            reader.say(f"models.{alias}", f"expected a folder (string) or a table (path, language), got {entry!r}")
            continue
        models.append(reader.build(ModelEntry, entry, f"models.{alias}", fixed={"alias": alias}))
    extract = reader.build(ExtractSettings, _table(reader, raw, "extract"), "extract")
    probes = reader.build(ProbesSection, _table(reader, raw, "probes"), "probes")
    finetune = _read_finetune(reader, _table(reader, raw, "finetune"))
    human = reader.build(HumanSection, _table(reader, raw, "human"), "human")
    sed = reader.build(SedSection, _table(reader, raw, "sed"), "sed")
    executor = reader.build(ExecutorSettings, _table(reader, raw, "executor"), "executor",
                            fixed={"kind": head.executor if head is not None else "local"})
    resources = _read_resources(reader, _table(reader, raw, "resources"))
    parts = [head, extract, probes, finetune, human, sed, executor, resources, *corpora, *models]
    # references are checked even when a section had problems, against what the file
    # declares, so that every mistake is in the one report (not found in rounds)
    declared = _References(corpora=list(_table(reader, raw, "corpora", quiet=True)),
                           models=list(_table(reader, raw, "models", quiet=True)))
    _check_references(declared, reader, probes=probes, finetune=finetune, sed=sed, human=human,
                      corpora=[c for c in corpora if c is not None], models=[m for m in models if m is not None],
                      raw=raw)
    reader.raise_if_problems(StudyConfigError)
    assert all(p is not None for p in parts)  # a part that failed to build said so above
    name = head.name or path.stem
    return StudyConfig(
        name=name, out=head.out or base / "cache" / "runs" / name, cache_root=head.cache_root or base / "cache",
        seed=head.seed, corpora=tuple(corpora), models=tuple(models), extract=extract, probes=probes,
        finetune=finetune, human=human, sed=sed, executor=executor, resources=resources)


def _read_resources(reader: ConfigReader, table: Mapping[str, Any]) -> dict[str, ResourceSpec] | None:
    """``[resources.<kind>]`` tables over their kind's defaults (unknown kinds are named)."""
    from featstore.errors import did_you_mean

    out: dict[str, ResourceSpec] = {}
    for kind in table:
        if kind not in RESOURCE_DEFAULTS:
            reader.say(f"resources.{kind}", f"unknown kind of job{did_you_mean(kind, RESOURCE_DEFAULTS)}",
                       ", ".join(RESOURCE_DEFAULTS))
    for kind, defaults in RESOURCE_DEFAULTS.items():
        given = table.get(kind, {})
        if not isinstance(given, Mapping):
            reader.say(f"resources.{kind}", f"expected a table (gpus, cpus, memory_gb ...), got {given!r}")
            continue
        spec = reader.build(ResourceSpec, {**defaults, **given}, f"resources.{kind}")
        if spec is not None:
            out[kind] = spec
    return out if len(out) == len(RESOURCE_DEFAULTS) else None


@dataclass(frozen=True)
class _References:
    """The corpus and model names a study file declares (its table keys)."""

    corpora: list[str]
    models: list[str]


def _check_references(declared: _References, reader: ConfigReader, *, probes: ProbesSection | None,
                      finetune: FinetuneSection | None, sed: SedSection | None, human: HumanSection | None,
                      corpora: list[CorpusEntry], models: list[ModelEntry],
                      raw: Mapping[str, Any] | None = None) -> None:
    """Undeclared corpora and models, folders that do not exist, and pinned model folders
    whose language cannot be known (added to ``reader``). A section that failed to build
    (None) is checked from its raw table instead, so its references are in the same report."""
    names, aliases = declared.corpora, declared.models
    raw = raw or {}

    def corpus_ref(where: str, name: str | None) -> None:
        if name is not None and name not in names:
            reader.say(where, f"corpus {name!r} is not declared under [corpora]", ", ".join(names) or "none declared")

    def model_ref(where: str, alias: str) -> None:
        if alias not in aliases:
            reader.say(where, f"model {alias!r} is not declared under [models]", ", ".join(aliases) or "none declared")

    if probes is not None and probes.enabled:
        for name in probes.corpora:
            corpus_ref("probes.corpora", name)
        for alias in probes.models:
            model_ref("probes.models", alias)
    elif probes is None and _raw(raw, "probes").get("enabled", True) is not False:
        for name in _strings(_raw(raw, "probes").get("corpora")):
            corpus_ref("probes.corpora", name)
        for alias in _strings(_raw(raw, "probes").get("models")):
            model_ref("probes.models", alias)
    if finetune is None and _raw(raw, "finetune").get("enabled", True) is not False:
        runs = _raw(raw, "finetune").get("runs")
        for i, run in enumerate(runs if isinstance(runs, list) else []):
            run = run if isinstance(run, Mapping) else {}
            where = f"finetune.runs.{i + 1}"
            if isinstance(run.get("model"), str):
                model_ref(f"{where}.model", run["model"])
            for key in ("train_corpus", "test_corpus", "source_corpus", "valid_corpus"):
                value = run.get(key)
                if isinstance(value, str) and not (key == "valid_corpus" and value in ("train", "test")):
                    corpus_ref(f"{where}.{key}", value)
    if sed is None and _raw(raw, "sed").get("enabled") is True and isinstance(_raw(raw, "sed").get("corpus"), str):
        corpus_ref("sed.corpus", _raw(raw, "sed")["corpus"])
    if finetune is not None and finetune.enabled:
        seen: dict[tuple, int] = {}
        for i, run in enumerate(finetune.runs):
            where = f"finetune.runs.{i + 1}"
            key = (run.model, run.source_corpus if run.two_stage else None, run.train_corpus, run.test_corpus,
                   canonical_strategy(run.strategy), run.scope, str(run.layer), run.protocol)
            if key in seen:
                reader.say(where, f"same model, corpora, strategy, scope, layer and protocol as run {seen[key]}: both "
                           "would write one folder; merge them or change one of these")
            seen.setdefault(key, i + 1)
            model_ref(f"{where}.model", run.model)
            corpus_ref(f"{where}.train_corpus", run.train_corpus)
            corpus_ref(f"{where}.test_corpus", run.test_corpus)
            corpus_ref(f"{where}.source_corpus", run.source_corpus)
            if run.valid_corpus not in (None, "train", "test"):
                corpus_ref(f"{where}.valid_corpus", run.valid_corpus)
    if sed is not None and sed.enabled:
        corpus_ref("sed.corpus", sed.run.corpus)
    for entry in corpora:
        if not entry.root.exists():
            reader.say(f"corpora.{entry.name}.root", f"{entry.root} does not exist; put the {entry.reader} corpus "
                       "there or fix the path")
        if entry.paper_splits is not None and not entry.paper_splits.is_dir():
            reader.say(f"corpora.{entry.name}.paper_splits", f"{entry.paper_splits} is not a folder")
    extracted = set(probes.models if probes is not None and probes.enabled else _strings(
        _raw(raw, "probes").get("models")))
    extracted |= {run.model for run in (finetune.runs if finetune is not None and finetune.enabled else ())}
    if finetune is None:
        raw_runs = _raw(raw, "finetune").get("runs")
        extracted |= {r.get("model") for r in (raw_runs if isinstance(raw_runs, list) else [])
                      if isinstance(r, Mapping) and isinstance(r.get("model"), str)}
    for entry in models:
        if entry.path is not None and not entry.path.exists():
            reader.say(f"models.{entry.alias}.path", f"{entry.path} does not exist")
        elif (entry.alias in extracted and entry.path is not None and entry.language is None
              and not _language_known(entry)):
            reader.say(f"models.{entry.alias}.language", f"missing: {entry.path} has no crossling.json and "
                       f"{entry.alias!r} is not a registered model, so its pre-training language is unknown",
                       'a language code, e.g. language = "cn"')
    if human is not None and human.enabled:
        for p in (*human.results, human.key, human.groups_table):
            if p is not None and not p.exists():
                reader.say("human", f"{p} does not exist")


def _language_known(entry: ModelEntry) -> bool:
    """Whether ``load_model`` can tell the language of a model pinned by folder without
    being told: its alias is registered, or the folder has a ``crossling.json``."""
    from featstore.models.registry import MODELS

    return entry.alias in MODELS or (entry.path is not None and (Path(entry.path) / "crossling.json").is_file())


def _raw(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, Mapping) else {}


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
