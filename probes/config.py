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

from probes.heads import HEADS
from probes.settings import SETTINGS

BACKENDS: tuple[str, ...] = ("loky", "dask")
STATS: tuple[str, ...] = ("mean", "std")


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

    head: str = "mlp"
    lr: float = 1e-4
    eps: float = 1e-8
    weight_decay: float = 1e-5
    max_epochs: int = 100
    batch_size: int = 32
    patience: int = 10
    seed: int = 0
    standardize: bool = False
    logreg_c: float = 1.0
    logreg_max_iter: int = 200
    stat: str = "mean"
    n_jobs: int = 1
    backend: str = "loky"
    scheduler: str | None = None
    threads_per_worker: int = 1
    split_folds: bool = False
    max_stack: int = 16

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose from {sorted(HEADS)}")
        for name in ("lr", "logreg_c"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("eps", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_epochs", "batch_size", "patience", "logreg_max_iter", "threads_per_worker",
                     "max_stack"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_jobs == 0 or self.n_jobs < -1:
            raise ValueError(f"n_jobs must be >= 1 or -1 (all cores), got {self.n_jobs}")
        if self.stat not in STATS:
            raise ValueError(f"stat must be one of {STATS}, got {self.stat!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "dask" and not self.scheduler:
            raise ValueError("backend='dask' needs a scheduler address (e.g. tcp://host:8786)")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

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
    """

    models: tuple[str, ...] = ("w2v2-cn", "w2v2-de")
    corpora: tuple[str, ...] = ("esd", "pavoque", "iemocap")
    settings: tuple[str, ...] = SETTINGS
    layers: tuple[int, ...] | None = None
    n_folds: int = 5
    cache_root: Path | None = None
    out_dir: Path | None = None
    run_name: str | None = None
    write_best: bool = True
    probe: ProbeConfig = field(default_factory=ProbeConfig)

    def __post_init__(self) -> None:
        for name in ("models", "corpora", "settings"):
            value = tuple(getattr(self, name))
            if not value:
                raise ValueError(f"{name} must not be empty")
            if len(set(value)) != len(value):
                raise ValueError(f"{name} has duplicates: {list(value)}")
            object.__setattr__(self, name, value)
        bad = [s for s in self.settings if s not in SETTINGS]
        if bad:
            raise ValueError(f"unknown setting(s) {bad}; choose from {list(SETTINGS)}")
        if self.layers is not None:
            layers = tuple(int(v) for v in self.layers)
            if not layers or min(layers) < 0 or len(set(layers)) != len(layers):
                raise ValueError(f"layers must be distinct indices >= 0, got {list(layers)}")
            object.__setattr__(self, "layers", layers)
        if self.n_folds < 1:
            raise ValueError(f"n_folds must be >= 1, got {self.n_folds}")
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
