"""Speech emotion diarization: EDER, the paper's diarization model, frame-level probes,
the listening test on ZED, and synthetic diarization utterances.

Public API (``docs/architecture.md``, ``../shared/specs/metrics.md``):

- :func:`frames_to_segments`, :func:`reference_segments`, :func:`eder`,
  :class:`EderResult`, :func:`mean_eder` (the paper's corpus figure),
  :func:`duration_weighted_eder`, :func:`canonical_label`.
"""

from probes.sed._eder import (
    EMOTIONS,
    NEUTRAL,
    EderResult,
    LabelError,
    Segment,
    canonical_label,
    duration_weighted_eder,
    eder,
    frames_to_segments,
    mean_eder,
    pad_like_recipe,
    recipe_frame_count,
    reference_segments,
)

__all__ = [
    "EMOTIONS", "NEUTRAL", "EderResult", "LabelError", "Segment", "canonical_label",
    "duration_weighted_eder", "eder", "frames_to_segments", "mean_eder", "pad_like_recipe",
    "recipe_frame_count", "reference_segments",
]
