"""ZED (Zaion Emotion Dataset): English, one emotional event per utterance, for speech
emotion diarization.

Layout: ``ZED.json`` plus wav files. The json maps each utterance id to::

    {"wav": "datafolder/<...>.wav", "duration": 5.2,
     "emotion": [{"emo": "angry", "start": 1.2, "end": 3.4}], "transcription": "..."}

``datafolder`` stands for the folder holding the json. Around the event the speech is
neutral. Label spellings are UNCONFIRMED: they are matched case-insensitively through
:data:`LABEL_ALIASES`; any other label stops the reader with a message naming the file,
the utterance and the label. The manifest's ``emotion`` is the event's emotion and the
``events`` column keeps every event as JSON ``[{"emotion", "start", "end"}]`` (seconds).
Utterances whose wav is missing are reported and left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from featstore.corpora.base import (
    CorpusFormatError,
    CorpusNotFoundError,
    Prober,
    RootGuard,
    flag_unsafe_ids,
    summarize,
    to_manifest,
    warn,
)

JSON_NAME = "ZED.json"
LABEL_ALIASES = {
    "angry": "angry", "anger": "angry", "ang": "angry",
    "happy": "happy", "happiness": "happy", "hap": "happy", "joy": "happy",
    "sad": "sad", "sadness": "sad",
    "neutral": "neutral", "neu": "neutral",
}
"""Accepted spellings (lower-cased) -> canonical emotion."""
_PREFIXES = ("datafolder/", "{data_root}/", "$data_root/")


def find_zed_json(root: Path) -> Path:
    """``root`` itself if it is the json, else ``root/ZED.json``, else the first one below."""
    if root.is_file():
        return root
    direct = root / JSON_NAME
    if direct.is_file():
        return direct
    found = sorted(root.rglob(JSON_NAME)) if root.is_dir() else []
    if not found:
        raise CorpusNotFoundError(
            f"ZED not found under {root}: expected {JSON_NAME} (utterance id -> wav, duration, "
            f"emotion events, transcription) with its wav files, as unpacked from ZED's zip"
        )
    return found[0]


def map_label(label: str, source: Path, utt_id: str) -> str:
    """Canonical emotion of a ZED label, or a :class:`CorpusFormatError` naming it."""
    emotion = LABEL_ALIASES.get(str(label).strip().lower())
    if emotion is None:
        raise CorpusFormatError(
            f"{source}: utterance {utt_id!r} has unknown emotion label {label!r}; "
            f"known labels (any case): {', '.join(sorted(LABEL_ALIASES))}"
        )
    return emotion


def _audio_path(wav: str, folder: Path) -> Path:
    for prefix in _PREFIXES:
        if wav.startswith(prefix):
            return folder / wav[len(prefix):]
    path = Path(wav)
    return path if path.is_absolute() else folder / path


def _events(item: dict, source: Path, utt_id: str) -> tuple[list[dict], str, str]:
    raw = item.get("emotion")
    if not isinstance(raw, list) or not raw:
        raise CorpusFormatError(f"{source}: utterance {utt_id!r} has no 'emotion' event list")
    events = []
    for event in raw:
        try:
            label = event["emo"]
            start_s, end_s = float(event["start"]), float(event["end"])
        except (KeyError, TypeError, ValueError) as err:
            raise CorpusFormatError(f"{source}: utterance {utt_id!r}: event {event!r} needs "
                                    f"'emo', 'start' and 'end'") from err
        events.append({"emotion": map_label(label, source, utt_id), "start": start_s, "end": end_s,
                       "label": str(label)})
    emotional = {e["emotion"] for e in events if e["emotion"] != "neutral"}
    if len(emotional) > 1:
        raise CorpusFormatError(f"{source}: utterance {utt_id!r} has events of several emotions "
                                f"{sorted(emotional)}; ZED has one emotional event per utterance")
    main = next((e for e in events if e["emotion"] != "neutral"), events[0])
    return [{k: e[k] for k in ("emotion", "start", "end")} for e in events], main["emotion"], main["label"]


def _unique_keys(source: Path) -> object:
    def hook(pairs: list[tuple[str, object]]) -> dict:
        seen: dict[str, object] = {}
        for key, value in pairs:
            if key in seen:
                raise CorpusFormatError(f"{source}: key {key!r} appears twice in one object "
                                        f"(duplicate utterance id?); each utterance once")
            seen[key] = value
        return seen
    return hook


def read_zed(root: Path, name: str = "zed", allow_outside_root: bool = False) -> pl.DataFrame:
    """Manifest of ZED.

    Parameters
    ----------
    root : Path
        Folder holding ``ZED.json`` (or the json file itself).
    name : str
        Corpus name written to the ``corpus`` column.
    allow_outside_root : bool
        Admit ``wav`` entries that leave the corpus folder (``..``, absolute paths
        elsewhere, symbolic links out); by default they are refused unopened (see
        :class:`~featstore.corpora.base.RootGuard`).

    An empty or duplicated utterance id is a :class:`CorpusFormatError`; ids that cannot
    be used as file names are reported in a warning.

    Returns
    -------
    pl.DataFrame
        Manifest with ``events`` (JSON list of ``{"emotion", "start", "end"}``, seconds)
        and ``text``; speaker ``zed`` for every row (ZED names no speakers).
    """
    source = find_zed_json(Path(root))
    guard = RootGuard(Path(root) if Path(root).is_dir() else source.parent, allow_outside_root)
    if not guard.readable(source):
        raise CorpusFormatError(f"{source}: leaves the corpus root {guard.root} (symbolic link out); "
                                f"pass --allow-outside-root to read it")
    try:
        data = json.loads(source.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys(source))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorpusFormatError(f"{source}: not valid JSON: {err}") from err
    except RecursionError as err:
        raise CorpusFormatError(f"{source}: JSON nested too deeply") from err
    if not isinstance(data, dict):
        raise CorpusFormatError(f"{source}: expected an object {{utt_id: {{wav, duration, emotion}}}}")
    probe = Prober()
    rows: list[dict] = []
    missing: list[str] = []
    for utt_id, item in data.items():
        if not str(utt_id).strip():
            raise CorpusFormatError(f"{source}: an utterance has an empty id {utt_id!r}")
        if not isinstance(item, dict) or "wav" not in item:
            raise CorpusFormatError(f"{source}: utterance {utt_id!r} has no 'wav' entry")
        events, emotion, label = _events(item, source, utt_id)
        if not isinstance(item["wav"], str) or not item["wav"].strip():
            raise CorpusFormatError(f"{source}: utterance {utt_id!r}: 'wav' {item['wav']!r} is not a path")
        stored = guard.admit(_audio_path(item["wav"], source.parent), utt_id)
        if stored is None:
            continue
        path = stored
        if not path.is_file():
            missing.append(utt_id)
            continue
        duration_s, sample_rate_hz = probe(path)
        if item.get("duration") is not None:
            try:
                duration_s = float(item["duration"])
            except (TypeError, ValueError) as err:
                raise CorpusFormatError(f"{source}: utterance {utt_id!r}: duration {item['duration']!r} "
                                        f"is not a number of seconds") from err
        text = item.get("transcription")
        rows.append({
            "utt_id": str(utt_id), "corpus": name, "language": "en", "speaker": "zed",
            "emotion": emotion, "label": label, "path": str(path),
            "duration": duration_s, "sample_rate": sample_rate_hz,
            "text": None if text is None else str(text), "events": json.dumps(events),
        })
    probe.report(name)
    guard.report(name)
    flag_unsafe_ids([r["utt_id"] for r in rows], name, source.name)
    if missing:
        warn(f"{name}: {len(missing)} utterance(s) of {source.name} have no wav file, left out: "
             f"{summarize(missing)}")
    return to_manifest(rows, {"text": pl.Utf8}, f"ZED in {source}: no utterance with a wav file")
