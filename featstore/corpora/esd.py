"""ESD (Emotional Speech Dataset): Mandarin speakers 0001-0010, English 0011-0020.

Layout (both accepted, and the official ``Emotion Speech Dataset/`` folder under the root)::

    <root>/<spk>/<Emotion>/<split>/<spk>_<NNNNNN>.wav     split: train / evaluation / test
    <root>/<spk>/<Emotion>/<spk>_<NNNNNN>.wav
    <root>/<spk>/<spk>.txt                               utt_id <TAB> text <TAB> emotion

The emotion folder is the label. ESD numbers files 000001-000350 Neutral, -000700 Angry,
-001050 Happy, -001400 Sad, -001750 Surprise; that rule is only a consistency check
(a mismatch is reported, never fatal). Transcripts come in several encodings (gb2312,
utf-16 with BOM, utf-8, latin-1) and hold some malformed lines; they are decoded line by
line when needed (BOM, then utf-8, then gb18030, then latin-1) and a bad line is skipped
with a warning. The demo corpus (``featstore synth``) writes this layout too, with any
speaker folder names: pass ``language`` for those.

A ``.wav`` not named ``<spk>_<NNNNNN>.wav`` after its speaker folder, or in a sub-folder
other than train/evaluation/test, is not an utterance (left out, reported). Files and
folders that are symbolic links out of the root are refused unopened unless
``allow_outside_root``.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import polars as pl

from featstore.corpora.base import (
    CorpusFormatError,
    CorpusNotFoundError,
    Prober,
    RootGuard,
    summarize,
    to_manifest,
    warn,
)

OFFICIAL_FOLDER = "Emotion Speech Dataset"
EMOTION_FOLDERS = ("angry", "happy", "neutral", "sad", "surprise")
INDEX_ORDER = ("neutral", "angry", "happy", "sad", "surprise")
"""Emotion of file numbers 1-350, 351-700, ... in ESD's own numbering."""
FILES_PER_EMOTION = 350
MALE_SPEAKERS = frozenset({"0004", "0005", "0006", "0008", "0010", "0011", "0012", "0013", "0014", "0020"})
TRANSCRIPT_EMOTIONS = {
    "中立": "neutral", "快乐": "happy", "伤心": "sad", "生气": "angry", "惊喜": "surprise",
    **{name: name for name in EMOTION_FOLDERS},
}
_UTT_RE = re.compile(r"^\S+_\d+$")
SPLIT_FOLDERS = ("train", "evaluation", "test")
"""The only sub-folders of an emotion folder that hold audio (any case)."""
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def speaker_language(speaker: str) -> str:
    """``cn`` for ESD speakers 0001-0010, ``en`` for 0011-0020."""
    number = int(speaker) if speaker.isdigit() else -1
    if 1 <= number <= 10:
        return "cn"
    if 11 <= number <= 20:
        return "en"
    raise CorpusFormatError(
        f"speaker folder {speaker!r} is not one of ESD's 0001-0020, so its language is "
        f"unknown: pass the language (--language, e.g. cn, en, de, yue)"
    )


def index_emotion(utt_id: str) -> str | None:
    """Emotion that ESD's numbering rule gives ``<spk>_<NNNNNN>``, None outside 1-1750."""
    number = int(utt_id.rsplit("_", 1)[-1])
    if 1 <= number <= FILES_PER_EMOTION * len(INDEX_ORDER):
        return INDEX_ORDER[(number - 1) // FILES_PER_EMOTION]
    return None


def decode_transcript(data: bytes, han: bool = True) -> list[str]:
    """Decode transcript bytes into lines: BOM, else utf-8, else gb18030 (when ``han``),
    else line by line with the same order ending in latin-1 (which never fails).

    ``han=False`` (English, German speakers) skips gb18030, which would happily turn
    latin-1 accents into Chinese characters.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace").splitlines()
    encodings = ("utf-8", "gb18030") if han else ("utf-8",)
    for encoding in encodings:
        try:
            return data.decode(encoding).splitlines()
        except UnicodeDecodeError:
            continue
    lines = []
    for raw in data.split(b"\n"):
        for encoding in (*encodings, "latin-1"):
            try:
                lines.append(raw.decode(encoding).rstrip("\r"))
                break
            except UnicodeDecodeError:
                continue
    return lines


def parse_transcript_line(line: str) -> tuple[str, str, str | None] | None:
    """``(utt_id, text, emotion or None)`` of one transcript line, None if malformed."""
    line = line.strip().lstrip("\ufeff")
    if "\t" in line:
        parts = [part.strip() for part in line.split("\t")]
        parts = [part for part in parts if part]
        if len(parts) < 2 or not _UTT_RE.match(parts[0]):
            return None
        emotion = TRANSCRIPT_EMOTIONS.get(parts[2].lower()) if len(parts) > 2 else None
        return parts[0], parts[1], emotion
    # some copies use spaces instead of tabs: the last word is the emotion if it is one
    tokens = line.split()
    if len(tokens) < 2 or not _UTT_RE.match(tokens[0]):
        return None
    emotion = TRANSCRIPT_EMOTIONS.get(tokens[-1].lower())
    text_tokens = tokens[1:-1] if emotion and len(tokens) > 2 else tokens[1:]
    return tokens[0], " ".join(text_tokens), emotion


def read_transcript(path: Path, han: bool) -> tuple[dict[str, tuple[str, str | None]], list[str]]:
    """Transcript of one speaker: ``{utt_id: (text, emotion)}`` and the malformed lines."""
    entries: dict[str, tuple[str, str | None]] = {}
    malformed: list[str] = []
    for number, line in enumerate(decode_transcript(path.read_bytes(), han=han), start=1):
        if not line.strip():
            continue
        parsed = parse_transcript_line(line)
        if parsed is None:
            malformed.append(f"{path.name}:{number}")
            continue
        entries[parsed[0]] = (parsed[1], parsed[2])
    return entries, malformed


def _emotion_dirs(speaker_dir: Path, guard: RootGuard | None = None) -> list[Path]:
    return sorted(d for d in speaker_dir.iterdir() if d.is_dir() and d.name.lower() in EMOTION_FOLDERS
                  and (guard is None or guard.readable(d)))


def _speaker_dirs(folder: Path, guard: RootGuard | None = None) -> list[Path]:
    return sorted(d for d in folder.iterdir()
                  if d.is_dir() and not d.name.startswith(".") and (guard is None or guard.readable(d))
                  and _emotion_dirs(d, guard))


def find_esd_root(root: Path) -> Path:
    """The folder holding the speaker folders: ``root``, ``root/Emotion Speech Dataset``
    or a single sub-folder of ``root``."""
    if not root.is_dir():
        raise CorpusNotFoundError(_missing_message(root))
    for candidate in (root / OFFICIAL_FOLDER, root):
        if candidate.is_dir() and _speaker_dirs(candidate):
            return candidate
    # one level down (a zip unpacked into its own folder); several trees there (the demo's
    # per-language folders) are distinct corpora, so refuse to pick one silently
    below = [d for d in sorted(root.iterdir()) if d.is_dir() and _speaker_dirs(d)]
    below += [d / OFFICIAL_FOLDER for d in sorted(root.iterdir())
              if (d / OFFICIAL_FOLDER).is_dir() and _speaker_dirs(d / OFFICIAL_FOLDER)]
    if len(below) == 1:
        return below[0]
    if len(below) > 1:
        names = ", ".join(str(d.relative_to(root)) for d in below)
        raise CorpusNotFoundError(f"several ESD-layout trees under {root} ({names}): prepare each "
                                  f"one separately, e.g. --root {below[0]} --name <corpus>")
    raise CorpusNotFoundError(_missing_message(root))


def _missing_message(root: Path) -> str:
    return (f"ESD not found under {root}: expected speaker folders 0001 ... 0020, each holding "
            f"Angry/ Happy/ Neutral/ Sad/ Surprise/ folders of <spk>_<NNNNNN>.wav (optionally inside "
            f"train/ evaluation/ test/) and a transcript <spk>/<spk>.txt, either directly in "
            f"{root} or in '{root / OFFICIAL_FOLDER}/'")


def file_name_ok(stem: str, speaker: str) -> bool:
    """True when ``stem`` follows ESD's naming ``<spk>_<NNNNNN>`` for the speaker folder."""
    return re.fullmatch(rf"{re.escape(speaker)}_\d{{6}}", stem) is not None


def _wav_files(emotion_dir: Path, stray: list[str], base: Path, guard: RootGuard
               ) -> list[tuple[Path, str | None]]:
    found = [(p, None) for p in sorted(emotion_dir.glob("*.wav"))]
    for split_dir in sorted(d for d in emotion_dir.iterdir() if d.is_dir()):
        if split_dir.name.lower() not in SPLIT_FOLDERS:
            if not split_dir.name.startswith("."):
                stray.append(f"{split_dir.relative_to(base)}/ (not one of {', '.join(SPLIT_FOLDERS)})")
            continue
        if not guard.readable(split_dir):
            continue
        found += [(p, split_dir.name) for p in sorted(split_dir.glob("*.wav"))]
    return [(p, split) for p, split in found if not p.name.startswith("._")]


def read_esd(root: Path, name: str = "esd", language: str | None = None,
             allow_outside_root: bool = False) -> pl.DataFrame:
    """Manifest of an ESD tree (see the module docstring for the layout).

    Parameters
    ----------
    root : Path
        Folder holding the speaker folders, or its parent ``Emotion Speech Dataset/``.
    name : str
        Corpus name written to the ``corpus`` column.
    language : str, optional
        Language code for every speaker (demo corpora, dialect stand-ins). Without it the
        language comes from ESD's speaker number (0001-0010 ``cn``, 0011-0020 ``en``),
        gender from ESD's speaker list and file numbers are checked against the folders.
    allow_outside_root : bool
        Admit wav files (or folders) that are symbolic links pointing out of ``root``;
        by default they are refused unopened (:class:`~featstore.corpora.base.RootGuard`).

    A ``.wav`` not named ``<spk>_<NNNNNN>.wav`` after its speaker folder, or lying in a
    sub-folder other than train/evaluation/test, is not an utterance: it is left out and
    reported in one warning.

    Returns
    -------
    pl.DataFrame
        Manifest with extras ``gender`` (ESD speakers only), ``text`` and ``esd_split``.
    """
    base = find_esd_root(Path(root))
    guard = RootGuard(Path(root), allow_outside_root)
    if not guard.readable(base):
        raise CorpusNotFoundError(f"{base}: leaves the corpus root {guard.root} (symbolic link out); "
                                  f"pass --allow-outside-root to read it")
    stray: list[str] = []
    probe = Prober()
    rows: list[dict] = []
    malformed: list[str] = []
    index_mismatch: list[str] = []
    text_mismatch: list[str] = []
    duplicates: list[str] = []
    seen: set[str] = set()
    for speaker_dir in _speaker_dirs(base, guard):
        speaker = speaker_dir.name
        lang = language or speaker_language(speaker)
        transcript_path = speaker_dir / f"{speaker}.txt"
        transcript: dict[str, tuple[str, str | None]] = {}
        if transcript_path.is_file() and guard.readable(transcript_path):
            transcript, bad_lines = read_transcript(transcript_path, han=lang not in ("en", "de"))
            malformed += bad_lines
        stray += [str(d.relative_to(base)) + "/" for d in sorted(speaker_dir.iterdir())
                  if d.is_dir() and not d.name.startswith(".") and d.name.lower() not in EMOTION_FOLDERS]
        for emotion_dir in _emotion_dirs(speaker_dir, guard):
            emotion = emotion_dir.name.lower()
            for path, split in _wav_files(emotion_dir, stray, base, guard):
                utt_id = path.stem
                if not file_name_ok(utt_id, speaker):
                    stray.append(str(path.relative_to(base)))
                    continue
                if utt_id in seen:
                    duplicates.append(str(path.relative_to(base)))
                    continue
                seen.add(utt_id)
                if language is None and _UTT_RE.match(utt_id) and index_emotion(utt_id) != emotion:
                    index_mismatch.append(f"{utt_id} in {emotion_dir.name}/")
                text, said_emotion = transcript.get(utt_id, (None, None))
                if said_emotion is not None and said_emotion != emotion:
                    text_mismatch.append(f"{utt_id} ({said_emotion} vs {emotion_dir.name}/)")
                stored = guard.admit(path, utt_id)
                if stored is None:
                    continue
                duration_s, sample_rate_hz = probe(stored)
                rows.append({
                    "utt_id": utt_id, "corpus": name, "language": lang, "speaker": speaker,
                    "emotion": emotion, "label": emotion_dir.name, "path": str(stored),
                    "duration": duration_s, "sample_rate": sample_rate_hz,
                    "gender": ("M" if speaker in MALE_SPEAKERS else "F") if language is None else None,
                    "text": text, "esd_split": split,
                })
    probe.report(name)
    guard.report(name)
    if stray:
        warn(f"{name}: {len(stray)} file(s) or folder(s) not in ESD's naming scheme "
             f"(<spk>/<Emotion>/[train|evaluation|test/]<spk>_<NNNNNN>.wav), not utterances, "
             f"ignored: {summarize(stray)}")
    if malformed:
        warn(f"{name}: skipped {len(malformed)} malformed transcript line(s): {summarize(malformed)}")
    if index_mismatch:
        warn(f"{name}: {len(index_mismatch)} file(s) whose number disagrees with ESD's numbering "
             f"rule; the folder is kept as the label: {summarize(index_mismatch)}")
    if text_mismatch:
        warn(f"{name}: {len(text_mismatch)} transcript emotion(s) differ from the folder; the "
             f"folder is kept: {summarize(text_mismatch)}")
    if duplicates:
        warn(f"{name}: {len(duplicates)} duplicate file name(s) ignored: {summarize(duplicates)}")
    return to_manifest(rows, {"esd_split": pl.Utf8},
                       f"ESD under {base}: speaker folders found but no .wav file in them")
