"""The SED listening test on ZED: build the stimuli, key and answer sheet; score answers.

As in the paper, a listener first labels an utterance, then selects the one stretch that
carries the emotion most. The answer becomes a hypothesis: the chosen label on the selected
stretch, neutral elsewhere (all neutral if the chosen label is neutral), scored with the
same EDER as the models (``../shared/specs/metrics.md``). The answer sheet is a plain table
with columns :data:`ANSWER_COLUMNS`, one row per (listener, stimulus).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import soundfile as sf

from featstore.errors import CrosslingError
from featstore.io import TableError, atomic_write, atomic_write_text, read_table
from featstore.manifest import manifest_fingerprint
from probes.sed._eder import (
    EMOTIONS,
    NEUTRAL,
    LabelError,
    canonical_label,
    eder,
    reference_segments,
)

ANSWER_COLUMNS: tuple[str, ...] = ("listener", "group", "stimulus", "label", "start", "end")
"""Columns of the answer sheet: who, their listener group (e.g. native language), which
stimulus, the chosen label, and the selected stretch in seconds."""
KEY_COLUMNS: tuple[str, ...] = ("stimulus", "utt_id", "emotion", "event_start", "event_end", "duration", "events")
END_TOLERANCE_S = 0.05
"""A selection may end this far past the stimulus end (player rounding); it is clipped."""


class SedListenerError(CrosslingError, ValueError):
    """A SED key or answer sheet that cannot be scored; the message names the file and line."""


@dataclass(frozen=True)
class SedTestConfig:
    """Settings of the SED listening test; defaults are the paper's (8 per emotion, 24).

    Parameters
    ----------
    n_per_emotion : utterances per emotion (angry, happy, sad).
    seed : seed of the selection and of the presentation order.
    sample_rate_hz : sample rate of the exported stimuli.
    prefix : stimulus name prefix (``sed01.wav`` ...).
    """

    n_per_emotion: int = 8
    seed: int = 0
    sample_rate_hz: int = 16000
    prefix: str = "sed"

    def __post_init__(self) -> None:
        if self.n_per_emotion < 1:
            raise SedListenerError(f"n_per_emotion must be >= 1, got {self.n_per_emotion}")
        if self.sample_rate_hz < 8000:
            raise SedListenerError(f"sample_rate_hz must be >= 8000, got {self.sample_rate_hz}")
        if not self.prefix.isidentifier():
            raise SedListenerError(f"prefix must be a plain name, got {self.prefix!r}")


def select_sed_stimuli(manifest: pl.DataFrame, config: SedTestConfig = SedTestConfig()) -> pl.DataFrame:
    """``n_per_emotion`` utterances per emotion drawn with ``seed``, in a seeded random
    presentation order, with stimulus names; columns :data:`KEY_COLUMNS`."""
    if "events" not in manifest.columns:
        raise SedListenerError("manifest has no 'events' column: prepare ZED with the zed reader")
    rng = np.random.default_rng(config.seed)
    picked = []
    for emotion in EMOTIONS:
        pool = manifest.filter((pl.col("emotion") == emotion) & pl.col("events").is_not_null()).sort("utt_id")
        if pool.height < config.n_per_emotion:
            raise SedListenerError(f"only {pool.height} {emotion} utterance(s) with events; "
                             f"{config.n_per_emotion} needed")
        idx = np.sort(rng.choice(pool.height, size=config.n_per_emotion, replace=False))
        picked.append(pool[idx.tolist()])
    chosen = pl.concat(picked, how="vertical_relaxed")
    chosen = chosen[rng.permutation(chosen.height).tolist()]
    width = max(2, len(str(chosen.height)))
    rows = []
    for k, row in enumerate(chosen.to_dicts(), 1):
        events = json.loads(row["events"])
        main = next((e for e in events if canonical_label(e.get("emotion", e.get("emo"))) != NEUTRAL), events[0])
        rows.append({
            "stimulus": f"{config.prefix}{k:0{width}d}", "utt_id": row["utt_id"], "emotion": row["emotion"],
            "event_start": float(main["start"]), "event_end": float(main["end"]),
            "duration": float(row["duration"]), "events": row["events"], "_row": row,
        })
    return pl.DataFrame(rows, infer_schema_length=None)


def build_sed_test(
    manifest: pl.DataFrame,
    out_dir: str | Path,
    load_wave: Callable[[dict], np.ndarray],
    config: SedTestConfig = SedTestConfig(),
) -> dict[str, Path]:
    """Write the SED listening test to ``out_dir``.

    Files: ``stimuli/<stimulus>.wav``; ``key.csv`` (:data:`KEY_COLUMNS`, the answers'
    truth: keep it from the listeners); ``answers_template.csv`` (:data:`ANSWER_COLUMNS`,
    one row per stimulus, to copy per listener); ``build.json`` (config, manifest
    fingerprint). Returns their paths.
    """
    out = Path(out_dir)
    (out / "stimuli").mkdir(parents=True, exist_ok=True)
    selection = select_sed_stimuli(manifest, config)
    for item in selection.to_dicts():
        wave = np.clip(np.asarray(load_wave(item["_row"]), dtype=np.float32).reshape(-1), -1.0, 1.0)
        path = out / "stimuli" / f"{item['stimulus']}.wav"
        atomic_write(path, lambda tmp, wave=wave: sf.write(tmp, wave, config.sample_rate_hz, subtype="PCM_16"))
    key = selection.select(KEY_COLUMNS)
    template = pl.DataFrame({
        "listener": [""] * key.height, "group": [""] * key.height, "stimulus": key["stimulus"],
        "label": [""] * key.height, "start": [""] * key.height, "end": [""] * key.height,
    })
    paths = {"key": out / "key.csv", "template": out / "answers_template.csv", "build": out / "build.json",
             "stimuli": out / "stimuli"}
    for name, frame in (("key", key), ("template", template)):
        atomic_write(paths[name], lambda tmp, frame=frame: frame.write_csv(tmp))
    meta = {"config": asdict(config), "manifest_fingerprint": manifest_fingerprint(manifest),
            "corpus": manifest["corpus"][0] if "corpus" in manifest.columns and manifest.height else None,
            "n_stimuli": key.height}
    atomic_write_text(paths["build"], json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return paths


def read_key(path: str | Path) -> pl.DataFrame:
    """Read ``key.csv`` (written by ``probes sed listeners build``).

    Raises
    ------
    SedListenerError
        Naming the file (and line): missing, unreadable, a column missing (with the closest
        existing name), times that are not finite seconds, events that are not the JSON
        list of a ZED manifest, a stimulus listed twice.
    """
    path = Path(path)
    try:
        key = read_table(path, required=KEY_COLUMNS, what="SED key (written by `probes sed listeners build`)")
    except TableError as err:
        raise SedListenerError(str(err)) from None
    key = key.with_columns(pl.col(c).cast(pl.Utf8) for c in KEY_COLUMNS)
    try:
        key = key.with_columns(pl.col("event_start", "event_end", "duration").str.strip_chars().cast(pl.Float64))
    except pl.exceptions.PolarsError as err:
        first = str(err).splitlines()[0][:160]
        raise SedListenerError(f"{path}: event_start, event_end and duration must be seconds ({first})") from None
    for line, row in enumerate(key.iter_rows(named=True), start=2):
        where = f"{path}, line {line}"
        for col in ("stimulus", "utt_id", "emotion"):
            if not (row[col] or "").strip():
                raise SedListenerError(f"{where}: column {col!r} is empty")
        times = [row["event_start"], row["event_end"], row["duration"]]
        if any(t is None or not math.isfinite(t) for t in times) or row["duration"] <= 0:
            raise SedListenerError(f"{where}: event_start, event_end and duration must be finite seconds, "
                                   f"duration > 0; found {times}")
        try:
            events = json.loads(row["events"] or "")
            if not isinstance(events, list):
                raise TypeError(f"expected a JSON list, found {type(events).__name__}")
            reference_segments(events, row["duration"])
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:  # JSONDecodeError is a ValueError
            raise SedListenerError(f"{where}: column 'events' is not a valid event list ({err})") from None
    dup = key.filter(pl.col("stimulus").is_duplicated())["stimulus"].unique().to_list()
    if dup:
        raise SedListenerError(f"{path}: stimulus(es) listed twice: {sorted(dup)[:5]}")
    return key


def read_answers(path: str | Path) -> pl.DataFrame:
    """Read an answer sheet (CSV, or TSV by suffix) as strings; blank rows are dropped."""
    path = Path(path)
    try:
        frame = read_table(path, required=ANSWER_COLUMNS, what="SED answer sheet")
    except TableError as err:
        raise SedListenerError(str(err)) from None
    frame = frame.with_columns(pl.col(c).cast(pl.Utf8) for c in ANSWER_COLUMNS)
    frame = frame.with_row_index("line", offset=2).with_columns(
        [pl.col(c).fill_null("").str.strip_chars() for c in ANSWER_COLUMNS])
    filled = pl.any_horizontal([pl.col(c) != "" for c in ("listener", "group", "label", "start", "end")])
    return frame.filter(filled)


def answer_hypothesis(label: str, start_s: float, end_s: float, duration_s: float) -> list[tuple[float, float, str]]:
    """The hypothesis of one answer: ``label`` on ``[start_s, end_s]``, neutral elsewhere."""
    label = canonical_label(label)
    if label == NEUTRAL:
        return [(0.0, duration_s, NEUTRAL)]
    hyp = [(0.0, start_s, NEUTRAL)] if start_s > 0 else []
    hyp.append((start_s, end_s, label))
    if end_s < duration_s:
        hyp.append((end_s, duration_s, NEUTRAL))
    return hyp


def score_answers(answers: pl.DataFrame, key: pl.DataFrame, source: str | Path = "answers") -> pl.DataFrame:
    """EDER of every answer against the key.

    Parameters
    ----------
    answers : from :func:`read_answers` (string columns :data:`ANSWER_COLUMNS`, ``line``).
    key : from :func:`read_key`.
    source : name used in error messages.

    Returns
    -------
    One row per answer: listener, group, stimulus, utt_id, emotion, label, start, end,
    duration, eder, missed, false_alarm, overlap, confusion, hypothesis, reference (JSON).
    """
    by_stimulus = {r["stimulus"]: r for r in key.to_dicts()}
    seen: set[tuple[str, str]] = set()
    rows = []
    for ans in answers.to_dicts():
        where = f"{source}, line {ans.get('line', '?')}"
        item = by_stimulus.get(ans["stimulus"])
        if item is None:
            raise SedListenerError(f"{where}: stimulus {ans['stimulus']!r} is not in the key")
        if not ans["listener"] or not ans["group"] or not ans["label"]:
            raise SedListenerError(f"{where}: listener, group and label must all be filled")
        pair = (ans["listener"], ans["stimulus"])
        if pair in seen:
            raise SedListenerError(f"{where}: listener {pair[0]!r} answered {pair[1]!r} twice")
        seen.add(pair)
        try:
            label = canonical_label(ans["label"])
        except LabelError as err:
            raise SedListenerError(f"{where}: {err}") from err
        duration = float(item["duration"])
        if label == NEUTRAL and not ans["start"] and not ans["end"]:
            start, end = 0.0, duration
        else:
            try:
                start, end = float(ans["start"]), float(ans["end"])
            except ValueError:
                raise SedListenerError(f"{where}: start/end must be seconds, got {ans['start']!r}, {ans['end']!r}") from None
            if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end) or end > duration + END_TOLERANCE_S:
                raise SedListenerError(f"{where}: selection [{start}, {end}] must satisfy 0 <= start < end <= "
                                 f"{duration} (the stimulus length)")
            end = min(end, duration)
        hyp = answer_hypothesis(label, start, end, duration)
        ref = reference_segments(json.loads(item["events"]), duration)
        res = eder(hyp, ref, duration)
        rows.append({
            "listener": ans["listener"], "group": ans["group"], "stimulus": ans["stimulus"],
            "utt_id": item["utt_id"], "emotion": item["emotion"], "label": label, "start": start, "end": end,
            "duration": duration, "eder": res.eder, **res.time_columns(),
            "hypothesis": json.dumps(hyp), "reference": json.dumps(ref),
        })
    if not rows:
        raise SedListenerError(f"{source}: no filled answers")
    return pl.DataFrame(rows, infer_schema_length=None)
