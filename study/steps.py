"""The steps of a study, each one call into the package that does the work.

``crossling demo`` and ``crossling study`` chain these through a :class:`~study.ledger.Ledger`
so that a rerun skips what is finished. Every step returns the paths it wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from featstore.errors import safe_file_stem
from featstore.io import atomic_write, atomic_write_json, atomic_write_text
from featstore.paths import manifest_path, splits_path

if TYPE_CHECKING:
    from finetune.run import FinetuneConfig
    from probes.config import LayerwiseConfig, ProbeConfig
    from study.config import FinetuneRun, ModelEntry, ProbesSection


def prepare(reader: str, root: Path, name: str, cache_root: Path, options: Mapping[str, object] | None = None,
            check_audio: bool = False) -> list[Path]:
    """Read a corpus into its manifest (``featstore prepare``)."""
    from featstore.corpora.prepare import PrepareConfig, prepare_corpus

    config = PrepareConfig(corpus=reader, root=Path(root), name=name, options=dict(options or {}),
                           cache_root=cache_root, check=check_audio)
    result = prepare_corpus(config, progress=False)
    return [result.manifest_path]


def splits(corpus: str, cache_root: Path, seed: int = 0, paper_splits: Path | None = None,
           languages: Sequence[str] = ()) -> list[Path]:
    """Make the corpus's folds (``featstore splits``, keeping only ``languages`` when
    given), or import the paper's."""
    from featstore.audio import load_bad_files
    from featstore.manifest import load_manifest
    from featstore.splits import FoldConfig, import_paper_folds, make_folds, save_folds

    mpath = manifest_path(corpus, cache_root)
    manifest = load_manifest(mpath)
    bad = load_bad_files(mpath)
    if paper_splits is not None:
        folds = import_paper_folds(manifest, paper_splits, exclude=bad)
    else:
        folds = make_folds(manifest, FoldConfig(seed=seed, languages=tuple(languages)), exclude=bad)
    return [save_folds(folds, splits_path(corpus, cache_root))]


def extract(model: str, corpus: str, cache_root: Path, frames: bool = False, dtype: str = "float16",
            progress: bool = True) -> list[Path]:
    """Every hidden layer of ``model`` over ``corpus`` into the cache (``featstore extract``)."""
    from featstore.extract import ExtractConfig
    from featstore.extract import extract as run

    config = ExtractConfig(model=model, corpus=corpus, cache_root=cache_root, frames=frames, dtype=dtype,
                           progress=progress)
    return [run(config)]


def probes(models: Sequence[str], corpora: Sequence[str], cache_root: Path, out_dir: Path,
           settings: Sequence[str] = ("mono", "cross", "trans"), head: str = "mlp", seed: int = 0,
           max_epochs: int = 100, n_jobs: int = 1, *, probe: ProbeConfig | None = None,
           layers: Sequence[int] | None = None, n_folds: int = 5) -> list[Path]:
    """The layer-wise analysis (``probes layerwise``) into ``out_dir``; ``probe`` (a whole
    ``ProbeConfig``) replaces ``head``, ``seed``, ``max_epochs`` and ``n_jobs``."""
    from probes.config import LayerwiseConfig, ProbeConfig
    from probes.layerwise import run_layerwise

    if probe is None:
        probe = ProbeConfig(head=head, seed=seed, max_epochs=max_epochs, n_jobs=n_jobs)
    config = LayerwiseConfig(
        models=tuple(models), corpora=tuple(corpora), settings=tuple(settings), cache_root=cache_root,
        out_dir=out_dir, probe=probe, layers=None if layers is None else tuple(layers), n_folds=n_folds,
    )
    run_layerwise(config, progress=True)
    return [out_dir / "results.parquet"]


def _layerwise_config(section: ProbesSection, cache_root: Path, out_dir: Path) -> LayerwiseConfig:
    """The ``LayerwiseConfig`` :func:`probes` builds for a study's ``[probes]``, with the
    cache root resolved as ``run_layerwise`` resolves it."""
    from dataclasses import replace

    from featstore.paths import cache_root as resolve_root
    from probes.config import LayerwiseConfig

    config = LayerwiseConfig(
        models=tuple(section.models), corpora=tuple(section.corpora), settings=tuple(section.settings),
        cache_root=cache_root, out_dir=out_dir, probe=section.probe,
        layers=None if section.layers is None else tuple(section.layers), n_folds=section.n_folds)
    return replace(config, cache_root=resolve_root(config.cache_root).resolve())


def probes_group(section: ProbesSection, model: str, cache_root: Path, out_dir: Path) -> list[Path]:
    """The probe heads of one model (a condition group: every training corpus and the test
    corpora that share its heads), as a job of its own; its rows and predictions go to
    ``out_dir/parts/<model>-*.parquet`` for :func:`probes_gather`."""
    from probes.layerwise import dispatch, plan_jobs
    from probes.results import results_frame

    config = _layerwise_config(section, cache_root, out_dir)
    outputs = dispatch([job for job in plan_jobs(config) if job.model == model], config)
    parts = _probe_parts(out_dir, model)
    parts["results"].parent.mkdir(parents=True, exist_ok=True)
    atomic_write(parts["predictions"], pl.concat([p for _, p in outputs]).write_parquet)
    atomic_write(parts["results"], results_frame([row for rows, _ in outputs for row in rows]).write_parquet)
    return list(parts.values())


def probes_gather(section: ProbesSection, cache_root: Path, out_dir: Path) -> list[Path]:
    """Join the models' parts into the layer-wise run, written exactly as ``run_layerwise``
    writes it (:func:`probes.layerwise.finish_layerwise`: results, predictions, summary, best
    layers, weighted-sum probes, statistics, Figure 1, the global best layers)."""
    from probes.layerwise import finish_layerwise, plan_jobs

    config = _layerwise_config(section, cache_root, out_dir)
    parts = [_probe_parts(out_dir, m) for m in config.models]
    frame = pl.concat([pl.read_parquet(p["results"]) for p in parts])
    preds = pl.concat([pl.read_parquet(p["predictions"]) for p in parts])
    finish_layerwise(config, plan_jobs(config), frame, preds)
    return [out_dir / "results.parquet"]


def _probe_parts(out_dir: Path, model: str) -> dict[str, Path]:
    stem = safe_file_stem(model, "model alias")
    return {k: Path(out_dir) / "parts" / f"{stem}-{k}.parquet" for k in ("results", "predictions")}


def finetune(model: str, strategy: str, train: str, test: str, cache_root: Path, out_dir: Path,
             two_stage: bool = False, source: str | None = None, layer: str | int = "best",
             scope: str = "every-layer", folds: Sequence[int] = (0, 1, 2, 3, 4), max_epochs: int = 100,
             seed: int = 0, log: Callable[[str], None] | None = None) -> list[Path]:
    """One PEFT condition over its folds (``finetune peft``) into ``out_dir``; ``log``
    receives progress lines (each epoch: fold, loss, validation score, time left)."""
    from finetune.run import FinetuneConfig, run_finetune
    from finetune.train import TrainConfig

    config = FinetuneConfig(
        model=model, train_corpus=train, test_corpus=test, layer=layer, strategy=strategy, scope=scope,
        two_stage=two_stage, source_corpus=source, folds=tuple(folds),
        train=TrainConfig(max_epochs=max_epochs, seed=seed), cache_root=str(cache_root), out=str(out_dir),
    )
    run_finetune(config, log=log, on_epoch=epoch_progress(log, config))
    return [out_dir / "results.parquet"]


def finetune_config(run: FinetuneRun, entry: ModelEntry, cache_root: Path, out_dir: Path,
                    folds: int, probe_results: Path | None = None) -> FinetuneConfig:
    """The ``FinetuneConfig`` of one study run: the model's identity whole (folder, alias,
    language from ``[models]``), so ``layer = "best"``, the frame cache and the results
    use the alias whatever the folder is called; folds ``0 .. folds-1``. ``probe_results``
    (the study's probes' ``results.parquet``) is where a best layer per target corpus is
    read, unless the run names its own file."""
    extra = {}
    if getattr(run, "probe_results", None) is None and probe_results is not None and Path(probe_results).exists():
        extra["probe_results"] = str(probe_results)
    return run.complete(model=entry.source, alias=entry.alias, language=entry.language, cache_root=str(cache_root),
                        out=str(out_dir), folds=tuple(range(folds)), **extra)


def finetune_run(run: FinetuneRun, entry: ModelEntry, cache_root: Path, out_dir: Path, folds: int,
                 probe_results: Path | None = None, log: Callable[[str], None] | None = None) -> list[Path]:
    """One ``[[finetune.runs]]`` of a study over its folds into ``out_dir`` (progress lines to ``log``)."""
    from finetune.run import run_finetune

    config = finetune_config(run, entry, cache_root, out_dir, folds, probe_results)
    run_finetune(config, log=log, on_epoch=epoch_progress(log, config))
    return [Path(out_dir) / "results.parquet"]


def finetune_fold(run: FinetuneRun, entry: ModelEntry, cache_root: Path, out_dir: Path, folds: int, fold: int,
                  probe_results: Path | None = None, log: Callable[[str], None] | None = None) -> list[Path]:
    """Fold ``fold`` of one ``[[finetune.runs]]`` (a job of its own on a cluster): trains
    and tests it with the run's whole config and writes the fold's part of the run
    (``finetune.results.fold_part_paths``); :func:`finetune_gather` joins the parts."""
    from finetune.results import fold_part_paths
    from finetune.run import run_finetune

    config = finetune_config(run, entry, cache_root, out_dir, folds, probe_results)
    run_finetune(config, log=log, on_epoch=epoch_progress(log, config), only_fold=fold)
    paths = fold_part_paths(out_dir, fold)
    checkpoint = [Path(out_dir) / "checkpoints" / f"fold{fold}"] if config.save_checkpoints else []
    return [*paths.values(), *checkpoint]


def finetune_gather(run: FinetuneRun, entry: ModelEntry, cache_root: Path, out_dir: Path, folds: int,
                    probe_results: Path | None = None) -> list[Path]:
    """Write one run's files from its folds' parts, exactly as :func:`finetune_run` writes them."""
    from finetune.results import gather_fold_parts

    config = finetune_config(run, entry, cache_root, out_dir, folds, probe_results)
    gather_fold_parts(out_dir, config.folds, config.to_json())
    return [Path(out_dir) / "results.parquet"]


def epoch_progress(log: Callable[[str], None] | None, config: FinetuneConfig) -> Callable[[dict], None] | None:
    """A fine-tuning ``on_epoch`` that writes one progress line per epoch (at most one per
    5 s) to ``log``; ``None`` without a ``log``."""
    from featstore.console import EpochProgress

    if log is None:
        return None
    return EpochProgress(log, len(config.folds), config.train.max_epochs, 2 if config.two_stage else 1, every_s=5.0)


def table_one(run_dirs: Sequence[Path], out_dir: Path, *, reading: str = "text", demo: bool = False) -> list[Path]:
    """Join the Table I rows of several fine-tuning runs into ``out_dir/table1.csv`` and
    ``table1.md`` (UA in %, the paper's value beside each cell a run fills; ``reading`` is
    ``two_stage_reading``, ``demo`` marks synthetic data as not comparable)."""
    from finetune.results import table_one as make_table
    from finetune.results import table_one_markdown

    frames = [pl.read_parquet(d / "results.parquet") for d in run_dirs if (d / "results.parquet").exists()]
    if not frames:
        return []
    table = make_table(pl.concat(frames, how="diagonal_relaxed"), reading=reading, demo=demo)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [atomic_write(out_dir / "table1.csv", table.write_csv),
            atomic_write_text(out_dir / "table1.md", table_one_markdown(table))]


def best_layer_predictions(probes_dir: Path) -> pl.DataFrame:
    """Layer-wise predictions at each (model, setting)'s best layer (by mean UA over folds
    and corpora, ties to the lower layer: ``probes.results.best_layer_table``)."""
    from probes.results import best_layer_table

    results = pl.read_parquet(probes_dir / "results.parquet")
    best = best_layer_table(results, min_layer=0).select("model", "setting", "layer")
    preds = pl.read_parquet(probes_dir / "predictions.parquet")
    return preds.join(best, on=["model", "setting", "layer"], how="inner")


def human_compare(results: Sequence[Path], key_path: Path, predictions: pl.DataFrame | None, out_dir: Path,
                  group_languages: Mapping[str, str], model_languages: Mapping[str, str],
                  l2_languages: Sequence[str] = ("en",), group_column: str = "native_language",
                  groups_table: Path | None = None, simulated: str | None = None,
                  probes_dir: Path | None = None) -> list[Path]:
    """Ingest webMUSHRA answers and compare listeners with models (``probes human``).
    Listener groups come from the questionnaire's ``group_column``, or from a
    ``listener,group`` table ``groups_table`` when one is given. ``simulated`` (how the
    answers were simulated) goes into the provenance of every file written, as the field
    ``simulated`` (``ingest.json``, ``answers.parquet``'s metadata, ``compare.json``).
    With the probes' ``predictions.parquet`` in ``probes_dir`` (default: ``probes/`` beside
    ``out_dir``, the study's and the demo's layout) the human-likeness per layer goes to
    ``out_dir/likeness`` (:func:`probes.human.likeness.write_likeness_from_run`)."""
    from probes.human import CompareConfig, IngestConfig, compare, ingest, read_key, save_compare, save_ingest
    from probes.human.ingest import read_groups
    from probes.human.results import file_provenance

    if not results:
        raise FileNotFoundError("no listening-test result files given")
    missing = [str(p) for p in results if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"listening-test result file(s) not found: {', '.join(missing)}")
    key = read_key(key_path)
    groups = read_groups(groups_table) if groups_table is not None else None
    ingested = ingest(results, key, IngestConfig(group_column=group_column, group_languages=dict(group_languages)),
                      groups=groups)
    prov = {"key": file_provenance(key_path), "results": [file_provenance(p) for p in results],
            "groups": file_provenance(groups_table) if groups_table is not None else None}
    if simulated:
        prov["simulated"] = simulated
    save_ingest(ingested, out_dir / "ingest", prov)
    config = CompareConfig(group_languages=dict(group_languages), model_languages=dict(model_languages),
                           l2_languages={"*": tuple(l2_languages)})
    result = compare(ingested.answers, predictions, config, key=key)
    paths = save_compare(result, out_dir, prov, config.labels)
    probes_dir = Path(out_dir).parent / "probes" if probes_dir is None else Path(probes_dir)
    if (probes_dir / "predictions.parquet").is_file():  # human-likeness per layer (docs/human-likeness.md)
        from probes.human.likeness import write_likeness_from_run

        paths |= write_likeness_from_run(ingested.answers, probes_dir, out_dir / "likeness", config, key, prov,
                                         simulated)
    return list(paths.values())


def write_study_meta(run_dir: Path, meta: Mapping[str, object]) -> Path:
    """``<run_dir>/study.json``: what the report shows at its top and in its provenance."""
    run_dir.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(run_dir / "study.json", dict(meta))
