"""``crossling study --config study.toml``: the paper's whole study on real data.

It runs only what is missing, in order (prepare, folds, extraction, probes, fine-tuning,
listening-test comparison, diarization, report), and can be stopped and restarted: every
finished step is recorded with a fingerprint of its config and of the manifests it read,
so changing a corpus or a setting reruns exactly the steps that depend on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from featstore.paths import features_path, manifest_path
from study import steps
from study.config import FinetuneRun, ModelEntry, StudyConfig
from study.ledger import Ledger, fingerprint_of


def _manifest_fp(corpus: str, root: Path) -> str:
    import pyarrow.parquet as pq

    meta = pq.read_schema(manifest_path(corpus, root)).metadata or {}
    return (meta.get(b"crossling") or b"").decode()


def _run_name(run: FinetuneRun) -> str:
    stage = f"{run.source}-then-" if run.two_stage else ""
    layer = "" if run.layer == "best" else f"-L{run.layer}"  # runs that differ only in layer get their own folder
    return f"{run.model}/{stage}{run.train}-to-{run.test}/{run.strategy.replace('+', '_')}-{run.scope}{layer}"


def needed_caches(config: StudyConfig) -> list[tuple[str, str]]:
    """(model alias, corpus) pairs whose pooled features the probes read."""
    if not config.probes.enabled:
        return []
    return [(m, c) for m in config.probes.models for c in config.probes.corpora]


def run_study(config: StudyConfig, log: Callable[[str], None] = print) -> Path:
    """Run every step of ``config`` that is not done yet; return the report's path."""
    root, out = config.cache_root, config.out
    ledger = Ledger(out)
    steps.write_study_meta(out, {"title": f"Cross-lingual SER study: {config.name}",
                                 "config": asdict(config), "untrained_models": False})
    models = {m.alias: m for m in config.models}
    for c in config.corpora:
        options = {k: v for k, v in (("language", c.language), ("label_map", c.label_map)) if v}
        fp = fingerprint_of("prepare", asdict(c))
        ledger.run(f"prepare/{c.name}", fp, lambda c=c, options=options: steps.prepare(
            c.reader, c.root, c.name, root, options, c.check_audio), log)
        ledger.run(f"splits/{c.name}", fingerprint_of(fp, config.seed, _manifest_fp(c.name, root)),
                   lambda c=c: steps.splits(c.name, root, config.seed, c.paper_splits, c.split_languages), log)
    for alias, corpus in needed_caches(config):
        entry = models[alias]
        ledger.run(f"extract/{alias}/{corpus}", fingerprint_of(asdict(entry), _manifest_fp(corpus, root)),
                   lambda entry=entry, corpus=corpus: _extract(entry, corpus, root), log)
    # what later steps read: each corpus's manifest and folds (seed, imported paper
    # splits), so a change there reruns the probes and fine-tuning too
    inputs = {c.name: [_manifest_fp(c.name, root), config.seed, c.paper_splits] for c in config.corpora}
    probes_fp = ""
    if config.probes.enabled and config.probes.models:
        p = config.probes
        used = [asdict(models[m]) for m in p.models]  # another model folder -> new caches
        probes_fp = fingerprint_of(asdict(p), inputs, used)
        ledger.run("probes", probes_fp, lambda: steps.probes(
            p.models, p.corpora, root, out / "probes", p.settings, p.head, p.seed, p.max_epochs, p.n_jobs), log)
    ft_dirs, ft_fps = [], []
    if config.finetune.enabled:
        f = config.finetune
        for run in f.runs:
            run_dir = out / "finetune" / _run_name(run)
            ft_dirs.append(run_dir)
            # layer "best" reads the probes' best layers: rerun when this model's changed
            best = _best_layers_of(run.model, root) if run.layer == "best" else None
            ft_fps.append(fingerprint_of(asdict(run), f.folds, f.max_epochs, f.seed, inputs,
                                         asdict(models[run.model]), best))
            ledger.run(f"finetune/{_run_name(run)}", ft_fps[-1],
                       lambda run=run, run_dir=run_dir: steps.finetune(
                           models[run.model].source, run.strategy, run.train, run.test, root, run_dir,
                           run.two_stage, run.source, _layer(run.layer), run.scope, tuple(range(f.folds)),
                           f.max_epochs, f.seed), log)
        if ft_dirs:
            ledger.run("finetune/table1", fingerprint_of([str(d) for d in ft_dirs], ft_fps),
                       lambda: steps.table_one(ft_dirs, out / "finetune"), log)
    if config.human.enabled:
        ledger.run("human", fingerprint_of(asdict(config.human), inputs, probes_fp, ft_fps), lambda: _human(config), log)
    if config.sed.enabled:
        sed_model = asdict(models[config.sed.model]) if config.sed.model in models else None
        ledger.run("sed", fingerprint_of(asdict(config.sed), inputs, sed_model), lambda: _sed(config, models), log)
    from study.report import build_report

    report = build_report(out)
    log(f"report: {report}")
    return report


def _best_layers_of(alias: str, root: Path) -> object:
    """``{setting: layer}`` of ``alias`` in the probes' best_layers.json (None if absent)."""
    from probes.results import best_layers_path

    path = best_layers_path(root)
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(alias) if path.exists() else None
    except (OSError, json.JSONDecodeError):
        return None


def _layer(layer: str) -> str | int:
    return layer if layer == "best" else int(layer)


def _extract(entry: ModelEntry, corpus: str, root: Path) -> list[Path]:
    from featstore.extract import ExtractConfig, extract

    config = ExtractConfig(model=entry.source, corpus=corpus, cache_root=root, model_language=entry.language,
                           alias=entry.alias, out=features_path(entry.alias, corpus, root))
    return [extract(config)]


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
    return steps.human_compare(list(h.results), h.key, predictions, config.out / "human", group_languages={},
                               model_languages=languages, group_column=h.group_column or "native_language",
                               groups_table=h.groups_table)


def _sed(config: StudyConfig, models: dict) -> list[Path]:
    from probes.sed._model import ModelRunConfig
    from probes.sed._pipeline import run_model, score_listeners

    s = config.sed
    source = models[s.model].source if s.model in models else s.model
    model_dir = config.out / "sed" / "model"
    paths = list(run_model(ModelRunConfig(model=source, corpus=s.corpus), root=config.cache_root,
                           out_dir=model_dir).values())
    if s.listeners is not None:
        if s.key is None:
            raise ValueError("[sed] listeners need `key` (the key.csv written by `probes sed listeners build`)")
        paths += list(score_listeners(s.listeners, s.key, out_dir=config.out / "sed",
                                      model_results=model_dir / "per_utterance.parquet").values())
    return paths
