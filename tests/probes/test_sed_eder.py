"""EDER: the spec's worked examples, an independent time-grid computation, segments."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from probes.sed import (
    LabelError,
    canonical_label,
    duration_weighted_eder,
    eder,
    frames_to_segments,
    mean_eder,
    pad_like_recipe,
    recipe_frame_count,
    reference_segments,
)

LETTER = {"a": "angry", "h": "happy", "n": "neutral", "s": "sad"}


def _score(frames: str, window: float, stride: float, duration: float, emo: str, start: float, end: float):
    hyp = frames_to_segments(list(frames), window, stride)
    ref = reference_segments([{"emo": emo, "start": start, "end": end}], duration)
    return hyp, eder(hyp, ref, duration)


def _parts(res) -> float:
    return res.missed + res.false_alarm + res.overlap + res.confusion


# --- worked examples of ../shared/specs/metrics.md ---------------------------------------
def test_worked_example_1_exact() -> None:
    hyp, res = _score("nnnaaa", 0.2, 0.2, 1.22, "angry", 0.39, 1.10)
    assert [h[2] for h in hyp] == ["neutral", "angry"]
    assert hyp[0][0] == 0 and hyp[0][1] == pytest.approx(0.6) and hyp[1][1] == pytest.approx(1.2)
    assert res.correct == pytest.approx(0.89)
    assert res.eder == 0.2704918032786885
    assert _parts(res) == pytest.approx(res.eder * 1.22, abs=1e-12)


def test_worked_example_2() -> None:
    hyp, res = _score("nnsssnnn", 0.25, 0.25, 2.0, "sad", 0.75, 1.5)
    assert hyp == [(0.0, 0.5, "neutral"), (0.5, 1.25, "sad"), (1.25, 2.0, "neutral")]
    assert res.false_alarm == pytest.approx(0.25)
    assert res.missed == pytest.approx(0.25)
    assert res.overlap == 0 and res.confusion == 0
    assert res.eder == pytest.approx(0.25, abs=1e-15)


def test_worked_example_3_overlap_split_in_half() -> None:
    hyp, res = _score("nnaa", 0.5, 0.25, 1.25, "angry", 0.6, 1.25)
    assert hyp == [(0.0, 0.625, "neutral"), (0.625, 1.25, "angry")]
    assert res.correct == pytest.approx(1.225)
    assert res.eder == pytest.approx(0.02, abs=1e-12)
    assert res.missed == pytest.approx(0.025)


def test_worked_example_4_all_wrong_emotion() -> None:
    _, res = _score("hhhh", 0.5, 0.5, 2.0, "angry", 0.0, 2.0)
    assert res.eder == 1.0
    assert res.confusion == pytest.approx(2.0)


def test_worked_example_5_all_neutral() -> None:
    _, res = _score("nnnn", 0.5, 0.5, 2.0, "happy", 0.5, 1.5)
    assert res.eder == 0.5
    assert res.missed == pytest.approx(1.0) and res.false_alarm == 0


# --- frames -> segments ------------------------------------------------------------------
def test_merge_adjacent_same_label() -> None:
    segs = frames_to_segments(["a", "a", "n", "n", "n", "a"], 1.0, 1.0)
    assert segs == [(0.0, 2.0, "angry"), (2.0, 5.0, "neutral"), (5.0, 6.0, "angry")]


def test_overlaps_split_pairwise_from_left() -> None:
    # window 3x stride: a [0,3], b [1,4], a [2,5] -> splits at 2 and 3
    segs = frames_to_segments(["a", "h", "a"], 3.0, 1.0)
    assert segs == [(0.0, 2.0, "angry"), (2.0, 3.0, "happy"), (3.0, 5.0, "angry")]


def test_gaps_when_window_shorter_than_stride() -> None:
    segs = frames_to_segments(["s", "s"], 0.1, 0.5)
    assert segs == [(0.0, 0.1, "sad"), (0.5, 0.6, "sad")]


def test_frames_to_segments_empty_and_bad_args() -> None:
    assert frames_to_segments([], 0.02, 0.02) == []
    with pytest.raises(ValueError):
        frames_to_segments(["n"], 0.0, 0.02)
    with pytest.raises(LabelError, match="surprise"):
        frames_to_segments(["n", "surprise"], 0.02, 0.02)


def test_labels_by_full_name_sad_is_not_surprise() -> None:
    assert canonical_label("Sad") == "sad" and canonical_label("s") == "sad"
    with pytest.raises(LabelError):
        canonical_label("surprise")
    with pytest.raises(LabelError):
        eder([(0, 1, "surprised")], [(0, 1, "sad")], 1.0)
    with pytest.raises(LabelError):
        reference_segments([{"emotion": "fear", "start": 0, "end": 1}], 1.0)


# --- an independent computation on a fine time grid --------------------------------------
def _grid_hyp(labels: list[str], window: float, stride: float, t: np.ndarray) -> np.ndarray:
    """Hypothesis label at each time, derived directly: runs of equal labels; where two runs
    overlap the boundary is the midpoint of the overlap; with gaps, each frame alone."""
    out = np.full(len(t), "", dtype=object)
    if window < stride:
        i = np.floor(t / stride).astype(int)
        ok = (i < len(labels)) & (t - i * stride < window)
        out[ok] = np.asarray(labels, dtype=object)[i[ok]]
        return out
    runs, pos = [], 0
    for lab, grp in itertools.groupby(labels):
        n = len(list(grp))
        runs.append((stride * pos, stride * (pos + n - 1) + window, lab))
        pos += n
    lo = 0.0
    for k, (_, end, lab) in enumerate(runs):
        hi = (end + runs[k + 1][0]) / 2 if k + 1 < len(runs) else end
        out[(t >= lo) & (t < hi)] = lab
        lo = hi
    return out


def _grid_eder(labels, window, stride, duration, event, dt=1e-4):
    t = (np.arange(int(np.floor(duration / dt))) + 0.5) * dt
    ref = np.where((t >= event[0]) & (t < event[1]), event[2], "neutral").astype(object)
    hyp = _grid_hyp(labels, window, stride, t)
    none, hneu, rneu = hyp == "", hyp == "neutral", ref == "neutral"
    missed = (none | (hneu & ~rneu)).sum() * dt
    fa = (~none & ~hneu & rneu).sum() * dt
    cf = (~none & ~hneu & ~rneu & (hyp != ref)).sum() * dt
    wrong = (hyp != ref).sum() * dt
    return wrong / duration, missed, fa, cf


@pytest.mark.parametrize("seed", range(40))
def test_random_single_event_against_time_grid(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stride = float(rng.uniform(0.04, 0.3))
    window = stride * float(rng.choice([1.0, 1.0, 0.5, 1.5, 2.5]))
    duration = float(rng.uniform(0.6, 3.0))
    n = max(1, int(duration / stride) + int(rng.integers(-3, 3)))
    labels, cur = [], str(rng.choice(list(LETTER.values())))
    for _ in range(n):
        if rng.random() < 0.3:
            cur = str(rng.choice(list(LETTER.values())))
        labels.append(cur)
    start = 0.0 if rng.random() < 0.2 else float(rng.uniform(0, duration * 0.8))
    end = duration if rng.random() < 0.2 else float(rng.uniform(start + 0.05, duration))
    emo = str(rng.choice(["angry", "happy", "sad"]))

    hyp = frames_to_segments(labels, window, stride)
    res = eder(hyp, reference_segments([{"emotion": emo, "start": start, "end": end}], duration), duration)
    g_eder, g_missed, g_fa, g_cf = _grid_eder(labels, window, stride, duration, (start, end, emo))
    n_bounds = len(hyp) * 2 + 4
    tol = n_bounds * 1e-4
    assert res.eder == pytest.approx(g_eder, abs=tol / duration)
    assert res.missed == pytest.approx(g_missed, abs=tol)
    assert res.false_alarm == pytest.approx(g_fa, abs=tol)
    assert res.confusion == pytest.approx(g_cf, abs=tol)
    assert res.overlap == 0.0
    assert _parts(res) == pytest.approx(res.eder * duration, abs=1e-9)


# --- beyond the reference ----------------------------------------------------------------
def test_several_events() -> None:
    ref = reference_segments(
        [{"emotion": "sad", "start": 3.0, "end": 4.0}, {"emotion": "angry", "start": 1.0, "end": 2.0}], 5.0
    )
    assert ref == [(0.0, 1.0, "neutral"), (1.0, 2.0, "angry"), (2.0, 3.0, "neutral"),
                   (3.0, 4.0, "sad"), (4.0, 5.0, "neutral")]
    hyp = [(0.0, 1.5, "neutral"), (1.5, 3.5, "angry"), (3.5, 5.0, "sad")]
    res = eder(hyp, ref, 5.0)
    # missed: angry 1-1.5 (0.5); FA: neutral 2-3 as angry (1.0), 4-5 as sad (1.0);
    # confusion: sad 3-3.5 as angry (0.5)
    assert (res.missed, res.false_alarm, res.confusion, res.overlap) == pytest.approx((0.5, 2.0, 0.5, 0.0))
    assert res.eder == pytest.approx(3.0 / 5.0)
    with pytest.raises(ValueError, match="overlaps"):
        reference_segments([(0, 2, "sad"), (1, 3, "angry")], 4.0)


def test_empty_hypothesis_is_all_missed() -> None:
    ref = reference_segments([{"emo": "happy", "start": 0.5, "end": 1.0}], 2.0)
    res = eder([], ref, 2.0)
    assert res.eder == 1.0 and res.missed == pytest.approx(2.0)


def test_overlapping_hypothesis_scored_as_overlap() -> None:
    ref = [(0.0, 2.0, "angry")]
    res = eder([(0.0, 1.5, "angry"), (1.0, 2.0, "happy")], ref, 2.0)
    assert res.overlap == pytest.approx(0.5)
    assert res.confusion == pytest.approx(0.5)
    assert res.eder == pytest.approx(0.5)
    assert _parts(res) == pytest.approx(1.0)


def test_hypothesis_past_duration_not_penalised() -> None:
    ref = reference_segments([{"emo": "sad", "start": 0.0, "end": 1.0}], 1.0)
    assert eder([(0.0, 1.7, "sad")], ref, 1.0).eder == 0.0


def test_corpus_means() -> None:
    rs = [eder([(0, d, "neutral")], [(0, d / 2, "sad"), (d / 2, d, "neutral")], d) for d in (1.0, 3.0)]
    assert mean_eder(rs) == pytest.approx(0.5)
    assert duration_weighted_eder(rs) == pytest.approx((0.5 + 1.5) / 4.0)
    with pytest.raises(ValueError):
        mean_eder([])


def test_recipe_padding() -> None:
    # 1.0 s: WavLM gives 49 frames, the recipe's labels 50 -> one frame appended
    assert recipe_frame_count(1.0) == 50
    assert pad_like_recipe(["n"] * 49, 50) == ["n"] * 50
    assert pad_like_recipe(["n"] * 50, 50) == ["n"] * 50


def test_event_past_duration_kept_like_the_reference() -> None:
    # The reference builds no trailing neutral segment and counts the event up to its end:
    # correct = 0.7 s (sad 0.5-1.2), so EDER = 1 - 0.7 / 1.0 = 0.3, although only the
    # stretch 0-0.5 is wrong; the components then cover the 1.2 s actually scored.
    ref = reference_segments([{"emo": "sad", "start": 0.5, "end": 1.2}], 1.0)
    assert ref == [(0.0, 0.5, "neutral"), (0.5, 1.2, "sad")]
    res = eder([(0.0, 1.2, "sad")], ref, 1.0)
    assert res.eder == pytest.approx(0.3)
    assert res.scored_s == pytest.approx(1.2) and res.false_alarm == pytest.approx(0.5)


def _pairwise_correct(hyp, ref) -> float:
    # the spec's step 5 written out: overlaps of same-label segments, reference-major
    correct = 0.0
    for rs, re, rl in ref:
        for hs, he, hl in hyp:
            if hl == rl:
                correct += max(0, min(re, he) - max(rs, hs))
    return correct


@pytest.mark.parametrize("n", [2, 3, 4])
def test_frame_hypotheses_score_exactly_as_the_pairwise_sum(n: int) -> None:
    # window = 3 x stride: the overlap split leaves float-noise overlaps between
    # consecutive segments (0.039999999999999994 vs 0.04); they must not move the score
    # off the reference's sum by even one ulp
    for labels in itertools.product("nahs", repeat=n):
        hyp = frames_to_segments(list(labels), 0.06, 0.02)
        for start, end, emo in [(0.01, 0.09, "happy"), (0.0, 0.05, "angry"), (0.02, 0.11, "happy")]:
            ref = reference_segments([(start, end, emo)], 0.12)
            res = eder(hyp, ref, 0.12)
            assert res.eder == 1 - _pairwise_correct(hyp, ref) / 0.12, (labels, start, end, emo)
            assert _parts(res) == pytest.approx(res.eder * 0.12, abs=1e-12)
