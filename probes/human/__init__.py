"""Listening tests: build a webMUSHRA test, read its answers, compare listeners with models.

Public API (re-exported):

- :func:`build_listening_test`, :func:`select_stimuli`, :func:`plan_stimuli`, :class:`BuildConfig`,
  :func:`read_key` (``build.py``);
- :func:`ingest`, :class:`IngestConfig`, :class:`IngestResult`, :func:`save_ingest`
  (``ingest.py``);
- :func:`compare`, :class:`CompareConfig`, :class:`CompareResult` (``compare.py``),
  :func:`save_compare` (``results.py``);
- :func:`welch_test`, :func:`adjust_pvalues` (``stats.py``);
- :func:`simulate_answers`, :class:`NoiseModel`, :func:`paper_noise_model` (``simulate.py``).
"""

from probes.human.build import (
    BuildConfig,
    BuildResult,
    build_listening_test,
    plan_stimuli,
    read_key,
    select_stimuli,
)
from probes.human.compare import CompareConfig, CompareResult, compare
from probes.human.ingest import IngestConfig, IngestResult, ingest, save_ingest
from probes.human.results import read_answers, read_predictions, save_compare
from probes.human.simulate import NoiseModel, paper_noise_model, simulate_answers
from probes.human.stats import adjust_pvalues, welch_test

__all__ = [
    "BuildConfig", "BuildResult", "build_listening_test", "plan_stimuli", "read_key", "select_stimuli",
    "CompareConfig", "CompareResult", "compare", "IngestConfig", "IngestResult", "ingest",
    "save_ingest", "read_answers", "read_predictions", "save_compare", "NoiseModel",
    "simulate_answers", "paper_noise_model", "adjust_pvalues", "welch_test",
]
