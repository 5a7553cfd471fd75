"""Speech emotion diarization: EDER, the paper's diarization model, frame-level probes,
the listening test on ZED, and synthetic diarization utterances.

Public API (``docs/architecture.md``, ``../shared/specs/metrics.md``):

- metric: :func:`frames_to_segments`, :func:`reference_segments`, :func:`eder`,
  :class:`EderResult`, :func:`mean_eder` (the paper's corpus figure),
  :func:`duration_weighted_eder`, :func:`canonical_label`;
- the diarization model: :func:`frame_labels`, :func:`diarize_corpus`, :func:`run_model`;
- probes: :class:`ProbeConfig`, :func:`run_probe`, :func:`run_frame_probe`;
- listeners: :func:`build_sed_test`, :func:`score_answers`, :func:`answer_hypothesis`;
- results: :func:`table_iv`, :func:`per_emotion`, :func:`plot_timelines`;
- data: :func:`concatenate_for_sed` (neutral + emotional + neutral, in ZED's format).
"""

from probes.sed._concat import PATTERNS, ConcatConfig, concatenate_for_sed
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
from probes.sed._listeners import (
    ANSWER_COLUMNS,
    KEY_COLUMNS,
    SedTestConfig,
    answer_hypothesis,
    build_sed_test,
    read_answers,
    read_key,
    score_answers,
    select_sed_stimuli,
)
from probes.sed._model import ModelRunConfig, diarize_corpus, frame_labels
from probes.sed._pipeline import (
    build_listeners,
    load_corpus_manifest,
    run_frame_probe,
    run_model,
    score_listeners,
)
from probes.sed._probe import ProbeConfig, frame_targets, run_probe, summarise_layers
from probes.sed._results import (
    PROVENANCE_COLUMNS,
    consensus_segments,
    per_emotion,
    plot_timelines,
    table_iv,
    write_table,
)

__all__ = [
    "ANSWER_COLUMNS", "EMOTIONS", "KEY_COLUMNS", "NEUTRAL", "PATTERNS", "PROVENANCE_COLUMNS",
    "ConcatConfig", "EderResult", "LabelError", "ModelRunConfig", "ProbeConfig", "Segment",
    "SedTestConfig", "answer_hypothesis", "build_listeners", "build_sed_test", "canonical_label",
    "concatenate_for_sed", "load_corpus_manifest", "consensus_segments", "diarize_corpus", "duration_weighted_eder", "eder", "frame_labels",
    "frame_targets", "frames_to_segments", "mean_eder", "pad_like_recipe", "per_emotion",
    "plot_timelines", "read_answers", "read_key", "recipe_frame_count", "reference_segments",
    "run_frame_probe", "run_model", "run_probe", "score_answers", "score_listeners",
    "select_sed_stimuli", "summarise_layers", "table_iv", "write_table",
]
