"""What each ``probes sed`` command does, as library functions (the commands stay thin).

Default output folder: ``runs_root()/sed/...`` (see :mod:`featstore.paths`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from featstore.manifest import load_manifest, manifest_fingerprint
from featstore.paths import manifest_path, runs_root
from probes.sed._listeners import SedTestConfig, build_sed_test, read_answers, read_key, score_answers
from probes.sed._model import ModelRunConfig, diarize_corpus
from probes.sed._probe import ProbeConfig, run_probe
from probes.sed._results import (
    consensus_segments,
    per_emotion,
    plot_timelines,
    table_iv,
    with_provenance,
    write_table,
)

if TYPE_CHECKING:  # pragma: no cover
    from featstore.cache import FeatureCache

Progress = Callable[[Sequence], Sequence]


def _identity(items: Sequence) -> Sequence:
    return items


def default_out(kind: str, *parts: str, root: str | Path | None = None) -> Path:
    """``runs_root()/sed/<kind>/<parts...>``."""
    return runs_root(root).joinpath("sed", kind, *parts)


def load_corpus_manifest(corpus: str, root: str | Path | None = None) -> pl.DataFrame:
    """The prepared manifest of ``corpus`` (``featstore prepare`` writes it)."""
    return load_manifest(manifest_path(corpus, root))


def run_model(
    config: ModelRunConfig,
    root: str | Path | None = None,
    out_dir: str | Path | None = None,
    limit: int | None = None,
    progress: Progress = _identity,
    load_wave: Callable[[dict], np.ndarray] | None = None,
    search_dirs: list[str | Path] | None = None,
) -> dict[str, Path]:
    """``probes sed model``: the diarization model over a prepared corpus.

    Writes ``per_utterance`` and ``per_emotion`` tables (parquet + CSV, with provenance),
    ``table_iv.csv`` (model column only; listeners are added by ``listeners score``) and
    ``timelines.png``/``.svg`` (reference vs model, first 24 utterances).
    """
    from featstore.audio import load_row
    from featstore.models import load_model

    manifest = load_corpus_manifest(config.corpus, root)
    if limit is not None:
        manifest = manifest.sort("utt_id").head(limit)
    loaded = load_model(config.model, alias=config.alias, device=config.device, search_dirs=search_dirs,
                        cache_root=root)
    per_utt = diarize_corpus(loaded, manifest, load_wave or load_row, config, progress)
    prov = {"model": loaded.alias, "model_fingerprint": loaded.fingerprint, "corpus": config.corpus,
            "manifest_fingerprint": manifest_fingerprint(manifest), "cache_fingerprint": None,
            "split": "all" if limit is None else f"first {limit} by utt_id", "seed": None,
            "config_json": config.to_json()}
    out = Path(out_dir) if out_dir else default_out("model", loaded.alias, config.corpus, root=root)
    paths = {f"per_utterance_{k}": v for k, v in
             write_table(with_provenance(per_utt, prov), out, "per_utterance", prov).items()}
    summary = per_emotion(per_utt)
    paths |= {f"per_emotion_{k}": v for k, v in write_table(with_provenance(summary, prov), out, "per_emotion",
                                                            prov).items()}
    paths["table_iv"] = _write_csv(table_iv(per_utt, model_name=loaded.alias), out / "table_iv.csv")
    paths |= _timelines(per_utt, None, out / "timelines", loaded.alias)
    return paths


def run_frame_probe(
    config: ProbeConfig,
    root: str | Path | None = None,
    out_dir: str | Path | None = None,
    progress: Progress = _identity,
) -> dict[str, Path]:
    """``probes sed probe``: one frame-level probe per layer, EDER on the test corpus.

    Writes ``per_utterance`` (layer x utterance) and ``per_layer`` tables with provenance.
    """
    from featstore.cache import CacheNotFoundError, open_model_cache

    def cache_of(corpus: str) -> FeatureCache:
        try:
            return open_model_cache(config.model, corpus, root)  # the merged file, else the shard set
        except CacheNotFoundError as err:
            raise CacheNotFoundError(f"{err} (the frame probe needs frames: add --frames)") from err

    train: dict[str, FeatureCache] = {}
    try:
        for c in config.train_corpora:
            train[c] = cache_of(c)
        test = cache_of(config.test_corpus)
    except BaseException:
        for cache in train.values():
            cache.close()
        raise
    try:
        per_utt, per_layer = run_probe(config, train, test, progress=progress)
        prov = {"model": config.model, "model_fingerprint": test.provenance.get("model_fingerprint"),
                "corpus": config.test_corpus,
                "manifest_fingerprint": json.dumps({c: train[c].provenance.get("manifest_fingerprint") for c in train}
                                                   | {config.test_corpus: test.provenance.get("manifest_fingerprint")}),
                "cache_fingerprint": json.dumps({c: train[c].fingerprint for c in train}
                                                | {config.test_corpus: test.fingerprint}),
                "split": "train: " + "+".join(config.train_corpora) + f"; test: {config.test_corpus} (all)",
                "seed": config.seed, "config_json": config.to_json()}
        out = Path(out_dir) if out_dir else default_out("probe", config.model, config.test_corpus, root=root)
        paths = {f"per_utterance_{k}": v for k, v in write_table(with_provenance(per_utt, prov), out, "per_utterance",
                                                                 prov).items()}
        paths |= {f"per_layer_{k}": v for k, v in write_table(with_provenance(per_layer, prov), out, "per_layer",
                                                              prov).items()}
    finally:  # the caches are closed on errors too
        for cache in (*train.values(), test):
            cache.close()
    return paths


def build_listeners(
    config: SedTestConfig,
    corpus: str = "zed",
    root: str | Path | None = None,
    out_dir: str | Path | None = None,
    load_wave: Callable[[dict], np.ndarray] | None = None,
) -> dict[str, Path]:
    """``probes sed listeners build``: stimuli, key and answer-sheet template."""
    from featstore.audio import load_row

    manifest = load_corpus_manifest(corpus, root)
    out = Path(out_dir) if out_dir else default_out("listening_test", corpus, root=root)
    return build_sed_test(manifest, out, load_wave or load_row, config)


def score_listeners(
    answers_path: str | Path,
    key_path: str | Path,
    out_dir: str | Path | None = None,
    model_results: str | Path | None = None,
    root: str | Path | None = None,
    simulated: str | None = None,
) -> dict[str, Path]:
    """``probes sed listeners score``: EDER of every answer, per group and emotion.

    Writes ``per_answer`` and ``per_group_emotion`` tables, ``table_iv.csv`` (listener
    groups, plus the model on the same stimuli when ``model_results`` (a model run's
    ``per_utterance.parquet``) is given), ``table_iv_vs_paper.csv``/``.md`` (beside the
    paper's Table IV) and ``timelines.png``/``.svg``. ``simulated`` (how answers were
    simulated, for a demo) goes into every file's provenance and marks the paper
    comparison as not comparable.
    """
    key = read_key(key_path)
    scored = score_answers(read_answers(answers_path), key, source=answers_path)
    build = Path(key_path).with_name("build.json")
    meta = json.loads(build.read_text()) if build.is_file() else {}
    prov = {"model": "listeners", "model_fingerprint": None, "corpus": meta.get("corpus"),
            "manifest_fingerprint": meta.get("manifest_fingerprint"), "cache_fingerprint": None,
            "split": f"listening test ({key.height} stimuli)", "seed": (meta.get("config") or {}).get("seed"),
            "config_json": json.dumps({"answers": str(answers_path), "key": str(key_path)})}
    if simulated:
        prov["simulated"] = simulated
    out = Path(out_dir) if out_dir else Path(answers_path).resolve().parent / "sed_scores"
    paths = {f"per_answer_{k}": v for k, v in write_table(with_provenance(scored, prov), out, "per_answer",
                                                          prov).items()}
    summary = per_emotion(scored, by=["group"])
    paths |= {f"per_group_emotion_{k}": v for k, v in write_table(with_provenance(summary, prov), out,
                                                                  "per_group_emotion", prov).items()}
    model_rows, name = None, "model"
    if model_results is not None:
        model_rows = pl.read_parquet(model_results)
        name = str(model_rows["model"][0]) if "model" in model_rows.columns else name
    table = table_iv(model_rows, scored, model_name=name, utt_ids=key["utt_id"].to_list())
    paths["table_iv"] = _write_csv(table, out / "table_iv.csv")
    from probes.paper_compare import PaperCompareError, compare_table_four, write_beside_paper

    try:
        beside = compare_table_four(table, demo=bool(simulated))
    except PaperCompareError:
        beside = None
    if beside is not None:
        paths |= {f"table_iv_vs_paper_{k}": v for k, v in write_beside_paper(beside, out, "table_iv_vs_paper").items()}
    paths |= _timelines(model_rows, scored, out / "timelines", name, key["utt_id"].to_list())
    return paths


def _write_csv(frame: pl.DataFrame, path: Path) -> Path:
    from featstore.io import atomic_write

    return atomic_write(path, lambda tmp: frame.write_csv(tmp, float_precision=4))


def _timelines(model_rows: pl.DataFrame | None, listener_rows: pl.DataFrame | None, stem: Path,
               model_name: str, utt_ids: Sequence[str] | None = None) -> dict[str, Path]:
    refs: dict[str, list] = {}
    durations: dict[str, float] = {}
    tracks: dict[str, list] = {}
    sources = [r for r in (listener_rows, model_rows) if r is not None]
    for frame in sources:
        for row in frame.to_dicts():
            if utt_ids is not None and row["utt_id"] not in utt_ids:
                continue
            refs.setdefault(row["utt_id"], json.loads(row["reference"]))
            durations.setdefault(row["utt_id"], float(row["duration"]))
    order = [u for u in (utt_ids or sorted(refs)) if u in refs]
    if model_rows is not None:
        for row in model_rows.filter(pl.col("utt_id").is_in(order)).to_dicts():
            tracks.setdefault(row["utt_id"], []).append((model_name, json.loads(row["hypothesis"])))
    if listener_rows is not None:
        # One consensus track per listener group keeps the figure readable with many listeners.
        for (utt, group), part in sorted(listener_rows.group_by("utt_id", "group"), key=lambda g: g[0]):
            hyps = [json.loads(h) for h in part["hypothesis"]]
            tracks.setdefault(utt, []).append(
                (f"listeners {group} (n={len(hyps)})", consensus_segments(hyps, durations[utt])))
    paths = plot_timelines({u: refs[u] for u in order}, tracks, durations, stem)
    return {f"timelines_{k}": v for k, v in paths.items()}
