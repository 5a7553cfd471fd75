"""IEMOCAP: English, 5 sessions of dyadic dialogs, 10 speakers.

Layout::

    <root>/SessionN/sentences/wav/<dialog>/<utt>.wav
    <root>/SessionN/dialog/EmoEvaluation/<dialog>.txt     consensus labels (not Categorical/)
    <root>/SessionN/dialog/transcriptions/<dialog>.txt    optional, gives ``text``

Only the consensus lines of EmoEvaluation files are read::

    [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]

(header lines starting with ``%`` and per-rater lines ``C-E2: ...`` are ignored). The
speaker is the session plus the first letter of the utterance name's LAST ``_`` token:
in ``Ses01F_impro01_M012`` the male actor speaks, although the dialog is ``Ses01F_...``.
Dialogs may carry suffixes (``Ses03M_impro05a``, ``Ses05M_script01_1b``); the dialog is
always ``utt.rsplit('_', 1)[0]``. ``exc`` (excited) maps to ``happy`` (label kept ``exc``).
macOS ``._*`` files are skipped. Utterances whose wav is missing are reported in a
warning and left out (``keep_missing=True`` keeps them, for the audio check to name).
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from featstore.corpora.base import (
    CorpusNotFoundError,
    Prober,
    RootGuard,
    normal_path,
    summarize,
    to_manifest,
    warn,
)

LABEL_EMOTIONS = {
    "ang": "angry", "hap": "happy", "exc": "happy", "sad": "sad", "neu": "neutral",
    "fru": "frustrated", "sur": "surprise", "fea": "fear", "dis": "disgust", "oth": "other",
    "xxx": "no_agreement",
}
"""EmoEvaluation codes -> emotion; ``xxx`` means the raters reached no majority."""
_SESSION_RE = re.compile(r"^Session(\d+)$")
_LINE_RE = re.compile(
    r"^\[\s*(?P<start>[\d.]+)\s*-\s*(?P<end>[\d.]+)\s*\]\s+(?P<utt>\S+)"
    r"\s+(?P<label>\S+)\s+\[(?P<vad>[^\]]*)\]"
)
UTT_RE = re.compile(r"^Ses\d\d[FM]_(?:impro|script)[A-Za-z0-9_]*_[FM]\d+$")
"""IEMOCAP's utterance names (``Ses01F_impro01_F000``, ``Ses05M_script01_1b_M012``);
a label line naming anything else is not an utterance (reported, left out)."""
_TEXT_RE = re.compile(r"^(?P<utt>Ses\S+)\s+\[[^\]]*\]:\s*(?P<text>.*)$")


def parse_utterance_name(utt_id: str) -> dict:
    """Session, speaker, gender, dialog and mode of an IEMOCAP utterance name.

    >>> parse_utterance_name("Ses01F_script01_1_M012")["speaker"]
    'Ses01M'
    """
    session = int(utt_id[3:5])
    dialog, last = utt_id.rsplit("_", 1)
    gender = last[0]
    mode = "improvised" if "impro" in dialog else "scripted" if "script" in dialog else None
    return {"session": session, "speaker": f"Ses{session:02d}{gender}", "gender": gender,
            "dialog": dialog, "mode": mode}


def parse_emo_evaluation(text: str) -> list[dict]:
    """Consensus lines of one EmoEvaluation file: ``utt_id, label, dialog_start,
    dialog_end`` (seconds in the dialog recording) and ``valence, activation, dominance``."""
    entries = []
    for line in text.splitlines():
        match = _LINE_RE.match(line.strip())
        if match is None:
            continue
        vad = [float(v) for v in match["vad"].split(",") if v.strip()]
        vad += [float("nan")] * (3 - len(vad))
        entries.append({
            "utt_id": match["utt"], "label": match["label"],
            "dialog_start": float(match["start"]), "dialog_end": float(match["end"]),
            "valence": vad[0], "activation": vad[1], "dominance": vad[2],
        })
    return entries


def _read_transcriptions(folder: Path, guard: RootGuard) -> dict[str, str]:
    texts: dict[str, str] = {}
    if not folder.is_dir():
        return texts
    for path in sorted(folder.glob("*.txt")):
        if path.name.startswith("._") or not guard.readable(path):
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            match = _TEXT_RE.match(line.strip())
            if match:
                texts[match["utt"]] = match["text"].strip()
    return texts


def _session_dirs(root: Path) -> list[Path]:
    for candidate in (root, *sorted(d for d in root.iterdir() if d.is_dir())):
        found = sorted(d for d in candidate.iterdir() if d.is_dir() and _SESSION_RE.match(d.name))
        if found:
            return found
    return []


def read_iemocap(root: Path, name: str = "iemocap", keep_missing: bool = False,
                 allow_outside_root: bool = False) -> pl.DataFrame:
    """Manifest of IEMOCAP (see the module docstring for layout and rules).

    Parameters
    ----------
    root : Path
        Folder holding ``Session1`` ... ``Session5`` (or its parent).
    name : str
        Corpus name written to the ``corpus`` column.
    keep_missing : bool
        Keep labelled utterances whose wav is missing (duration 0) instead of leaving
        them out; both ways they are reported.
    allow_outside_root : bool
        Admit wav/label files that are symbolic links out of ``root`` (default: refused
        unopened, see :class:`~featstore.corpora.base.RootGuard`).

    A label line whose utterance name is not IEMOCAP's (:data:`UTT_RE`) is reported and
    left out, so no name can build a path out of the session folder.

    Returns
    -------
    pl.DataFrame
        Manifest with extras ``session``, ``mode``, ``gender``, ``text``, ``dialog``,
        ``dialog_start``/``dialog_end`` (seconds in the dialog recording) and
        ``valence``/``activation``/``dominance``.
    """
    root = Path(root)
    message = (f"IEMOCAP not found under {root}: expected Session1 ... Session5 folders, each "
               f"with dialog/EmoEvaluation/<dialog>.txt label files and "
               f"sentences/wav/<dialog>/<utt>.wav audio")
    if not root.is_dir():
        raise CorpusNotFoundError(message)
    probe = Prober()
    guard = RootGuard(root, allow_outside_root)
    rows: list[dict] = []
    missing: list[str] = []
    odd: list[str] = []
    stray: list[str] = []
    seen: set[str] = set()
    for session_dir in _session_dirs(root):
        texts = _read_transcriptions(session_dir / "dialog" / "transcriptions", guard)
        for label_file in sorted((session_dir / "dialog" / "EmoEvaluation").glob("*.txt")):
            if label_file.name.startswith("._") or not guard.readable(label_file):
                continue
            text = label_file.read_text(encoding="utf-8", errors="replace")
            for entry in parse_emo_evaluation(text):
                utt_id = entry["utt_id"]
                if not UTT_RE.match(utt_id):
                    stray.append(f"{label_file.name}: {utt_id!r}")
                    continue
                if utt_id in seen:
                    odd.append(f"{utt_id} labelled twice ({label_file.name})")
                    continue
                seen.add(utt_id)
                info = parse_utterance_name(utt_id)
                if f"Session{info['session']}" != session_dir.name:
                    odd.append(f"{utt_id} in {session_dir.name}")
                code = entry["label"]
                emotion = LABEL_EMOTIONS.get(code.lower())
                if emotion is None:
                    odd.append(f"{utt_id}: unknown label code {code!r} kept as its own emotion")
                    emotion = code.lower()
                wav = session_dir / "sentences" / "wav" / info["dialog"] / f"{utt_id}.wav"
                if wav.is_symlink() or wav.is_file():
                    stored = guard.admit(wav, utt_id)
                    if stored is None:
                        continue
                    wav = stored
                if not wav.is_file():
                    missing.append(utt_id)
                    if not keep_missing:
                        continue
                    duration_s, sample_rate_hz = 0.0, 0
                else:
                    duration_s, sample_rate_hz = probe(wav)
                rows.append({
                    "utt_id": utt_id, "corpus": name, "language": "en", "speaker": info["speaker"],
                    "emotion": emotion, "label": code, "path": str(normal_path(wav)),
                    "duration": duration_s, "sample_rate": sample_rate_hz,
                    "session": info["session"], "mode": info["mode"], "gender": info["gender"],
                    "text": texts.get(utt_id), "dialog": info["dialog"],
                    **{k: entry[k] for k in ("dialog_start", "dialog_end", "valence", "activation",
                                             "dominance")},
                })
    probe.report(name)
    guard.report(name)
    if stray:
        warn(f"{name}: {len(stray)} label line(s) name no IEMOCAP utterance "
             f"(Ses<NN><F|M>_<impro|script>..._<F|M><NNN>), left out: {summarize(stray)}")
    if missing:
        action = "kept with duration 0" if keep_missing else "left out"
        warn(f"{name}: {len(missing)} labelled utterance(s) have no wav under "
             f"SessionN/sentences/wav/<dialog>/, {action}: {summarize(missing)}")
    if odd:
        warn(f"{name}: {len(odd)} odd label line(s): {summarize(odd)}")
    extras = {"dialog": pl.Utf8, **{k: pl.Float64 for k in ("dialog_start", "dialog_end", "valence",
                                                            "activation", "dominance")}}
    return to_manifest(rows, extras, message)
