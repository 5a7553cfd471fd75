"""Synthetic caches for tests and the benchmark: the real layout, values with a planted signal.

:func:`write_synthetic_study` writes, under a cache root, one cache per (model, corpus)
with :func:`featstore.cache.write_cache` and one fold table per corpus with
:func:`featstore.splits.save_folds`, exactly where ``probes layerwise`` looks for them.
Pooled features are ``strength[layer] * class_mean[emotion] + N(0, 1)`` noise, so the
emotion is learnable where ``strength`` is high and absent where it is 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from featstore.manifest import CANONICAL_EMOTIONS, make_manifest, manifest_fingerprint
from featstore.paths import features_path, splits_path

PAPER_MODELS: dict[str, str] = {"w2v2-cn": "cn", "w2v2-de": "de"}
"""The paper's two models and their languages."""
PAPER_CORPORA: dict[str, str] = {"esd": "cn", "pavoque": "de", "iemocap": "en"}
"""The paper's three corpora and their languages."""


def bump_profile(n_layers: int, peak: float = 0.6, width: float = 0.3, floor: float = 0.15) -> np.ndarray:
    """Signal strength per layer ``(n_layers,)``: a bump peaking at ``peak`` of the depth
    (middle layers carry the most emotion, as in the paper's Figure 1)."""
    pos = np.linspace(0.0, 1.0, n_layers)
    return floor + (1.0 - floor) * np.exp(-0.5 * ((pos - peak) / width) ** 2)


def fold_table(utt_ids: Sequence[str], n_folds: int, seed: int) -> pl.DataFrame:
    """Folds over ``2 n_folds`` equal chunks of a shuffled id list: fold ``f`` tests on chunk
    ``f``, validates on chunk ``f + n_folds`` and trains on the rest (80/10/10 for 5 folds,
    the paper's 1600/200/200 of 2000); test parts are disjoint."""
    rng = np.random.default_rng(seed)
    chunks = np.array_split(rng.permutation(len(utt_ids)), 2 * n_folds)
    rows = []
    for fold in range(n_folds):
        for k, chunk in enumerate(chunks):
            part = "test" if k == fold else "valid" if k == fold + n_folds else "train"
            rows += [(fold, part, utt_ids[i]) for i in chunk]
    return pl.DataFrame(rows, schema={"fold": pl.Int64, "part": pl.Utf8, "utt_id": pl.Utf8}, orient="row")


def write_synthetic_study(
    root: str | Path,
    models: Mapping[str, str] = PAPER_MODELS,
    corpora: Mapping[str, str] = PAPER_CORPORA,
    n_utts: int = 2000,
    n_layers: int = 13,
    dim: int = 768,
    strength: Sequence[float] | np.ndarray | None = None,
    n_folds: int = 5,
    seed: int = 0,
    shared: float = 0.5,
    dtype: str = "float16",
) -> dict[tuple[str, str], Path]:
    """Write synthetic caches and fold tables for every (model, corpus) under ``root``.

    Parameters
    ----------
    root : cache root
    models : alias -> language code (recorded as ``model_language`` in the provenance)
    corpora : corpus -> language code (the manifest's ``language``)
    n_utts : utterances per corpus (balanced over the four emotions)
    n_layers, dim : hidden states and their width
    strength : signal per layer (default :func:`bump_profile`)
    shared : weight of the class means shared by all corpora (the rest is per corpus),
        so heads transfer partly across corpora
    dtype : cache dtype (``float16`` as real caches, or ``float32``)

    Returns
    -------
    (model, corpus) -> cache path
    """
    from featstore.cache import write_cache
    from featstore.splits import FoldTable, save_folds

    rng = np.random.default_rng(seed)
    strength = bump_profile(n_layers) if strength is None else np.asarray(strength, dtype=np.float64)
    if strength.shape != (n_layers,):
        raise ValueError(f"strength must have {n_layers} values, got {strength.shape}")
    n_cls = len(CANONICAL_EMOTIONS)
    common = rng.normal(size=(n_cls, dim)) / np.sqrt(dim) * 6.0
    out = {}
    for c_i, (corpus, language) in enumerate(corpora.items()):
        ids = [f"{corpus}_{i:05d}" for i in range(n_utts)]
        labels = np.arange(n_utts) % n_cls
        manifest = make_manifest([
            {"utt_id": u, "corpus": corpus, "language": language, "speaker": f"s{i % 10}",
             "emotion": CANONICAL_EMOTIONS[labels[i]], "label": CANONICAL_EMOTIONS[labels[i]],
             "path": f"/synthetic/{corpus}/{u}.wav", "duration": 3.0, "sample_rate": 16000}
            for i, u in enumerate(ids)
        ])
        folds = fold_table(ids, n_folds, seed + c_i)
        save_folds(FoldTable(folds, {"scheme": "synthetic", "seed": seed + c_i,
                                     "manifest_fingerprint": manifest_fingerprint(manifest)}),
                   splits_path(corpus, root))
        own = rng.normal(size=(n_cls, dim)) / np.sqrt(dim) * 6.0
        means = shared * common + (1.0 - shared) * own
        for m_i, (model, model_lang) in enumerate(models.items()):
            gen = np.random.default_rng([seed, c_i, m_i])
            mean = gen.standard_normal((n_layers, n_utts, dim), dtype=np.float32)
            mean += (strength[:, None, None] * means[labels][None]).astype(np.float32)
            prov = {"model_alias": model, "model_language": model_lang, "corpus": corpus,
                    "model_fingerprint": f"synthetic-{model}", "manifest_fingerprint": manifest_fingerprint(manifest),
                    "normalisation": "synthetic"}
            path = features_path(model, corpus, root)
            write_cache(path, ids, mean, np.abs(mean), prov, manifest, dtype=dtype)
            out[(model, corpus)] = path
    return out
