"""Frame-level diarization probes on any model's cached frames, one per layer.

Beyond the paper: which layer of a frozen SSL model diarizes emotion best, and how does a
linear probe compare with the fine-tuned diarization WavLM?

Training data. The ZED authors trained on concatenations (neutral + emotional + neutral) of
utterances from emotional corpora. Two sources are accepted, per training cache:

- an utterance-level corpus (ESD, PAVOQUE, IEMOCAP...): every frame gets its utterance's
  label. This is the concatenation done *in feature space*: a per-frame linear probe sees
  each frame on its own, so concatenating cached frames of a neutral and an emotional
  utterance gives exactly the same training set as taking their frames separately. What it
  does NOT capture is the transformer's context across a boundary (frames near a change
  of emotion in real audio see both sides), so it is a cheap approximation;
- a diarization corpus with an ``events`` column, e.g. real audio concatenations written
  by :func:`probes.sed.concatenate_for_sed`, prepared with the ZED reader and extracted
  with frames: each frame gets the reference label at its centre. This is the faithful
  variant (the model ran on the concatenated audio) and costs one extraction.

Training frames are subsampled to at most ``max_train_frames`` (every k-th frame from a
seeded offset per utterance) and fitted with a class-balanced logistic regression on
standardised features. Evaluation: argmax per frame -> :func:`frames_to_segments`
(window = stride = 0.02 s) -> EDER against the test corpus's events.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from featstore.manifest import CANONICAL_EMOTIONS
from probes.sed._eder import (
    eder,
    frames_to_segments,
    pad_like_recipe,
    recipe_frame_count,
    reference_segments,
)


@dataclass(frozen=True)
class ProbeConfig:
    """Settings of ``probes sed probe``.

    Parameters
    ----------
    model : model alias whose caches are read (``<root>/<model>/<corpus>.h5``).
    train_corpora : corpora whose cached frames train the probe.
    test_corpus : diarization corpus (``events`` column) it is scored on.
    layers : hidden-state indices (None: every layer stored as frames in all caches).
    max_train_frames : training frames per layer at most (subsampled, seeded).
    c : inverse L2 regularisation of the logistic regression.
    max_iter : L-BFGS iterations.
    seed : seed of the subsampling and of the solver.
    window_s, stride_s : frame window and hop in seconds (WavLM/wav2vec 2.0: 0.02).
    pad_like_recipe : append the last frame label once when short of the recipe's count.
    layer_chunk : layers held in memory at once.
    """

    model: str
    train_corpora: tuple[str, ...] = ("esd", "pavoque", "iemocap")
    test_corpus: str = "zed"
    layers: tuple[int, ...] | None = None
    max_train_frames: int = 50_000
    c: float = 1.0
    max_iter: int = 300
    seed: int = 0
    window_s: float = 0.02
    stride_s: float = 0.02
    pad_like_recipe: bool = True
    layer_chunk: int = 4

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model must be named")
        if not self.train_corpora:
            raise ValueError("at least one training corpus is needed")
        if self.test_corpus in self.train_corpora:
            raise ValueError(f"test corpus {self.test_corpus!r} is also a training corpus")
        if self.max_train_frames < 10 or self.max_iter < 1 or self.layer_chunk < 1:
            raise ValueError("max_train_frames >= 10, max_iter >= 1 and layer_chunk >= 1 are required")
        if not (self.c > 0 and self.window_s > 0 and self.stride_s > 0):
            raise ValueError("c, window_s and stride_s must be positive")

    def to_json(self) -> str:
        """The config as JSON (for the results' provenance)."""
        return json.dumps(asdict(self), sort_keys=True)


def frame_targets(row: Mapping, n_frames: int, window_s: float, stride_s: float) -> list[str]:
    """Training label of each cached frame of one utterance.

    With ``events`` (a diarization corpus): the reference label at each frame's centre;
    otherwise the utterance's own emotion on every frame.
    """
    events = row.get("events")
    if not events:
        return [str(row["emotion"])] * n_frames
    duration = float(row["duration"])
    ref = reference_segments(json.loads(events), duration)
    starts = np.asarray([r[0] for r in ref])
    centres = stride_s * np.arange(n_frames) + window_s / 2
    idx = np.clip(np.searchsorted(starts, centres, side="right") - 1, 0, len(ref) - 1)
    return [ref[i][2] for i in idx]


def common_layers(caches: Sequence[object], wanted: Sequence[int] | None) -> list[int]:
    """Layers stored as frames in every cache (all of them, or those ``wanted``)."""
    for cache in caches:
        if not cache.has_frames:
            raise ValueError(f"{cache.paths[0]}: no frame-level features (extract with frames)")
    stored = set(caches[0].frame_layers)
    for cache in caches[1:]:
        stored &= set(cache.frame_layers)
    if wanted is None:
        return sorted(stored)
    missing = sorted(set(wanted) - stored)
    if missing:
        raise ValueError(f"layer(s) {missing} are not stored as frames in every cache (common: {sorted(stored)})")
    return list(wanted)


def collect_training(
    caches: Mapping[str, object], layers: Sequence[int], config: ProbeConfig
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Subsampled training frames of ``layers``.

    Returns
    -------
    X : (n_layers, n_frames, dim) float32; y : (n_frames,) label names; info : counts.
    """
    rng = np.random.default_rng(config.seed)
    units = []
    for name, cache in caches.items():
        manifest = cache.manifest()
        keep = manifest.filter(pl.col("emotion").is_in(list(CANONICAL_EMOTIONS)))
        n_frames = dict(zip(cache.utt_ids, cache.num_frames.tolist(), strict=True))
        units += [(name, cache, row, int(n_frames[row["utt_id"]])) for row in keep.to_dicts()
                  if row["utt_id"] in n_frames]
    total = sum(u[3] for u in units)
    if total == 0:
        raise ValueError(f"no 4-class frames in the training caches {list(caches)}")
    step = max(1, math.ceil(total / config.max_train_frames))
    xs, ys = [], []
    for _, cache, row, n in units:
        idx = np.arange(int(rng.integers(step)), n, step)
        if idx.size == 0:
            continue
        targets = np.asarray(frame_targets(row, n, config.window_s, config.stride_s))
        frames = np.asarray(cache.frames(row["utt_id"], list(layers)), dtype=np.float32)
        xs.append(frames[:, idx[idx < frames.shape[1]]])
        ys.append(targets[idx[idx < frames.shape[1]]])
    y = np.concatenate(ys)
    info = {"n_train_frames": int(y.size), "frame_step": step,
            **{f"n_train_{c}": int((y == c).sum()) for c in CANONICAL_EMOTIONS}}
    return np.concatenate(xs, axis=1), y, info


def fit_probe(x: np.ndarray, y: np.ndarray, config: ProbeConfig) -> object:
    """Class-balanced logistic regression on standardised frames ``x`` (n, dim)."""
    if len(set(y.tolist())) < 2:
        raise ValueError(f"training frames carry one label only ({sorted(set(y.tolist()))})")
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=config.c, max_iter=config.max_iter, class_weight="balanced",
                           random_state=config.seed),
    )
    return model.fit(x, y)


def run_probe(
    config: ProbeConfig,
    train_caches: Mapping[str, object],
    test_cache: object,
    test_manifest: pl.DataFrame | None = None,
    progress: Callable[[Sequence], Sequence] = lambda items: items,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Train one probe per layer and score it on the test corpus with EDER.

    Parameters
    ----------
    config : :class:`ProbeConfig`.
    train_caches : corpus name -> ``FeatureCache`` with frames.
    test_cache : ``FeatureCache`` of the diarization corpus, with frames.
    test_manifest : rows with ``events`` (default: the test cache's own manifest).
    progress : wraps the list of layer chunks (e.g. a progress bar).

    Returns
    -------
    per_utterance : one row per (layer, utterance): eder and components, hypothesis JSON.
    per_layer : one row per layer: ``eder`` (plain mean), ``eder_duration_weighted``,
        ``eder_<emotion>`` and training counts.
    """
    layers = common_layers([*train_caches.values(), test_cache], config.layers)
    manifest = test_manifest if test_manifest is not None else test_cache.manifest()
    if "events" not in manifest.columns or manifest["events"].null_count() == manifest.height:
        raise ValueError(f"test corpus {config.test_corpus!r} has no events: not a diarization corpus")
    test_rows = [r for r in manifest.to_dicts() if r.get("events") and r["utt_id"] in test_cache]
    if not test_rows:
        raise ValueError(f"test corpus {config.test_corpus!r}: no utterance with events is in its cache "
                         f"{test_cache.paths[0]}")
    rows = []
    chunks = [layers[i:i + config.layer_chunk] for i in range(0, len(layers), config.layer_chunk)]
    info: dict = {}
    for chunk in progress(chunks):
        x, y, info = collect_training(train_caches, chunk, config)
        probes = [fit_probe(x[k], y, config) for k in range(len(chunk))]
        del x
        for row in test_rows:
            frames = np.asarray(test_cache.frames(row["utt_id"], chunk), dtype=np.float32)
            duration = float(row["duration"])
            ref = reference_segments(json.loads(row["events"]), duration)
            for k, layer in enumerate(chunk):
                labels = probes[k].predict(frames[k]).tolist()
                if config.pad_like_recipe:
                    labels = pad_like_recipe(labels, recipe_frame_count(duration, config.window_s, config.stride_s))
                hyp = frames_to_segments(labels, config.window_s, config.stride_s)
                res = eder(hyp, ref, duration)
                rows.append({"layer": layer, "utt_id": row["utt_id"], "emotion": row["emotion"],
                             "duration": duration, "eder": res.eder, **res.time_columns(),
                             "hypothesis": json.dumps(hyp), **info})
    per_utt = pl.DataFrame(rows, infer_schema_length=None)
    return per_utt, summarise_layers(per_utt)


def summarise_layers(per_utt: pl.DataFrame) -> pl.DataFrame:
    """Per layer: plain-mean EDER (the paper's figure), duration-weighted EDER, per emotion."""
    base = per_utt.group_by("layer").agg(
        pl.col("eder").mean().alias("eder"),
        ((pl.col("eder") * pl.col("duration")).sum() / pl.col("duration").sum()).alias("eder_duration_weighted"),
        pl.len().alias("n_utterances"),
    )
    by_emo = per_utt.group_by("layer", "emotion").agg(pl.col("eder").mean()).pivot(
        on="emotion", index="layer", values="eder")
    by_emo = by_emo.rename({c: f"eder_{c}" for c in by_emo.columns if c != "layer"})
    return base.join(by_emo, on="layer", how="left").sort("layer")
