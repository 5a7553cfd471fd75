"""``crossling study --config study.toml``: the paper's whole study on real data.

It runs only what is missing, in order (prepare, folds, extraction, probes, fine-tuning,
listening-test comparison, diarization, report), and can be stopped and restarted: every
finished step is recorded with a fingerprint of its config and of the manifests it read,
so changing a corpus or a setting reruns exactly the steps that depend on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from featstore.errors import safe_file_stem
from featstore.io import TableError, parquet_key_values
from featstore.paths import features_path, manifest_path
from finetune.tuners import canonical_strategy
from study import steps
from study.config import FinetuneRun, ModelEntry, StudyConfig
from study.graph import Call, Graph, Job, run_graph
from study.ledger import Ledger, StudyLock, fingerprint_of


def _manifest_fp(corpus: str, root: Path) -> str:
    """The manifest's recorded fingerprint and root (its ``crossling`` metadata), read from
    the file-level key-values ("" when there is no manifest yet)."""
    try:
        return parquet_key_values(manifest_path(corpus, root)).get("crossling", "")
    except TableError:
        return ""


def _run_name(run: FinetuneRun) -> str:
    """``model/[source-then-]train-to-test/strategy-scope[-Lk]``, each part a safe file name."""
    stage = f"{run.source_corpus}-then-" if run.two_stage else ""
    layer = "" if run.layer == "best" else f"-L{run.layer}"  # runs that differ only in layer get their own folder
    corpora = safe_file_stem(f"{stage}{run.train_corpus}-to-{run.test_corpus}", "fine-tuning run name")
    protocol = "" if run.protocol == "text" else f"-{run.protocol}"  # the text protocol keeps the old names
    method = safe_file_stem(f"{canonical_strategy(run.strategy).replace('+', '_')}-{run.scope}{layer}{protocol}",
                            "run name")
    return f"{safe_file_stem(run.model, 'model alias')}/{corpora}/{method}"


def needed_caches(config: StudyConfig) -> list[tuple[str, str]]:
    """(model alias, corpus) pairs whose pooled features the probes read."""
    if not config.probes.enabled:
        return []
    return [(m, c) for m in config.probes.models for c in config.probes.corpora]


def corpora_with_folds(config: StudyConfig) -> set[str]:
    """Corpora that the probes or fine-tuning read by fold (diarization and listening-test
    corpora need no folds, and a diarization corpus such as ZED could not have them)."""
    names: set[str] = set(config.probes.corpora) if config.probes.enabled else set()
    if config.finetune.enabled:
        for run in config.finetune.runs:
            names |= {run.train_corpus, run.test_corpus} | ({run.source_corpus} if run.source_corpus else set())
            if run.valid_corpus not in (None, "train", "test"):
                names.add(run.valid_corpus)
    return names


def run_study(config: StudyConfig, log: Callable[[str], None] = print, *, executor: str | None = None,
              scheduler: str | None = None, stats: list | None = None) -> Path:
    """Run every job of ``config`` that is not done yet, on ``executor`` (default
    ``[study] executor``; ``scheduler`` a Dask address); return the report's path.
    The run directory is locked for the whole study (:class:`study.ledger.StudyLock`).
    ``stats`` (a list) receives the driver's :class:`study.graph.RunStats`."""
    from study.executors import make_executor, settings_notes

    settings = config.executor
    if executor is not None or scheduler is not None:
        settings = replace(settings, kind=executor or settings.kind, scheduler=scheduler or settings.scheduler)
    for note in settings_notes(settings):
        log(note)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    with StudyLock(out):
        ledger = Ledger(out)
        steps.write_study_meta(out, {"title": f"Cross-lingual SER study: {config.name}",
                                     "config": asdict(config), "untrained_models": False})
        runner = make_executor(settings, config.resources, out)
        try:
            graph = build_graph(config, split=runner.split_jobs)
            result = run_graph(graph, ledger, runner, log)
        finally:
            runner.close()
    if stats is not None:
        stats.append(result)
    report = out / "report.html"
    log(f"report: {report}")
    return report


def study_status(config: StudyConfig, executor: str | None = None) -> list[str]:
    """One line per job of the study's graph (``done``, ``running`` with its job id,
    ``failed`` with its log, ``interrupted``, ``waiting``) and a count per state: what
    ``crossling study --status`` prints. Reads only; starts nothing."""
    from study.graph import format_states, job_states

    kind = executor or config.executor.kind
    graph = build_graph(config, split=kind != "local")
    return [f"{config.out} ({kind} executor):", *format_states(job_states(graph, Ledger(config.out)))]


def build_graph(config: StudyConfig, *, split: bool = False) -> Graph:
    """The study's jobs (:class:`study.graph.Graph`): prepare and folds per corpus,
    extraction per (model, corpus), the probes, fine-tuning per run (``split``: per (run,
    fold), then a gather job per run), Table I, the listening and diarization steps, the
    report. Fingerprints are computed when a job's inputs are done."""
    root, out = config.cache_root, config.out
    graph = Graph()
    models = {m.alias: m for m in config.models}
    with_folds = corpora_with_folds(config)

    def add(name: str, kind: str, deps: list[str | None], fp: Callable[[], str], run: Callable,
            covered_by: str | None = None) -> str:
        graph.add(Job(name, kind, tuple(d for d in deps if d), fp, run, covered_by))
        return name

    prepared: dict[str, str] = {}
    folds_of: dict[str, str] = {}
    for c in config.corpora:
        options = {k: v for k, v in (("language", c.language), ("label_map", c.label_map)) if v}
        fp = fingerprint_of("prepare", asdict(c))
        # plain arguments (Call): a job sent elsewhere imports only study.steps
        prepared[c.name] = add(f"prepare/{c.name}", "prepare", [], lambda fp=fp: fp, Call(
            steps.prepare, (c.reader, c.root, c.name, root, options, c.check_audio)))
        if c.name not in with_folds:
            continue
        folds_of[c.name] = add(
            f"splits/{c.name}", "splits", [prepared[c.name]],
            lambda fp=fp, c=c: fingerprint_of(fp, config.seed, _manifest_fp(c.name, root)),
            Call(steps.splits, (c.name, root, config.seed, c.paper_splits, tuple(c.split_languages))))

    def reads(*names: str | None) -> list[str]:  # the prepare and folds jobs of these corpora
        return [j for n in names if n for j in (prepared.get(n), folds_of.get(n)) if j]

    caches = []
    n_shards = config.executor.extract_shards if split else 1
    for alias, corpus in needed_caches(config):
        entry = models[alias]
        name = f"extract/{alias}/{corpus}"

        def extract_fp(entry: ModelEntry = entry, corpus: str = corpus) -> str:
            return fingerprint_of(asdict(entry), _manifest_fp(corpus, root), _extract_result_settings(config))

        if n_shards == 1:
            caches.append(add(name, "extract", [prepared.get(corpus)], extract_fp,
                              lambda log, entry=entry, corpus=corpus: _extract(entry, corpus, root, config)))
            continue
        shards = [add(f"{name}/shard-{i}-of-{n_shards}", "extract", [prepared.get(corpus)],
                      lambda extract_fp=extract_fp, i=i: fingerprint_of(extract_fp(), i, n_shards),
                      lambda log, entry=entry, corpus=corpus, i=i: _extract(entry, corpus, root, config, (i, n_shards)),
                      covered_by=name) for i in range(n_shards)]
        caches.append(add(name, "extract-merge", shards, extract_fp, lambda log, entry=entry, corpus=corpus: (
            _merge_shards(entry, corpus, root, n_shards))))

    def inputs_of(*names: str | None) -> dict:  # a step depends on the corpora it reads, no others
        by_name = {c.name: c for c in config.corpora}
        return {n: ([_manifest_fp(n, root), config.seed, by_name[n].paper_splits, by_name[n].split_languages]
                    if n in by_name else None) for n in names if n}

    def all_inputs() -> dict:
        return inputs_of(*(c.name for c in config.corpora))

    probes_job, probes_fp = None, (lambda: "")
    if config.probes.enabled and config.probes.models:
        p = config.probes
        used = [asdict(models[m]) for m in p.models]  # another model folder -> new caches

        def probes_fp() -> str:
            return fingerprint_of(asdict(p), inputs_of(*p.corpora), used)

        if not split:
            probes_job = add("probes", "probes", [*caches, *reads(*p.corpora)], probes_fp, lambda log: steps.probes(
                p.models, p.corpora, root, out / "probes", p.settings, probe=p.probe, layers=p.layers,
                n_folds=p.n_folds))
        else:  # one job per model (its condition groups), then one joins them
            groups = [add(f"probes/{m}", "probes", [*(j for j in caches if j.startswith(f"extract/{m}/")),
                                                   *reads(*p.corpora)],
                          lambda m=m: fingerprint_of(probes_fp(), m),
                          lambda log, m=m: steps.probes_group(p, m, root, out / "probes"), covered_by="probes")
                      for m in p.models]
            probes_job = add("probes", "probes-gather", groups, probes_fp,
                             lambda log: steps.probes_gather(p, root, out / "probes"))
    ft_dirs, ft_fps, ft_jobs = [], [], []
    probe_results = out / "probes" / "results.parquet"
    if config.finetune.enabled:
        f = config.finetune
        for run in f.runs:
            run_dir = out / "finetune" / _run_name(run)
            ft_dirs.append(run_dir)

            def run_fp(run: FinetuneRun = run) -> str:
                # layer "best" reads the probes' best layers: rerun when this model's changed
                best = _best_layers_of(run.model, root) if run.layer == "best" else None
                if run.layer == "best-smallest":  # the smallest layer of the probes' best-layer set
                    best = _best_layers_of(run.model, root, best_sets=True)
                if run.layer == "best" and _per_target(run):  # the layer comes from the probes' results
                    best = (best, probes_fp())
                return fingerprint_of(asdict(run), f.folds, inputs_of(run.train_corpus, run.test_corpus,
                                                                      run.source_corpus), asdict(models[run.model]), best)

            ft_fps.append(run_fp)
            deps = [probes_job, *reads(run.train_corpus, run.test_corpus, run.source_corpus,
                                       run.valid_corpus if run.valid_corpus not in (None, "train", "test") else None)]
            deps += [j for j in caches if j.startswith(f"extract/{run.model}/")]
            name = f"finetune/{_run_name(run)}"
            if not split:
                ft_jobs.append(add(name, "finetune", deps, run_fp, lambda log, run=run, run_dir=run_dir: steps.finetune_run(
                    run, models[run.model], root, run_dir, f.folds, probe_results=probe_results, log=log)))
                continue
            folds = [add(f"{name}/fold-{k}", "finetune-fold", deps, lambda run_fp=run_fp, k=k: fingerprint_of(run_fp(), k),
                         lambda log, run=run, run_dir=run_dir, k=k: steps.finetune_fold(
                             run, models[run.model], root, run_dir, f.folds, k, probe_results=probe_results, log=log),
                         covered_by=name) for k in range(f.folds)]
            ft_jobs.append(add(name, "finetune-gather", folds, run_fp, lambda log, run=run, run_dir=run_dir: (
                steps.finetune_gather(run, models[run.model], root, run_dir, f.folds, probe_results=probe_results))))
        if ft_dirs:
            add("finetune/table1", "table1", ft_jobs,
                lambda: fingerprint_of([str(d) for d in ft_dirs], [fp() for fp in ft_fps], f.two_stage_reading),
                lambda log: steps.table_one(ft_dirs, out / "finetune", reading=f.two_stage_reading))
    if config.human.enabled:
        add("human", "human", [probes_job, *ft_jobs, *reads(*(c.name for c in config.corpora))],
            lambda: fingerprint_of(asdict(config.human), all_inputs(), probes_fp(), [fp() for fp in ft_fps]),
            lambda log: _human(config))
    if config.sed.enabled:
        sed_model = asdict(models[config.sed.run.model]) if config.sed.run.model in models else None
        add("sed", "sed", reads(config.sed.run.corpus),
            lambda: fingerprint_of(asdict(config.sed), inputs_of(config.sed.run.corpus), sed_model),
            lambda log: _sed(config, models, log))
    last = [j.name for j in graph]
    ledger = Ledger(out)
    # rebuilt at every study (as it always was); "done" in --status while nothing changed since
    graph.add(Job("report", "report", tuple(last), lambda: fingerprint_of(
        "report", [(r or {}).get("fingerprint") for r in map(ledger.record, last)]), lambda log: _report(out),
        always_run=True, announce=False))
    return graph


def _report(out: Path) -> list[Path]:
    from study.report import build_report

    return [build_report(out)]


def _per_target(run: FinetuneRun) -> bool:
    """Whether ``layer = "best"`` of this run means the best layer per test corpus."""
    from finetune.run import PROTOCOL_DEFAULTS

    by = run.best_layer_by if run.best_layer_by is not None else PROTOCOL_DEFAULTS[run.protocol]["best_layer_by"]
    return by == "target"


def _best_layers_of(alias: str, root: Path, best_sets: bool = False) -> object:
    """``{setting: layer}`` of ``alias`` in the probes' best_layers.json (with ``best_sets``:
    ``{setting: [layers]}`` in best_layer_sets.json); None if absent."""
    from probes.results import best_layers_path, best_sets_path

    path = best_sets_path(root) if best_sets else best_layers_path(root)
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(alias) if path.exists() else None
    except (OSError, json.JSONDecodeError):
        return None


# [extract] settings that change what a cache holds (the rest decide only how fast and
# where it is made: the batched forward pass is exact under padding)
_EXTRACT_RESULT_KEYS = ("dtype", "frames", "frame_layers", "max_clip_seconds")


def _extract_result_settings(config: StudyConfig) -> dict:
    return {k: getattr(config.extract, k) for k in _EXTRACT_RESULT_KEYS}


def _extract(entry: ModelEntry, corpus: str, root: Path, config: StudyConfig,
             shard: tuple[int, int] = (0, 1)) -> list[Path]:
    from featstore.extract import extract, shard_file_name

    path = features_path(entry.alias, corpus, root)
    extract_config = config.extract.complete(
        model=entry.source, alias=entry.alias, corpus=corpus, cache_root=root, model_language=entry.language,
        out=path if shard == (0, 1) else path.with_name(shard_file_name(corpus, shard)), shard=shard)
    return [extract(extract_config)]


def _merge_shards(entry: ModelEntry, corpus: str, root: Path, n_shards: int) -> list[Path]:
    """Join the ``n_shards`` shard caches of one extraction into ``<alias>/<corpus>.h5``."""
    from featstore.cache import merge_caches
    from featstore.extract import shard_file_name

    path = features_path(entry.alias, corpus, root)
    return [merge_caches([path.with_name(shard_file_name(corpus, (i, n_shards))) for i in range(n_shards)], path)]


def _human(config: StudyConfig) -> list[Path]:
    import polars as pl

    h = config.human
    if not h.results or h.key is None:
        raise ValueError("[human] needs `results` (webMUSHRA lss.csv files) and `key` (from `probes human build`)")
    preds = []
    probes_dir = config.out / "probes"
    if (probes_dir / "predictions.parquet").exists():
        preds.append(steps.best_layer_predictions(probes_dir))
    preds += [pl.read_parquet(p) for p in sorted((config.out / "finetune").rglob("predictions.parquet"))]
    predictions = pl.concat(preds, how="diagonal_relaxed") if preds else None
    languages = {m.alias: m.language for m in config.models if m.language}
    return steps.human_compare(list(h.results), h.key, predictions, config.out / "human", group_languages=h.group_languages,
                               model_languages=languages, group_column=h.group_column or "native_language",
                               groups_table=h.groups_table)


def _sed(config: StudyConfig, models: dict, log: Callable[[str], None] = print) -> list[Path]:
    from probes.sed import ModelRunConfig, run_model, score_listeners

    s = config.sed
    entry = models.get(s.run.model)
    model_dir = config.out / "sed" / "model"
    # a model pinned by path keeps its alias in the results, as extraction and fine-tuning do
    run_config: ModelRunConfig = (s.run.complete(model=entry.source, alias=entry.alias) if entry is not None
                                  else s.run.complete())
    from featstore.console import track_items

    paths = list(run_model(run_config, root=config.cache_root, out_dir=model_dir, progress=lambda items: track_items(
        items, f"diarizing {run_config.corpus}", "utts", tty=False, write=log)).values())
    if s.listeners is not None:
        if s.key is None:
            raise ValueError("[sed] listeners need `key` (the key.csv written by `probes sed listeners build`)")
        paths += list(score_listeners(s.listeners, s.key, out_dir=config.out / "sed",
                                      model_results=model_dir / "per_utterance.parquet").values())
    return paths
