"""Where the jobs of a study run: an explicit registry, one module per executor.

- ``local`` (:mod:`study.executors.local`): every job in the study's own process, one after
  the other, as a one-process study always ran (fine-tuning folds stay in one job per run);
- ``slurm`` (:mod:`study.executors.slurm`): each job a SLURM job through submitit, with the
  ``[resources.<kind>]`` of its kind (jobs of one kind that are ready together go as one
  job array); ``[executor] cluster = "local"`` runs the same submission path as local
  subprocesses (submitit's local executor), as the tests do; with ``[executor] pool = N``
  (:mod:`study.executors.pool`) up to N long-lived SLURM jobs per kind run the jobs instead;
- ``dask`` (:mod:`study.executors.dask`): each job a task on a Dask cluster
  (``[executor] scheduler = "tcp://..."``, or a local cluster of ``workers`` processes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from featstore.errors import unknown_name

if TYPE_CHECKING:
    from study.config import ExecutorSettings, ResourceSpec
    from study.graph import Executor


def _local(settings: ExecutorSettings, resources: Mapping[str, ResourceSpec], run_dir: Path) -> Executor:
    from study.executors.local import LocalExecutor

    return LocalExecutor(settings, resources, run_dir)


def _slurm(settings: ExecutorSettings, resources: Mapping[str, ResourceSpec], run_dir: Path) -> Executor:
    if settings.pool > 0:
        from study.executors.pool import PoolExecutor

        return PoolExecutor(settings, resources, run_dir)
    from study.executors.slurm import SubmititExecutor

    return SubmititExecutor(settings, resources, run_dir)


def _dask(settings: ExecutorSettings, resources: Mapping[str, ResourceSpec], run_dir: Path) -> Executor:
    from study.executors.dask import DaskExecutor

    return DaskExecutor(settings, resources, run_dir)


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": _local, "slurm": _slurm, "dask": _dask}
"""Executor name -> ``make(settings, resources, run_dir)``."""


def make_executor(settings: ExecutorSettings, resources: Mapping[str, ResourceSpec], run_dir: Path) -> Executor:
    """The executor ``settings.kind`` names (close it when the study ends)."""
    if settings.kind not in EXECUTORS:
        raise unknown_name("executor", settings.kind, EXECUTORS)
    return EXECUTORS[settings.kind](settings, resources, Path(run_dir))


def settings_notes(settings: ExecutorSettings) -> list[str]:
    """Lines telling the user which ``[executor]`` settings the chosen executor ignores
    (a TOML written for SLURM run with ``--executor local`` or ``dask`` still runs)."""
    notes = []
    if settings.pool > 0 and settings.kind != "slurm":
        notes.append(f"note: [executor] pool = {settings.pool} applies to the slurm executor only; "
                     f"the {settings.kind} executor runs without a pool")
    if settings.scheduler and settings.kind != "dask":
        notes.append(f"note: the Dask scheduler {settings.scheduler} is used by the dask executor only; "
                     f"the {settings.kind} executor does not connect to it")
    return notes
