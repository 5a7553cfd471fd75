"""``crossling demo``, ``crossling study`` and ``crossling report``: thin shells over
:mod:`study.demo`, :mod:`study.runner` and :mod:`study.report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featstore.console import aliased, check_cache_root, error_message, print_line
from featstore.console import fail as _fail


def demo(
    out: Annotated[Path | None, typer.Option(help="Run directory for results, figures and report.html. "
                                                  "Default: <cache root>/runs/demo.")] = None,
    cache_root: Annotated[Path | None, typer.Option(help="Cache root for the demo corpus, models, manifests and "
                                                         "features; default $CROSSLING_CACHE or ./cache.")] = None,
    seed: Annotated[int, typer.Option(help="One seed for corpus, models, folds, probes, fine-tuning and "
                                           "listeners.")] = 0,
    per_emotion: Annotated[int, typer.Option(help="Demo sentences per emotion, speaker and language "
                                                  "(12: 960 utterances).")] = 12,
    probe_head: Annotated[str, typer.Option(help="Probe head: logreg (suits the demo's small corpus), "
                                                 "the paper's mlp, or linear.")] = "logreg",
    probe_max_epochs: Annotated[int, typer.Option(help="Probe epochs at most (early stopping, patience 10; "
                                                       "the paper's 100).")] = 100,
    finetune_max_epochs: Annotated[int, typer.Option(help="Fine-tuning epochs per stage at most (early "
                                                          "stopping, patience 5).")] = 20,
    listeners: Annotated[int, typer.Option(help="Simulated listeners per group (6, as the paper).")] = 6,
) -> None:
    """Run the whole study on the embedded demo corpus with untrained demo models (no data,
    no weights, no network). Reruns reuse the cache and skip finished steps."""
    from study.demo import DemoConfig, run_demo

    try:
        config = DemoConfig(out=out, cache_root=cache_root, seed=seed, per_emotion=per_emotion,
                            probe_head=probe_head, probe_epochs=probe_max_epochs, finetune_epochs=finetune_max_epochs,
                            listeners_per_group=listeners)
    except ValueError as err:
        _fail(str(err))
    from featstore.synth.espeak import EspeakError

    try:
        run_demo(config, log=print_line)  # its last line names the report
    except EspeakError as err:  # the one thing a fresh machine can lack: the speech synthesiser
        _fail(f"the demo corpus needs eSpeak NG: {err}")


def report(
    run_dir: Annotated[Path, typer.Argument(help="A study's run directory (holds probes/, finetune/, human/, sed/).")],
    out: Annotated[Path | None, typer.Option(help="Where to write the HTML. Default: <RUN_DIR>/report.html.")] = None,
) -> None:
    """Write one self-contained HTML report (figures embedded) of a run directory."""
    from study.report import build_report

    try:
        path = build_report(run_dir, out)
    except (FileNotFoundError, ValueError) as err:
        _fail(str(err))
    print_line(f"report: {path}")


def study(
    config: Annotated[Path, typer.Option("--config", help="Study TOML (start from study.example.toml at the "
                                                           "repository root).")],
    executor: Annotated[str | None, typer.Option(
        help="Where the jobs run: local (this process), slurm (submitit), dask. Default: the TOML's "
             "[study] executor, else local.")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="Dask scheduler address (tcp://host:8786) for --executor dask; default [executor] scheduler, "
             "else a local cluster.")] = None,
    status: Annotated[bool, typer.Option("--status", help="Show each job (done, running with its job id, failed "
                                                          "with its log, waiting) and exit.")] = False,
) -> None:
    """Run the paper's whole study on real data from one config: only what is missing,
    each job once the jobs it reads are done (in this process, on SLURM or on Dask); stop
    it at any time and rerun the same command to go on."""
    from study.config import EXECUTOR_KINDS, StudyConfigError, load_study_config
    from study.runner import run_study

    try:
        cfg = load_study_config(config)
    except StudyConfigError as err:
        _fail(error_message(err))
    if executor is not None and executor not in EXECUTOR_KINDS:
        from featstore.errors import unknown_name

        _fail(str(unknown_name("executor", executor, EXECUTOR_KINDS)))
    if scheduler is not None and (executor or cfg.executor.kind) != "dask":
        chosen = f"--executor {executor}" if executor else f"{config} runs on {cfg.executor.kind}"
        _fail(f"--scheduler is for the dask executor; {chosen} (add --executor dask)")
    check_cache_root(cfg.cache_root, given_by=f"{config} [study] cache_root")
    if status:
        from study.runner import study_status

        for line in study_status(cfg, executor=executor):
            print_line(line)
        return
    from featstore.cache import CacheLockedError
    from featstore.extract import ExtractError
    from study.executors.dask import DaskSchedulerError
    from study.graph import StudyJobsFailed
    from study.ledger import StudyLockedError

    try:
        run_study(cfg, log=print_line, executor=executor, scheduler=scheduler)  # its last line names the report
    except (StudyLockedError, StudyJobsFailed, DaskSchedulerError) as err:
        _fail(error_message(err))
    except (FileNotFoundError, ValueError, ExtractError, CacheLockedError) as err:
        # missing corpus files or model folders, bad folds, a locked cache...: the step
        # that failed is the last "[run ]" line printed above
        _fail(f"{config}: {error_message(err)}")


def study_bench(
    out: Annotated[Path, typer.Option(help="Scratch folder for the benchmark's demo corpus, models and runs.")],
    executors: Annotated[str, typer.Option(help="Executors to measure, comma-separated: local, slurm, "
                                                "slurm-pool (two long-lived workers per kind), dask.")
                         ] = "local,slurm,dask",
    folds: Annotated[int, typer.Option(help="Fine-tuning folds of the benchmark's run (each a job).", min=1)] = 5,
    max_overhead_s: Annotated[float, typer.Option(help="Pass when the mean scheduling overhead per job is at "
                                                       "most this, seconds.")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures (and the machine) as JSON instead "
                                                         "of lines (with --write-only: executor -> study TOML).")
                         ] = False,
    write_only: Annotated[bool, typer.Option("--write-only", help="Write the demo-sized study's inputs and one "
                                                                 "study TOML per executor, print their paths, run "
                                                                 "nothing (to try an executor by hand).")] = False,
) -> None:
    """Measure each executor's scheduling overhead per job on a demo-sized study (submitit
    runs its local executor, Dask a local cluster) and how many jobs the graph lets run at once;
    exits 1 when an executor misses the target."""
    import json

    from featstore.errors import CrosslingError
    from study.bench import bench_record, check_executors, header, run_bench

    names = [e.strip() for e in executors.split(",") if e.strip()]
    try:
        check_executors(names)  # before the first executor's run, not after it
    except CrosslingError as err:
        _fail(f"--executors: {error_message(err)}")
    if write_only:
        from study.bench import write_studies

        paths = dict(zip(names, write_studies(out, names, folds), strict=True))
        if as_json:
            print(json.dumps({name: str(path) for name, path in paths.items()}, indent=2))
        else:
            for name, path in paths.items():
                print_line(f"{name}: crossling study --config {path}")
        return
    figures = run_bench(out, names, folds=folds, max_overhead_s=max_overhead_s)
    if as_json:
        print(json.dumps(bench_record(figures, folds), indent=2))
    else:
        for line in [header(folds), *(f.line() for f in figures)]:
            print_line(line)
    if not all(f.passed for f in figures):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``demo``, ``study`` and ``report`` to ``app``."""
    app.command("demo", short_help="Run the whole study on the demo corpus (no data, no network).",
                cls=aliased({"--probe-epochs": "--probe-max-epochs",
                             "--finetune-epochs": "--finetune-max-epochs"}))(demo)
    app.command("study", short_help="Run the paper's whole study from a config (resumable).")(study)
    app.command("report", short_help="Write the HTML report of a run directory.")(report)
    app.command("study-bench", short_help="Measure the executors' scheduling overhead per job.")(study_bench)
