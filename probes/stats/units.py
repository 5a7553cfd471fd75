"""From a run's predictions to per-condition arrays over resampling units.

A *condition* is (model, setting, train corpus, test corpus). Its pooled test predictions
(each test utterance once, from the fold head that never saw it) become a ``(L, N)``
correctness matrix; each utterance belongs to a *unit*: its speaker (the manifest's
``speaker`` column), or itself where the test corpus has fewer than ``min_speakers``
speakers (PAVOQUE has one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from featstore.manifest import CANONICAL_EMOTIONS
from probes.data import ProbeDataError
from probes.stats.core import unit_class_counts

KEY: tuple[str, ...] = ("model", "setting", "train_corpus", "test_corpus")


@dataclass
class ConditionArrays:
    """One condition's pooled predictions over its layers.

    Attributes
    ----------
    key : (model, setting, train_corpus, test_corpus)
    layers : ``(L,)`` hidden-state indices, ascending
    utt_ids : N test utterances (sorted)
    labels : ``(N,)`` class indices into :data:`CANONICAL_EMOTIONS`
    correct : ``(L, N)`` bool
    unit_of : ``(N,)`` unit index of each utterance
    units : unit names (speakers, or utterance ids)
    unit : ``speaker`` or ``utterance``
    """

    key: tuple[str, str, str, str]
    layers: np.ndarray
    utt_ids: np.ndarray
    labels: np.ndarray
    correct: np.ndarray
    unit_of: np.ndarray
    units: list[str]
    unit: str

    @cached_property
    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """``(hits (U, L, C), totals (U, C))`` of :func:`probes.stats.core.unit_class_counts`."""
        return unit_class_counts(self.correct, self.labels, self.unit_of, len(self.units), len(CANONICAL_EMOTIONS))

    def same_utterances(self, other: ConditionArrays) -> bool:
        """Whether both conditions were tested on the very same utterances."""
        return self.key[3] == other.key[3] and np.array_equal(self.utt_ids, other.utt_ids)


def speakers_from_caches(models: Iterable[str], corpora: Iterable[str], cache_root: str | Path | None) -> dict[str, dict[str, str]]:
    """``{corpus: {utt_id: speaker}}`` from the manifest stored in each corpus's cache
    (the first model's; every model's cache of a corpus holds the same manifest)."""
    from featstore.cache import CacheError, find_cache, open_cache

    models = list(models)
    out: dict[str, dict[str, str]] = {}
    for corpus in corpora:
        problems = []
        for model in models:
            try:
                with open_cache(find_cache(model, corpus, cache_root)) as cache:
                    manifest = cache.manifest()
            except CacheError as err:
                problems.append(str(err))
                continue
            out[corpus] = dict(zip(manifest["utt_id"].to_list(), manifest["speaker"].cast(pl.Utf8).to_list(), strict=True))
            break
        else:
            raise ProbeDataError(f"{corpus}: no cache to read speakers from ({'; '.join(problems)})")
    return out


def condition_arrays(
    predictions: pl.DataFrame, speakers: Mapping[str, Mapping[str, str]], min_speakers: int = 5
) -> list[ConditionArrays]:
    """One :class:`ConditionArrays` per condition of ``predictions`` (a run's
    ``predictions.parquet``: columns model, setting, train_corpus, test_corpus, layer, fold,
    utt_id, true, pred).

    Raises
    ------
    ProbeDataError : a layer lacks utterances another has, an utterance is tested twice, or
        an utterance has no speaker in ``speakers``
    """
    out = []
    label_index = {c: i for i, c in enumerate(CANONICAL_EMOTIONS)}
    frame = predictions.select(*KEY, "layer", "utt_id", "true", "pred").sort(*KEY, "layer", "utt_id")
    for key, sub in frame.group_by(KEY, maintain_order=True):
        name = "/".join(str(k) for k in key)
        layers = np.unique(sub["layer"].to_numpy())
        utts = sub["utt_id"].to_numpy().astype(str)
        if utts.size % layers.size:
            raise ProbeDataError(f"predictions of {name}: layers hold different numbers of utterances")
        utts = utts.reshape(layers.size, -1)
        if not (utts == utts[0]).all():
            raise ProbeDataError(f"predictions of {name}: layers were tested on different utterances")
        if np.unique(utts[0]).size != utts.shape[1]:
            raise ProbeDataError(f"predictions of {name}: an utterance is tested more than once per layer; "
                                 "the statistics need each test utterance once (pooled folds)")
        true = sub["true"].to_list()
        labels = np.array([label_index[t] for t in true[: utts.shape[1]]], dtype=np.int64)
        correct = (sub["true"] == sub["pred"]).to_numpy().reshape(layers.size, -1)
        who = speakers.get(key[3], {})
        missing = [u for u in utts[0] if u not in who][:3]
        if missing:
            raise ProbeDataError(f"{key[3]}: no speaker for test utterance(s) {missing} (the corpus's manifest "
                                 "in its cache must list every utterance)")
        spk = np.array([who[u] for u in utts[0]])
        names, unit_of = np.unique(spk, return_inverse=True)
        unit = "speaker"
        if names.size < min_speakers:
            names, unit_of, unit = utts[0], np.arange(utts.shape[1]), "utterance"
        out.append(ConditionArrays(tuple(str(k) for k in key), layers, utts[0], labels, correct,  # type: ignore[arg-type]
                                   unit_of.astype(np.int64), [str(n) for n in names], unit))
    return out
