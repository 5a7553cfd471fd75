"""Emotion Diarization Error Rate (EDER), as ``../shared/specs/metrics.md`` defines it.

The number agrees with SpeechBrain's reference implementation (``speechbrain.utils.EDER``,
the ZED paper's metric) on every input that implementation accepts: frame-wise labels of
one utterance with one emotional event. That implementation turns frames into segments in
three steps, reproduced here with the same floating-point operations in the same order:

1. frame ``i`` covers ``[stride * i, stride * i + window]``;
2. consecutive frames with the same label are merged when the next one starts at or
   before the current end (the end becomes the next frame's end);
3. where two consecutive segments (necessarily of different labels) overlap, the overlap
   is split in half between them, pair by pair from the left.

The score is ``1 - correct / duration`` where ``correct`` sums, over reference segments
and then over hypothesis segments of the same label, their overlap in seconds. Beyond the
reference, :func:`eder` accepts several events per utterance, empty hypotheses and
hypothesis segments that overlap each other (scored as OL), and reports the four error
components. Labels are compared by full canonical name (the reference compares first
letters, so ``sad`` and ``surprise`` would collide there); anything outside
:data:`~featstore.manifest.CANONICAL_EMOTIONS` is an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from featstore.manifest import CANONICAL_EMOTIONS

NEUTRAL = "neutral"
EMOTIONS: tuple[str, ...] = tuple(e for e in CANONICAL_EMOTIONS if e != NEUTRAL)
"""The emotional labels a ZED event can carry: angry, happy, sad."""

Segment = tuple[float, float, str]
"""``(start_s, end_s, label)``."""

# SpeechBrain's label encoder for the diarization model writes single letters; the full
# words and the usual corpus abbreviations are accepted too. Nothing else (surprise, fear
# ...) is: those are outside the four classes the metric compares.
_ALIASES: dict[str, str] = {
    "a": "angry", "ang": "angry", "anger": "angry",
    "h": "happy", "hap": "happy", "happiness": "happy",
    "n": "neutral", "neu": "neutral",
    "s": "sad", "sadness": "sad",
}


class LabelError(ValueError):
    """A label outside the four canonical emotions."""


def canonical_label(label: object) -> str:
    """Map ``label`` (any case; full name, SpeechBrain letter code or ang/hap/neu) to one of
    :data:`~featstore.manifest.CANONICAL_EMOTIONS`; raise :class:`LabelError` otherwise."""
    key = str(label).strip().lower()
    if key in CANONICAL_EMOTIONS:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    raise LabelError(
        f"label {label!r} is not one of {list(CANONICAL_EMOTIONS)} "
        "(nor a SpeechBrain code a/h/n/s); EDER compares these four only"
    )


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return value


def frames_to_segments(labels: Sequence[object], window: float, stride: float) -> list[Segment]:
    """Turn frame-wise labels into labelled segments exactly as the reference does.

    Parameters
    ----------
    labels : per-frame labels (canonical names or SpeechBrain codes), frame ``i`` covering
        ``[stride * i, stride * i + window]`` seconds.
    window, stride : frame length and hop in seconds (the diarization model: 0.02, 0.02).

    Returns
    -------
    list of ``(start_s, end_s, label)`` in time order with canonical labels; segments that
    the overlap split left with no length are dropped (they score nothing either way).
    """
    window = _check_positive("window", window)
    stride = _check_positive("stride", stride)
    names = [canonical_label(x) for x in labels]
    if not names:
        return []
    merged: list[list] = []
    for i, name in enumerate(names):
        start = stride * i
        end = start + window
        if merged and start <= merged[-1][1] and name == merged[-1][2]:
            merged[-1][1] = end
        else:
            merged.append([start, end, name])
    for left, right in zip(merged, merged[1:], strict=False):
        if right[0] <= left[1]:
            overlap = left[1] - right[0]
            left[1] = left[1] - (overlap / 2.0)
            right[0] = right[0] + (overlap / 2.0)
    return [(s, e, name) for s, e, name in merged if e > s]


def _event_fields(event: Mapping | Sequence) -> tuple[float, float, str]:
    if isinstance(event, Mapping):
        label = event.get("emotion", event.get("emo"))
        if label is None or "start" not in event or "end" not in event:
            raise ValueError(f"event {dict(event)!r} needs 'emotion' (or 'emo'), 'start' and 'end'")
        return float(event["start"]), float(event["end"]), canonical_label(label)
    start, end, label = event
    return float(start), float(end), canonical_label(label)


def reference_segments(events: Iterable[Mapping | Sequence], duration: float) -> list[Segment]:
    """Reference segments of an utterance: its events, neutral everywhere else.

    Parameters
    ----------
    events : ``{"emotion" (or "emo"), "start", "end"}`` dicts or ``(start, end, label)``
        tuples, seconds; several allowed, none overlapping.
    duration : utterance length in seconds.

    Returns
    -------
    For one event ``{emo, start, end}``: neutral ``[0, start]`` if ``start > 0``, the emotion
    on ``[start, end]``, neutral ``[end, duration]`` if ``end < duration`` (the reference's
    rule). An event past ``duration`` is kept as given, as the reference keeps it.
    """
    duration = _check_positive("duration", duration)
    evs = sorted((_event_fields(e) for e in events), key=lambda x: x[0])
    cursor = 0.0
    for start, end, label in evs:
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
            raise ValueError(f"event {label} [{start}, {end}] must have 0 <= start < end")
        if start < cursor:
            raise ValueError(f"event {label} [{start}, {end}] overlaps the previous event (ends {cursor})")
        cursor = end
    return _fill_neutral(evs, duration)


def _fill_neutral(segments: Sequence[Segment], duration: float) -> list[Segment]:
    """Sorted, non-overlapping ``segments`` with neutral filling every gap up to ``duration``."""
    out: list[Segment] = []
    cursor = 0.0
    for start, end, label in segments:
        if start > cursor:
            out.append((cursor, start, NEUTRAL))
        out.append((start, end, label))
        cursor = end
    if cursor < duration:
        out.append((cursor, duration, NEUTRAL))
    return out


TIME_COMPONENTS: tuple[str, ...] = ("missed", "false_alarm", "overlap", "confusion")
"""EDER's error components, in seconds (result tables name them ``<component>_s``)."""


@dataclass(frozen=True)
class EderResult:
    """EDER of one utterance.

    ``eder`` is a fraction of ``duration``; the components are seconds:
    ``missed`` (reference emotional, hypothesis neutral; or nothing at all hypothesised),
    ``false_alarm`` (reference neutral, hypothesis emotional), ``overlap`` (the hypothesis
    gives more than one label at once), ``confusion`` (one emotion for another).
    ``missed + false_alarm + overlap + confusion == eder * duration`` up to float rounding
    (when an event runs past ``duration``, as the reference counts that stretch, the
    components cover ``scored_s`` seconds instead).
    """

    eder: float
    missed: float
    false_alarm: float
    overlap: float
    confusion: float
    correct: float
    duration: float
    scored_s: float

    def time_columns(self) -> dict[str, float]:
        """The components as result-table columns named with their unit: ``missed_s``,
        ``false_alarm_s``, ``overlap_s``, ``confusion_s`` (seconds)."""
        return {f"{k}_s": getattr(self, k) for k in TIME_COMPONENTS}

    def as_dict(self) -> dict[str, float]:
        """The fields as a plain dict (for tables)."""
        return asdict(self)


def _clean_reference(reference: Sequence[Sequence], duration: float) -> list[Segment]:
    ref = sorted(((float(s), float(e), canonical_label(lab)) for s, e, lab in reference), key=lambda x: x[0])
    ref = [r for r in ref if r[1] > r[0]]
    if not ref:
        return [(0.0, duration, NEUTRAL)]
    for (s0, e0, l0), (s1, _, l1) in zip(ref, ref[1:], strict=False):
        if s1 < e0:
            raise ValueError(f"reference segments overlap: {l0} [{s0}, {e0}] and {l1} starting {s1}")
    if ref[0][0] < 0:
        raise ValueError(f"reference segment starts before 0: {ref[0]}")
    # Stretches no reference segment names are neutral (the events convention).
    return _fill_neutral(ref, duration)


def _union_by_label(hyp: list[Segment]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for label in {h[2] for h in hyp}:
        spans = sorted((s, e) for s, e, lab in hyp if lab == label)
        merged: list[list[float]] = []
        for s, e in spans:
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        out[label] = np.asarray(merged, dtype=float)
    return out


_OVERLAP_TOL_S = 1e-9
"""Overlaps shorter than this are float noise of the overlap split (``0.02 + x/2`` vs
``0.06 - x/2``), not overlapping labels: such hypotheses are scored by the reference's sum."""


def _has_positive_overlap(hyp: list[Segment]) -> bool:
    spans = sorted((s, e) for s, e, _ in hyp)
    max_end = -math.inf
    for s, e in spans:
        if s < max_end - _OVERLAP_TOL_S:
            return True
        max_end = max(max_end, e)
    return False


def eder(hypothesis: Sequence[Sequence], reference: Sequence[Sequence], duration: float) -> EderResult:
    """EDER of one utterance with its four components.

    Parameters
    ----------
    hypothesis : ``(start_s, end_s, label)`` segments, e.g. from :func:`frames_to_segments`;
        may be empty (all reference time is then missed) and may overlap (scored as OL).
    reference : ``(start_s, end_s, label)`` segments, e.g. from :func:`reference_segments`;
        stretches of ``[0, duration]`` they leave uncovered are neutral.
    duration : utterance length in seconds (the denominator).

    Returns
    -------
    :class:`EderResult`. Hypothesis time outside the reference (past ``duration``) is not
    penalised; reference time that no hypothesis segment covers is an error (missed).
    """
    duration = _check_positive("duration", duration)
    ref = _clean_reference(reference, duration)
    span = max(duration, ref[-1][1])
    hyp: list[Segment] = []
    for seg in hypothesis:
        s, e, lab = float(seg[0]), float(seg[1]), canonical_label(seg[2])
        if not (math.isfinite(s) and math.isfinite(e)):
            raise ValueError(f"hypothesis segment {tuple(seg)!r} has a non-finite time")
        if e > s:
            hyp.append((s, e, lab))

    bounds = sorted({0.0, span, *(x for r in ref for x in r[:2]),
                     *(min(max(x, 0.0), span) for h in hyp for x in h[:2])})
    b = np.asarray(bounds, dtype=float)
    lengths = np.diff(b)
    mids = (b[:-1] + b[1:]) / 2.0
    ref_starts = np.asarray([r[0] for r in ref])
    ref_labels = np.asarray([r[2] for r in ref])[np.searchsorted(ref_starts, mids, side="right") - 1]
    n_cover = np.zeros(len(mids), dtype=int)
    hyp_label = np.full(len(mids), "", dtype=object)
    for label, spans in _union_by_label(hyp).items():
        idx = np.searchsorted(spans[:, 0], mids, side="right") - 1
        inside = (idx >= 0) & (spans[np.maximum(idx, 0), 1] > mids)
        n_cover += inside
        hyp_label[inside] = label
    single = n_cover == 1
    correct_mask = single & (hyp_label == ref_labels)
    ref_neutral = ref_labels == NEUTRAL
    hyp_neutral = single & (hyp_label == NEUTRAL)
    missed = (n_cover == 0) | (hyp_neutral & ~ref_neutral)
    false_alarm = single & ~hyp_neutral & ref_neutral
    confusion = single & ~hyp_neutral & ~ref_neutral & ~correct_mask
    overlap = n_cover > 1

    if _has_positive_overlap(hyp):
        correct = float(lengths[correct_mask].sum())
    else:
        # The reference's own sum, term by term in its order, for the identical number.
        correct = 0.0
        for rs, re, rl in ref:
            for hs, he, hl in hyp:
                if hl == rl:
                    correct += max(0, min(re, he) - max(rs, hs))
    return EderResult(
        eder=1 - correct / duration,
        missed=float(lengths[missed].sum()),
        false_alarm=float(lengths[false_alarm].sum()),
        overlap=float(lengths[overlap].sum()),
        confusion=float(lengths[confusion].sum()),
        correct=correct,
        duration=duration,
        scored_s=span,
    )


def mean_eder(results: Iterable[EderResult]) -> float:
    """Corpus EDER as the ZED paper reports it: the plain mean of per-utterance EDERs."""
    values = [r.eder for r in results]
    if not values:
        raise ValueError("no utterances to average")
    return float(np.mean(values))


def duration_weighted_eder(results: Iterable[EderResult]) -> float:
    """Corpus EDER weighted by utterance duration: total error time / total duration
    (NOT the paper's figure; see :func:`mean_eder`)."""
    items = list(results)
    if not items:
        raise ValueError("no utterances to average")
    total = sum(r.duration for r in items)
    return float(sum(r.eder * r.duration for r in items) / total)


def recipe_frame_count(duration: float, window: float = 0.02, stride: float = 0.02) -> int:
    """Frames of the reference labels the ZED recipe makes for an utterance of ``duration``
    seconds (``int(duration / stride) + 1``, stopping at the first window reaching the end)."""
    duration = _check_positive("duration", duration)
    n = 0
    for i in range(int(duration / stride) + 1):
        n += 1
        if i * stride + window >= duration:
            break
    return n


def pad_like_recipe(labels: Sequence[object], n_reference_frames: int) -> list[object]:
    """Append the last predicted label once when the model made fewer frames than the
    reference labels, as the ZED recipe does before scoring (WavLM makes one frame less
    than ``duration / 0.02`` for most lengths)."""
    out = list(labels)
    if out and len(out) < n_reference_frames:
        out.append(out[-1])
    return out
