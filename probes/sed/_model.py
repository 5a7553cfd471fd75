"""The paper's diarization model on ZED: SpeechBrain's emotion-diarization WavLM large.

What SpeechBrain does at test time (``recipes/ZaionEmotionDataset``, batch size 1), done
here clip by clip so that no padding enters any normalisation:

1. subtract the clip's mean (``InputNormalization(norm_type="sentence", std_norm=False)``);
2. layer-normalise the waveform only if the hub model's feature extractor says
   ``do_normalize`` (microsoft/wavlm-large: no);
3. run WavLM, take the last hidden state, apply ``output_norm``:
   ``F.layer_norm(out, out.shape[1:])``, a non-affine normalisation over the clip's whole
   (T, D) block;
4. average-pool over ``window_length`` frames with hop ``stride`` (1 and 1 for the
   published model: the identity), the 1024 -> 4 linear head, argmax per frame, decode
   with the label encoder;
5. append the last label once if the model made fewer frames than the recipe's reference
   labels (``int(duration / 0.02) + 1``, cut at the end), then score with EDER
   (window = stride = 0.02 s).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F

from featstore.configs import DEVICE_RULE, check_fields
from probes.sed._eder import (
    eder,
    frames_to_segments,
    pad_like_recipe,
    recipe_frame_count,
    reference_segments,
)

FRAME_S = 0.02
"""Hop of WavLM's frames in seconds (320 samples at 16 kHz)."""


@dataclass(frozen=True)
class ModelRunConfig:
    """Settings of ``probes sed model``; defaults are the ZED recipe's.

    Parameters
    ----------
    model : model alias or folder (a SpeechBrain emotion-diarization folder).
    corpus : prepared corpus with an ``events`` column (ZED).
    pad_like_recipe : append the last frame label once when the model made fewer frames
        than the recipe's reference labels (the recipe does).
    device : torch device; ``auto`` (the default) is CUDA when present, else the CPU.
    alias : the model's name in results when ``model`` is a folder (default: the
        registry's or the folder's name).
    """

    model: str = field(default="wavlm-emo", metadata={
        "help": "model alias or folder (a SpeechBrain emotion-diarization folder)",
        "check": lambda v: None if v else "is empty", "allowed": "a model alias or folder"})
    corpus: str = field(default="zed", metadata={
        "help": "prepared corpus with an events column (ZED)",
        "check": lambda v: None if v else "is empty", "allowed": "a prepared corpus name"})
    pad_like_recipe: bool = field(default=True, metadata={
        "help": "append the last frame label once when the model made fewer frames than the recipe's labels"})
    device: str = field(default="auto", metadata={
        "help": "torch device: auto (CUDA if present, else CPU), cpu, cuda ...", **DEVICE_RULE})
    alias: str | None = field(default=None, metadata={
        "help": "the model's name in results when model is a folder (default: its registry or folder name)"})

    def __post_init__(self) -> None:
        check_fields(self)

    def to_json(self) -> str:
        """The config as JSON (for the results' provenance)."""
        return json.dumps(asdict(self), sort_keys=True)


def _require(extras: dict, key: str, alias: str) -> object:
    if key not in extras:
        raise ValueError(
            f"model {alias!r} has no {key!r}: it is not an emotion-diarization model "
            "(a SpeechBrain folder with model.ckpt and label_encoder.txt)"
        )
    return extras[key]


def frame_labels(loaded: object, wave: np.ndarray) -> list[str]:
    """Per-frame emotion labels the diarization model gives one clip.

    Parameters
    ----------
    loaded : a ``featstore.models.LoadedModel`` of a SpeechBrain diarization folder.
    wave : (n_samples,) float waveform at the model's sample rate.

    Returns
    -------
    One canonical label per pooled frame (every ``0.02 * stride`` seconds).
    """
    from featstore.models import speechbrain as sb

    extras = loaded.extras
    classifier = _require(extras, "frame_classifier", loaded.alias)
    labels = _require(extras, "labels", loaded.alias)
    device = next(classifier.parameters()).device
    x = torch.as_tensor(np.asarray(wave, dtype=np.float32)).reshape(-1)
    x = sb.input_norm(x, extras.get("input_norm") or {"norm_type": "sentence", "mean_norm": True, "std_norm": False})
    if loaded.do_normalize:
        # SpeechBrain's wrapper normalises with F.layer_norm (eps 1e-5), not the HF extractor.
        x = F.layer_norm(x, x.shape)
    with torch.no_grad():
        out = loaded.encoder(x[None].to(device)).last_hidden_state[0]
        if extras.get("output_norm", False):
            out = sb.output_norm(out)
        window = int(extras.get("frame_window", 1))
        stride = int(extras.get("frame_stride", 1))
        if (window, stride) != (1, 1):
            out = F.avg_pool1d(out.T[None], window, stride, ceil_mode=True)[0].T
        index = classifier(out).argmax(dim=-1).cpu().tolist()
    return [labels[int(i)] for i in index]


def diarize_corpus(
    loaded: object,
    manifest: pl.DataFrame,
    load_wave: Callable[[dict], np.ndarray],
    config: ModelRunConfig = ModelRunConfig(),
    progress: Callable[[Sequence], Sequence] = lambda rows: rows,
) -> pl.DataFrame:
    """Run the diarization model over every utterance of ``manifest`` and score it.

    Parameters
    ----------
    loaded : ``LoadedModel`` of the diarization folder.
    manifest : rows with ``utt_id``, ``emotion``, ``duration`` (s) and ``events`` (JSON).
    load_wave : row dict -> (n_samples,) waveform at 16 kHz (``featstore.audio.load_row``).
    config : :class:`ModelRunConfig`.
    progress : wraps the row list (e.g. a progress bar).

    Returns
    -------
    One row per utterance: ``utt_id``, ``emotion``, ``duration``, ``n_frames``, ``eder``,
    ``missed``, ``false_alarm``, ``overlap``, ``confusion`` (s), ``hypothesis`` and
    ``reference`` (JSON segment lists), ``frame_labels`` (first letters, for reading).
    """
    missing = [c for c in ("utt_id", "emotion", "duration", "events") if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks column(s) {missing}; prepare the corpus with the ZED reader")
    window_s = FRAME_S * int(loaded.extras.get("frame_window", 1))
    stride_s = FRAME_S * int(loaded.extras.get("frame_stride", 1))
    rows = []
    for row in progress(manifest.to_dicts()):
        if not row.get("events"):
            raise ValueError(f"utterance {row['utt_id']!r} has no events (not a diarization corpus?)")
        labels = frame_labels(loaded, load_wave(row))
        duration = float(row["duration"])
        if config.pad_like_recipe:
            labels = pad_like_recipe(labels, recipe_frame_count(duration, window_s, stride_s))
        hyp = frames_to_segments(labels, window_s, stride_s)
        ref = reference_segments(json.loads(row["events"]), duration)
        res = eder(hyp, ref, duration)
        rows.append({
            "utt_id": row["utt_id"], "emotion": row["emotion"], "duration": duration,
            "n_frames": len(labels), "eder": res.eder, **res.time_columns(),
            "hypothesis": json.dumps(hyp), "reference": json.dumps(ref),
            "frame_labels": "".join(lab[0] for lab in labels),
        })
    return pl.DataFrame(rows, infer_schema_length=None)
