"""The only place the probes touch the feature cache and the fold tables.

:func:`load_corpus` reads one model's pooled features of one corpus (4-class utterances
only) with its folds and provenance into a :class:`CorpusData`; the engine works on that
record, so tests and benchmarks can also build it from arrays (:func:`corpus_from_arrays`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from featstore.errors import CrosslingError
from featstore.manifest import CANONICAL_EMOTIONS
from featstore.paths import splits_path

if TYPE_CHECKING:  # pragma: no cover
    from featstore.cache import FeatureCache

PARTS: tuple[str, ...] = ("train", "valid", "test")


class ProbeDataError(CrosslingError, ValueError):
    """A cache or fold table that cannot feed the probes (missing, inconsistent...)."""


@dataclass
class CorpusData:
    """Pooled features of one corpus under one model, with labels and folds.

    Attributes
    ----------
    model, corpus, language : model alias, corpus name, corpus language code
    utt_ids : N utterance ids (4-class utterances only)
    labels : ``(N,)`` int64 indices into :data:`~featstore.manifest.CANONICAL_EMOTIONS`
    layers : hidden-state index of each slot of ``features``
    features : ``(len(layers), N, D)`` float32 pooled features
    folds : fold -> part (train/valid/test) -> ``(n,)`` row indices into ``utt_ids``
    provenance : ``cache_path``, ``cache_fingerprint``, ``model_fingerprint``,
        ``manifest_fingerprint``, ``fold_scheme``, ``model_language``
    """

    model: str
    corpus: str
    language: str
    utt_ids: list[str]
    labels: np.ndarray
    layers: tuple[int, ...]
    features: np.ndarray
    folds: dict[int, dict[str, np.ndarray]]
    provenance: dict[str, str] = field(default_factory=dict)

    def rows(self, fold: int, part: str) -> np.ndarray:
        """Row indices of ``part`` of ``fold`` (raises a clear error if absent)."""
        if fold not in self.folds:
            raise ProbeDataError(f"{self.corpus}: no fold {fold} (have {sorted(self.folds)})")
        return self.folds[fold][part]

    def slot(self, layer: int) -> int:
        """Position of hidden state ``layer`` along axis 0 of ``features``."""
        if layer not in self.layers:
            raise ProbeDataError(f"{self.model}/{self.corpus}: layer {layer} not loaded (have {list(self.layers)})")
        return self.layers.index(layer)


def corpus_from_arrays(
    model: str,
    corpus: str,
    language: str,
    utt_ids: Sequence[str],
    emotions: Sequence[str],
    features: np.ndarray,
    fold_table: pl.DataFrame,
    layers: Sequence[int] | None = None,
    n_folds: int | None = None,
    provenance: Mapping[str, str] | None = None,
) -> CorpusData:
    """Build a :class:`CorpusData` from arrays and a fold table (columns fold, part, utt_id).

    Utterances whose emotion is not one of the four canonical ones are dropped, and so are
    fold-table rows of utterances that are not in ``utt_ids``.
    """
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 3 or features.shape[1] != len(utt_ids):
        raise ProbeDataError(f"{corpus}: features must be (layers, N={len(utt_ids)}, D), got {features.shape}")
    layers = tuple(range(features.shape[0])) if layers is None else tuple(int(v) for v in layers)
    if len(layers) != features.shape[0]:
        raise ProbeDataError(f"{corpus}: {len(layers)} layer indices for {features.shape[0]} feature slots")
    keep = [i for i, e in enumerate(emotions) if e in CANONICAL_EMOTIONS]
    if not keep:
        raise ProbeDataError(f"{model}/{corpus}: no utterance with one of the emotions {CANONICAL_EMOTIONS}")
    ids = [str(utt_ids[i]) for i in keep]
    labels = np.array([CANONICAL_EMOTIONS.index(emotions[i]) for i in keep], dtype=np.int64)
    folds = _fold_rows(fold_table, ids, corpus, n_folds)
    return CorpusData(
        model=model, corpus=corpus, language=language, utt_ids=ids, labels=labels, layers=layers,
        features=features[:, keep], folds=folds, provenance=dict(provenance or {}),
    )


def _fold_rows(table: pl.DataFrame, ids: list[str], corpus: str, n_folds: int | None) -> dict[int, dict[str, np.ndarray]]:
    missing = [c for c in ("fold", "part", "utt_id") if c not in table.columns]
    if missing:
        raise ProbeDataError(f"{corpus}: fold table lacks column(s) {missing}")
    position = {u: i for i, u in enumerate(ids)}
    have = sorted(int(f) for f in table["fold"].unique().to_list())
    wanted = have if n_folds is None else list(range(n_folds))
    absent = [f for f in wanted if f not in have]
    if absent:
        raise ProbeDataError(f"{corpus}: fold table has folds {have}, asked for {wanted}")
    out: dict[int, dict[str, np.ndarray]] = {}
    for fold in wanted:
        part_rows = {}
        sub = table.filter(pl.col("fold") == fold)
        for part in PARTS:
            uids = sub.filter(pl.col("part") == part)["utt_id"].to_list()
            rows = np.array([position[u] for u in uids if u in position], dtype=np.int64)
            if part != "test" and rows.size == 0:
                raise ProbeDataError(f"{corpus}: fold {fold} has no {part} utterance among the cached 4-class ones")
            part_rows[part] = rows
        out[fold] = part_rows
    return out


def _open(model: str, corpus: str, cache_root: str | Path | None) -> tuple[Path | str, FeatureCache]:
    """``(where, cache)``: the merged cache file, or the shard pattern of an extraction split
    over ranks and not merged (read as one cache), by :func:`featstore.cache.find_cache`."""
    from featstore.cache import CacheError, cache_location, find_cache, open_cache

    try:
        paths = find_cache(model, corpus, cache_root)
        cache = open_cache(paths)
    except CacheError as err:
        raise ProbeDataError(str(err)) from err
    if len(paths) == 1:
        return paths[0], cache
    return cache_location([p.resolve() for p in paths]), cache


def model_language(model: str, provenance: Mapping) -> str:
    """The model's language: from the cache provenance, else the model registry."""
    for key in ("model_language", "language"):
        if provenance.get(key):
            return str(provenance[key])
    from featstore.models import MODELS

    if model not in MODELS:
        raise ProbeDataError(f"{model}: language unknown (not in the cache provenance nor the model registry)")
    return MODELS[model].language


def _read_folds(corpus: str, cache_root: str | Path | None) -> tuple[pl.DataFrame, dict]:
    from featstore.splits import load_folds

    fold_path = splits_path(corpus, cache_root)
    if not fold_path.exists():
        raise ProbeDataError(f"{fold_path}: no fold table; make one with `featstore splits {corpus}`")
    try:
        return load_folds(fold_path)
    except ValueError as err:
        raise ProbeDataError(str(err)) from err


def _fold_language(manifest: pl.DataFrame, fold_ids: set[str], source: object) -> str:
    """The one language of the utterances the folds use (ESD's manifest holds Mandarin and
    English speakers; its folds usually take one language)."""
    used = manifest.filter(pl.col("utt_id").is_in(list(fold_ids)))
    if used.is_empty():
        raise ProbeDataError(f"{source}: no utterance of the fold table is in the cache")
    langs = sorted(str(v) for v in used["language"].unique().to_list())
    if len(langs) != 1:
        raise ProbeDataError(
            f"{source}: the folds mix languages {langs}; make folds of one language "
            "(`featstore splits CORPUS --language cn`)")
    return langs[0]


def corpus_language(model: str, corpus: str, cache_root: str | Path | None = None) -> tuple[str, str]:
    """``(corpus language, model language)``: the language of the utterances the fold table
    uses (from the cache's manifest) and the model's."""
    table, _ = _read_folds(corpus, cache_root)
    path, cache = _open(model, corpus, cache_root)
    with cache:
        lang = _fold_language(cache.manifest(), set(table["utt_id"].to_list()), path)
        return lang, model_language(model, cache.provenance)


def load_corpus(
    model: str,
    corpus: str,
    cache_root: str | Path | None = None,
    layers: Sequence[int] | None = None,
    n_folds: int | None = 5,
    stat: str = "mean",
) -> CorpusData:
    """Pooled features of ``corpus`` under ``model`` from the cache, with its folds.

    Parameters
    ----------
    model, corpus : model alias and corpus name (``<root>/<model>/<corpus>.h5``)
    cache_root : cache root (``None``: ``$CROSSLING_CACHE`` or ``./cache``)
    layers : hidden states to load (``None``: all)
    n_folds : folds ``0 .. n_folds-1`` of ``<root>/splits/<corpus>.parquet`` (``None``: all);
        only the 4-class utterances of the fold table are loaded
    stat : pooled statistic (``mean`` or ``std``)
    """
    table, meta = _read_folds(corpus, cache_root)
    fold_ids = set(table["utt_id"].to_list())
    path, cache = _open(model, corpus, cache_root)
    with cache:
        manifest = cache.manifest()
        if layers is not None:
            bad = [v for v in layers if not 0 <= v < cache.n_hidden_states]
            if bad:
                raise ProbeDataError(f"{path}: layer(s) {bad} out of range 0..{cache.n_hidden_states - 1}")
        ids = manifest["utt_id"].to_list()
        emotions = manifest["emotion"].to_list()
        # only what the folds use: ESD's cache also holds its English speakers
        wanted = [u for u, e in zip(ids, emotions, strict=True) if e in CANONICAL_EMOTIONS and u in fold_ids]
        if not wanted:
            raise ProbeDataError(f"{path}: none of the fold table's 4-class utterances is in the cache")
        language = _fold_language(manifest, fold_ids, path)
        if layers is None:
            feats = cache.pooled_all(wanted, stat=stat)
            layers = range(cache.n_hidden_states)
        else:
            feats = np.stack([cache.pooled(int(v), wanted, stat=stat) for v in layers])
        prov = cache.provenance
        provenance = {
            "cache_path": str(Path(path).resolve()) if isinstance(path, Path) else path,
            "cache_fingerprint": str(cache.fingerprint),
            "model_fingerprint": str(prov.get("model_fingerprint", "")),
            "manifest_fingerprint": str(prov.get("manifest_fingerprint", "")),
            "fold_scheme": str(meta.get("scheme", "")),
            "fold_manifest_fingerprint": str(meta.get("manifest_fingerprint", "")),
            "model_language": model_language(model, prov),
        }
    emo_of = dict(zip(ids, emotions, strict=True))
    return corpus_from_arrays(
        model, corpus, language, wanted, [emo_of[u] for u in wanted], feats, table, layers=layers, n_folds=n_folds,
        provenance=provenance,
    )
