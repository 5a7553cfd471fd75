"""Synthetic diarization utterances from an utterance-level corpus, in ZED's own format.

The ZED authors trained their diarization model on concatenations of utterances of one
speaker from emotional corpora: neutral + emotional (+ neutral), the later parts scaled to
the loudness of the first. :func:`concatenate_for_sed` does the same and writes the wavs
with a ``ZED.json`` (``{utt_id: {"wav": "datafolder/<id>.wav", "duration", "emotion":
[{"emo", "start", "end"}], "transcription"}}``), so that ``featstore prepare zed --root
OUT`` reads it like ZED itself and ``featstore extract`` can cache its frames.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import soundfile as sf

from probes.sed._eder import EMOTIONS, NEUTRAL

PATTERNS: dict[str, tuple[str, ...]] = {
    "neu_emo_neu": ("neutral", "emotion", "neutral"),
    "neu_emo": ("neutral", "emotion"),
    "emo_neu": ("emotion", "neutral"),
}
"""Concatenation patterns (the ZED recipe's, less its emotional-only case)."""


@dataclass(frozen=True)
class ConcatConfig:
    """Settings of :func:`concatenate_for_sed`.

    Parameters
    ----------
    n_utterances : how many to make (None: one per emotional utterance).
    patterns : patterns drawn uniformly per utterance, from :data:`PATTERNS`.
    seed : seed of every draw.
    sample_rate_hz : sample rate of the written wavs (and of ``load_wave``'s output).
    prefix : utterance id prefix.
    """

    n_utterances: int | None = None
    patterns: tuple[str, ...] = ("neu_emo_neu",)
    seed: int = 0
    sample_rate_hz: int = 16000
    prefix: str = "cat"

    def __post_init__(self) -> None:
        bad = [p for p in self.patterns if p not in PATTERNS]
        if bad or not self.patterns:
            raise ValueError(f"unknown pattern(s) {bad}; choose from {list(PATTERNS)}")
        if self.n_utterances is not None and self.n_utterances < 1:
            raise ValueError("n_utterances must be >= 1")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def concatenate_for_sed(
    manifest: pl.DataFrame,
    out_dir: str | Path,
    load_wave: Callable[[dict], np.ndarray],
    config: ConcatConfig = ConcatConfig(),
) -> Path:
    """Write neutral/emotional concatenations of one speaker's utterances and a ZED.json.

    Parameters
    ----------
    manifest : utterance-level manifest (``utt_id``, ``speaker``, ``emotion``, ...); only
        speakers with neutral and emotional (angry/happy/sad) utterances are used.
    out_dir : folder for ``<id>.wav`` files and ``ZED.json``.
    load_wave : row dict -> (n_samples,) float waveform at ``config.sample_rate_hz``.
    config : :class:`ConcatConfig`.

    Returns
    -------
    Path of the written ``ZED.json``. Each entry also records its ``sources`` (utt_ids).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    rows = manifest.filter(pl.col("emotion").is_in([*EMOTIONS, NEUTRAL])).sort("utt_id").to_dicts()
    by_speaker: dict[str, dict[str, list[dict]]] = {}
    for row in rows:
        kind = NEUTRAL if row["emotion"] == NEUTRAL else "emotion"
        by_speaker.setdefault(str(row["speaker"]), {NEUTRAL: [], "emotion": []})[kind].append(row)
    jobs = [(spk, r) for spk, d in sorted(by_speaker.items()) if d[NEUTRAL] for r in d["emotion"]]
    if not jobs:
        raise ValueError("no speaker has both neutral and emotional (angry/happy/sad) utterances")
    order = rng.permutation(len(jobs))
    if config.n_utterances is not None:
        order = order[: config.n_utterances]
    data: dict[str, dict] = {}
    for k, j in enumerate(order.tolist()):
        spk, emo_row = jobs[j]
        pattern = PATTERNS[config.patterns[int(rng.integers(len(config.patterns)))]]
        neutrals = by_speaker[spk][NEUTRAL]
        parts, ref_rms, start_s, end_s, sources = [], None, 0.0, 0.0, []
        for piece in pattern:
            row = emo_row if piece == "emotion" else neutrals[int(rng.integers(len(neutrals)))]
            wave = np.asarray(load_wave(row), dtype=np.float32).reshape(-1)
            level = _rms(wave)
            if ref_rms is None:
                ref_rms = level
            elif level > 0:
                wave = wave * (ref_rms / level)  # the recipe's loudness matching (dBFS)
            if piece == "emotion":
                start_s = sum(len(p) for p in parts) / config.sample_rate_hz
                end_s = start_s + len(wave) / config.sample_rate_hz
            parts.append(wave)
            sources.append(str(row["utt_id"]))
        audio = np.clip(np.concatenate(parts), -1.0, 1.0)
        utt_id = f"{config.prefix}{k:05d}_{emo_row['utt_id']}"
        path = out / f"{utt_id}.wav"
        tmp = path.with_name(path.stem + ".tmp.wav")
        sf.write(tmp, audio, config.sample_rate_hz, subtype="PCM_16")
        os.replace(tmp, path)
        data[utt_id] = {
            "wav": f"datafolder/{utt_id}.wav",
            "duration": len(audio) / config.sample_rate_hz,
            "emotion": [{"emo": emo_row["emotion"], "start": start_s, "end": end_s}],
            "transcription": "",
            "sources": sources,
        }
    json_path = out / "ZED.json"
    tmp = json_path.with_name("ZED.json.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, json_path)
    return json_path
