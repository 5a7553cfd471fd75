"""Typed configs of the layer-wise analysis; defaults are the paper's protocol.

:class:`ProbeConfig` says how one head is trained and how the work is spread over
workers; :class:`LayerwiseConfig` says which grid (models x corpora x settings x layers x
folds) to run and where to write it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from featstore.configs import ConfigError, check_fields
from probes.heads import HEADS
from probes.settings import SETTINGS
from probes.stats.config import StatsConfig

BACKENDS: tuple[str, ...] = ("loky", "dask")
STATS: tuple[str, ...] = ("mean", "std")


def _n_jobs_problem(value: int) -> str | None:
    return None if value >= 1 or value == -1 else f"{value} is not allowed"


@dataclass(frozen=True)
class ProbeConfig:
    """How heads are trained (defaults = the paper's layer-wise analysis).

    Attributes
    ----------
    head : a key of :data:`probes.heads.HEADS` (``mlp``, ``linear``, ``logreg``)
    lr, eps, weight_decay : AdamW learning rate, epsilon and decoupled weight decay
    max_epochs : upper bound on epochs
    batch_size : utterances per minibatch
    patience : stop after this many epochs without a lower validation loss
    seed : root seed; every head derives its own generator from (seed, layer, fold)
    standardize : z-score features with the training part's statistics (mlp/linear;
        logreg always standardises); the paper used raw mean-pooled features
    logreg_c, logreg_max_iter : inverse L2 strength and L-BFGS iterations of ``logreg``
    stat : pooled statistic read from the cache (``mean`` as the paper, or ``std``)
    n_jobs : parallel workers (joblib); 1 runs in this process (ignored with ``dask``:
        the cluster's workers decide)
    backend : ``loky`` (local processes) or ``dask`` (a Dask cluster at ``scheduler``;
        its workers must see the cache root at the same path)
    scheduler : Dask scheduler address (required with ``backend="dask"``)
    threads_per_worker : BLAS/torch threads inside each worker (1: two threads ran slower
        than one on small products on 2 cores)
    split_folds : one job per (training corpus, fold) instead of per training corpus
    max_stack : most heads trained as one stacked model (speed only: every head ends the
        same whatever the stacking)
    """

    head: str = field(default="mlp", metadata={"help": "probe head: mlp (the paper's), linear or logreg",
                                               "choices": tuple(HEADS)})
    lr: float = field(default=1e-4, metadata={"help": "AdamW learning rate", "gt": 0})
    eps: float = field(default=1e-8, metadata={"help": "AdamW epsilon", "min": 0})
    weight_decay: float = field(default=1e-5, metadata={"help": "AdamW decoupled weight decay", "min": 0})
    max_epochs: int = field(default=100, metadata={"help": "epochs at most (early stopping)", "min": 1})
    batch_size: int = field(default=32, metadata={"help": "utterances per minibatch", "min": 1})
    patience: int = field(default=10, metadata={"help": "epochs without a lower validation loss before stopping",
                                                "min": 1})
    seed: int = field(default=0, metadata={"help": "root seed of every head", "min": 0})
    standardize: bool = field(default=False, metadata={
        "help": "z-score features with the training part's statistics (mlp/linear)"})
    logreg_c: float = field(default=1.0, metadata={"help": "inverse L2 strength of logreg", "gt": 0})
    logreg_max_iter: int = field(default=200, metadata={"help": "L-BFGS iterations of logreg", "min": 1})
    stat: str = field(default="mean", metadata={"help": "pooled statistic read from the cache", "choices": STATS})
    n_jobs: int = field(default=1, metadata={"help": "parallel workers (-1: all cores)", "check": _n_jobs_problem,
                                             "allowed": ">= 1, or -1 for all cores"})
    backend: str = field(default="loky", metadata={"help": "loky (local processes) or dask (a Dask cluster)",
                                                   "choices": BACKENDS})
    scheduler: str | None = field(default=None, metadata={"help": "Dask scheduler address (backend dask)"})
    threads_per_worker: int = field(default=1, metadata={"help": "BLAS/torch threads inside each worker", "min": 1})
    split_folds: bool = field(default=False, metadata={"help": "one job per (training corpus, fold)"})
    # 5: a worker's stacked weights, gradients and AdamW moments (1.6 MB a head for the paper's
    # mlp on 768 dims) stay within its share of the last-level cache; on the 2-core AMD EPYC VM
    # (32 MB L3) two grid jobs took 6 % less CPU than with 8, which took 9 % less than 16
    max_stack: int = field(default=5, metadata={"help": "most heads trained as one stacked model", "min": 1})

    def __post_init__(self) -> None:
        check_fields(self)
        if self.backend == "dask" and not self.scheduler:
            raise ConfigError("ProbeConfig.scheduler: backend='dask' needs a scheduler address (e.g. tcp://host:8786)")

    def to_json(self) -> str:
        """The training protocol as JSON (the fields that change results; no parallelism)."""
        keep = {k: v for k, v in dataclasses.asdict(self).items() if k not in _RUNTIME_FIELDS}
        return json.dumps(keep, sort_keys=True)


_RUNTIME_FIELDS = ("n_jobs", "backend", "scheduler", "threads_per_worker", "split_folds", "max_stack")


@dataclass(frozen=True)
class LayerwiseConfig:
    """Which grid the layer-wise analysis runs.

    Attributes
    ----------
    models : model aliases (each needs a cache per corpus)
    corpora : corpus names (prepared, with fold tables)
    settings : subset of ``mono``, ``cross``, ``trans``
    layers : hidden-state indices to probe; ``None`` = all of the cache
    n_folds : use folds ``0 .. n_folds-1`` of each fold table
    cache_root : cache root (``None``: ``$CROSSLING_CACHE`` or ``./cache``)
    out_dir : run directory (``None``: ``runs_root()/probes/<run_name>``)
    run_name : name of the run directory (``None``: head and a time stamp)
    write_best : also update ``runs_root()/probes/best_layers.json``
    probe : the training protocol
    stats : the statistics over the run's predictions (:class:`probes.stats.StatsConfig`)
    weighted : also train weighted-sum probes (:mod:`probes.weighted`; skipped for ``logreg``)
    weighted_lr_scale : multiplier of the weighted-sum probes' layer-weight learning rate
    """

    models: tuple[str, ...] = field(default=("w2v2-cn", "w2v2-de"), metadata={
        "help": "model aliases (each needs a cache per corpus)"})
    corpora: tuple[str, ...] = field(default=("esd", "pavoque", "iemocap"), metadata={
        "help": "corpus names (prepared, with fold tables)"})
    settings: tuple[str, ...] = field(default=SETTINGS, metadata={"help": "settings to run", "choices": SETTINGS,
                                                                       "kind": "setting"})
    layers: tuple[int, ...] | None = field(default=None, metadata={
        "help": "hidden-state indices to probe (default: all of the cache)", "min": 0})
    n_folds: int = field(default=5, metadata={"help": "use folds 0 .. n_folds-1 of each fold table", "min": 1})
    cache_root: Path | None = field(default=None, metadata={"help": "cache root (default $CROSSLING_CACHE or ./cache)"})
    out_dir: Path | None = field(default=None, metadata={"help": "run directory (default runs/probes/<run_name>)"})
    run_name: str | None = field(default=None, metadata={"help": "name of the run directory (default: head and time)"})
    write_best: bool = field(default=True, metadata={"help": "also update runs/probes/best_layers.json"})
    probe: ProbeConfig = field(default_factory=ProbeConfig, metadata={"help": "the training protocol"})
    # statistics over the predictions (probes.stats): intervals, paired tests, best-layer sets
    stats: StatsConfig = field(default_factory=StatsConfig, metadata={
        "help": "bootstrap intervals, paired tests and best-layer sets (written to <run>/stats/)"})
    # weighted-sum probes (probes.weighted): one per (model, training corpus, fold)
    weighted: bool = field(default=True, metadata={
        "help": "also train weighted-sum probes (learned softmax weights over the layers; mlp/linear heads)"})
    weighted_lr_scale: float = field(default=1.0, metadata={
        "help": "learning-rate multiplier of the weighted-sum probes' layer weights (1: SUPERB's)", "gt": 0})

    def __post_init__(self) -> None:
        for name in ("models", "corpora", "settings"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))
        check_fields(self)
        problems = []
        for name in ("models", "corpora", "settings"):
            value = getattr(self, name)
            if not value:
                problems.append(f"LayerwiseConfig.{name}: must not be empty")
            elif len(set(value)) != len(value):
                problems.append(f"LayerwiseConfig.{name}: has duplicates: {list(value)}")
        if self.layers is not None:
            layers = tuple(int(v) for v in self.layers)
            if not layers or len(set(layers)) != len(layers):
                problems.append(f"LayerwiseConfig.layers: must be distinct indices >= 0, got {list(layers)}")
            object.__setattr__(self, "layers", layers)
        if problems:
            raise ConfigError(problems)
        for name in ("cache_root", "out_dir"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))

    def to_json(self) -> str:
        """The grid and the protocol as JSON (recorded in every results row)."""
        return json.dumps({
            "models": list(self.models), "corpora": list(self.corpora),
            "settings": list(self.settings), "layers": None if self.layers is None else list(self.layers),
            "n_folds": self.n_folds, "probe": json.loads(self.probe.to_json()),
        }, sort_keys=True)
