"""Running a fine-tuned checkpoint on audio files or on a prepared corpus."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import torch

from featstore.manifest import CANONICAL_EMOTIONS
from finetune.data import ClipSet, labels_to_indices
from finetune.model import SERModel
from finetune.train import evaluate

if TYPE_CHECKING:  # pragma: no cover
    from featstore.models import LoadedModel


def predict_waves(model: SERModel, waves: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
    """Class probabilities (N, n_classes) of 16 kHz clips, rows in input order."""
    ids = [str(i) for i in range(len(waves))]
    clips = ClipSet(ids, np.zeros(len(ids), dtype=np.int64), np.array([len(w) for w in waves]),
                    waves=dict(zip(ids, waves, strict=True)), name="predict")
    _, probs = evaluate(model, clips, batch_size)
    return probs


def prediction_frame(names: Sequence[str], probs: np.ndarray, labels: Sequence[str], key: str = "path") -> pl.DataFrame:
    """``key``, ``label`` (the most probable class) and ``prob_<class>`` columns."""
    labels = list(labels)
    data: dict[str, Any] = {key: list(names), "label": [labels[i] for i in probs.argmax(1)]}
    for j, name in enumerate(labels):
        data[f"prob_{name}"] = probs[:, j].astype(np.float64)
    return pl.DataFrame(data)


def predict_files(checkpoint: str | Path, paths: Sequence[str | Path], device: str = "cpu",
                  batch_size: int = 16, base: LoadedModel | None = None) -> pl.DataFrame:
    """Label and class probabilities of each audio file with a fine-tuned checkpoint.

    Raises ``featstore.audio.AudioError`` naming the first file that cannot be read and
    ``finetune.checkpoint.CheckpointError`` for a bad checkpoint or base model.
    """
    from featstore.audio import load_audio
    from finetune.checkpoint import load_checkpoint

    model, config = load_checkpoint(checkpoint, base=base, device=device)
    rate = int(config["base"].get("sample_rate_hz", 16000))
    waves = [load_audio(p, sample_rate_hz=rate) for p in paths]
    probs = predict_waves(model, waves, batch_size)
    return prediction_frame([str(p) for p in paths], probs, config["labels"])


def evaluate_checkpoint(checkpoint: str | Path, corpus: str, fold: int | None = None,
                        cache_root: str | Path | None = None, device: str = "cpu",
                        batch_size: int = 16, base: LoadedModel | None = None) -> tuple[dict, pl.DataFrame]:
    """Metrics and per-utterance predictions of a checkpoint on a prepared corpus: the
    test part of ``fold`` (from the corpus's fold table) or, without ``fold``, every
    utterance with one of the four emotions.

    Returns
    -------
    (metrics of ``probes.metrics.classification_metrics`` + ``n_test``,
     predictions with ``utt_id``, ``true``, ``pred``, ``prob_<class>``)
    """
    from featstore.audio import load_row
    from featstore.manifest import four_class, load_manifest
    from featstore.paths import manifest_path, splits_path
    from featstore.splits import load_folds
    from finetune.checkpoint import load_checkpoint
    from probes.metrics import classification_metrics

    model, config = load_checkpoint(checkpoint, base=base, device=device)
    manifest = four_class(load_manifest(manifest_path(corpus, cache_root)))
    if fold is not None:
        table, _ = load_folds(splits_path(corpus, cache_root))
        ids = set(table.filter((pl.col("fold") == fold) & (pl.col("part") == "test"))["utt_id"].to_list())
        if not ids:
            raise ValueError(f"{corpus}: fold {fold} has no test utterances")
        manifest = manifest.filter(pl.col("utt_id").is_in(sorted(ids)))
    rows = manifest.to_dicts()
    rate = int(config["base"].get("sample_rate_hz", 16000))
    waves = {r["utt_id"]: load_row(r, sample_rate_hz=rate) for r in rows}
    ids = [r["utt_id"] for r in rows]
    labels = labels_to_indices([r["emotion"] for r in rows])
    clips = ClipSet(ids, labels, np.array([len(waves[u]) for u in ids]), waves=waves, name=corpus)
    with torch.no_grad():
        _, probs = evaluate(model, clips, batch_size)
    metrics = classification_metrics(labels, probs.argmax(1))
    metrics["n_test"] = len(ids)
    preds = prediction_frame(ids, probs, config["labels"], key="utt_id").rename({"label": "pred"})
    preds = preds.insert_column(1, pl.Series("true", [CANONICAL_EMOTIONS[i] for i in labels]))
    return metrics, preds


def metrics_text(metrics: dict) -> str:
    """One-paragraph summary for the terminal."""
    lines = [f"UA {100 * metrics['ua']:.1f} %  WA {100 * metrics['wa']:.1f} %  macro-F1 {100 * metrics['macro_f1']:.1f} %"]
    lines += [f"  {c:8s} P {100 * metrics[f'precision_{c}']:.1f} %  R {100 * metrics[f'recall_{c}']:.1f} %  "
              f"F1 {100 * metrics[f'f1_{c}']:.1f} %" for c in CANONICAL_EMOTIONS]
    lines.append(f"  confusion (rows = true, A H N S): {json.dumps(metrics['confusion'])}")
    return "\n".join(lines)
