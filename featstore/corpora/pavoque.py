"""PAVOQUE: German, one male actor, five speaking styles (angry happy neutral poker sad).

Two layouts are accepted:

``release``
    One long FLAC per style, ``pavoque-<style>.flac`` (44.1 kHz mono), and one YAML per
    style, ``pavoque-<style>.yaml``: a list of items with ``prompt``, ``text``, ``style``,
    ``start`` and ``end`` (seconds in that FLAC) and optional ``segments``. Each item
    becomes a row whose ``path`` is the FLAC and whose ``start``/``end`` select the
    stretch: nothing is copied, :func:`featstore.audio.load_audio` seeks to the stretch.
    ``pavoque-outtakes.*`` are not utterances of the corpus and are ignored.
``extracted``
    A folder (searched recursively) of ``<prompt>-<style>.wav`` files, the names the
    paper's split files use (``spike0013-angry.wav``).

In both, ``utt_id`` is ``<prompt>-<style>`` (the split files' names without ``.wav``), the
style is the label, and ``poker`` is kept as its own fifth emotion.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import soundfile as sf
import yaml

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
from featstore.errors import UnsafeIdError, safe_file_stem
from featstore.io import atomic_write

STYLES = ("angry", "happy", "neutral", "poker", "sad")
LAYOUTS = ("auto", "release", "extracted")
SPEAKER = "pavoque"
_EXTRACTED_RE = re.compile(rf"^(?P<prompt>[A-Za-z][A-Za-z0-9_]*)-(?P<style>{'|'.join(STYLES)})$")
"""``<prompt>-<style>``: a prompt of letters, digits and ``_`` (spike0013, m0103, poker_x01)."""
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _row(name: str, utt_id: str, style: str, path: Path, duration_s: float, sample_rate_hz: int,
         start_s: float | None = None, end_s: float | None = None, text: str | None = None) -> dict:
    return {
        "utt_id": utt_id, "corpus": name, "language": "de", "speaker": SPEAKER,
        "emotion": style.lower(), "label": style, "path": str(path),
        "start": start_s, "end": end_s, "duration": duration_s, "sample_rate": sample_rate_hz,
        "gender": "M", "text": text,
    }


def _release_yamls(root: Path) -> list[Path]:
    found = [p for p in (*root.glob("pavoque-*.yaml"), *root.glob("*/pavoque-*.yaml"))
             if p.stem.removeprefix("pavoque-") in STYLES]
    return sorted(found)


def load_style_yaml(path: Path) -> list[dict]:
    """Items of one ``pavoque-<style>.yaml`` (a list of mappings)."""
    try:
        items = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except UnicodeDecodeError as err:
        raise CorpusFormatError(f"{path}: not UTF-8 text ({err})") from err
    except yaml.YAMLError as err:
        raise CorpusFormatError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(items, list):
        raise CorpusFormatError(f"{path}: expected a list of utterances (prompt, text, style, "
                                f"start, end), found {type(items).__name__}")
    return items


def _read_release(root: Path, name: str, guard: RootGuard) -> list[dict]:
    probe = Prober()
    rows: list[dict] = []
    seen: set[str] = set()
    problems: list[str] = []
    for yaml_path in _release_yamls(root):
        style = yaml_path.stem.removeprefix("pavoque-")
        flac = yaml_path.with_suffix(".flac")
        if not guard.readable(yaml_path):
            continue
        if not flac.is_file():
            warn(f"{name}: {yaml_path.name} has no {flac.name} beside it; style {style} skipped")
            continue
        stored = guard.admit(flac, flac.stem)
        if stored is None:
            continue
        file_duration_s, sample_rate_hz = probe(stored)
        for number, item in enumerate(load_style_yaml(yaml_path)):
            where = f"{yaml_path.name} item {number}"
            if not isinstance(item, dict):
                problems.append(f"{where}: not a mapping")
                continue
            try:
                prompt = str(item["prompt"])
                start_s, end_s = float(item["start"]), float(item["end"])
            except (KeyError, TypeError, ValueError):
                problems.append(f"{where}: no prompt/start/end")
                continue
            if str(item.get("style", style)).lower() != style:
                problems.append(f"{where}: style {item.get('style')!r} in the {style} file")
            utt_id = f"{prompt}-{style}"
            if end_s <= start_s:
                problems.append(f"{where} ({utt_id}): end {end_s} <= start {start_s}")
                continue
            if file_duration_s and end_s > file_duration_s + 0.01:
                problems.append(f"{where} ({utt_id}): ends at {end_s} s after the FLAC's "
                                f"{file_duration_s:.2f} s")
            if utt_id in seen:
                problems.append(f"{where}: duplicate {utt_id}, first kept")
                continue
            seen.add(utt_id)
            text = item.get("text")
            rows.append(_row(name, utt_id, style, stored, end_s - start_s, sample_rate_hz,
                             start_s, end_s, None if text is None else str(text)))
    probe.report(name)
    if problems:
        warn(f"{name}: {len(problems)} odd YAML item(s): {summarize(problems)}")
    flag_unsafe_ids([r["utt_id"] for r in rows], name, "the YAML files (prompt-style)")
    return rows


def _read_extracted(root: Path, name: str, guard: RootGuard) -> list[dict]:
    probe = Prober()
    rows: list[dict] = []
    ignored: list[str] = []
    seen: set[str] = set()
    for path in sorted(root.rglob("*.wav")):
        if path.name.startswith("._"):
            continue
        match = _EXTRACTED_RE.match(path.stem)
        if match is None or path.stem in seen:
            ignored.append(str(path.relative_to(root)))
            continue
        seen.add(path.stem)
        stored = guard.admit(path, path.stem)
        if stored is None:
            continue
        duration_s, sample_rate_hz = probe(stored)
        rows.append(_row(name, path.stem, match["style"], stored, duration_s, sample_rate_hz))
    probe.report(name)
    if ignored:
        warn(f"{name}: {len(ignored)} wav file(s) not named <prompt>-<style>.wav (style one of "
             f"{', '.join(STYLES)}) or duplicated, ignored: {summarize(ignored)}")
    return rows


def read_pavoque(root: Path, name: str = "pavoque", layout: str = "auto",
                 allow_outside_root: bool = False) -> pl.DataFrame:
    """Manifest of PAVOQUE, from the release (FLAC + YAML) or from extracted wav files.

    Parameters
    ----------
    root : Path
        Folder of ``pavoque-<style>.{flac,yaml}`` or of ``<prompt>-<style>.wav`` files.
    name : str
        Corpus name written to the ``corpus`` column.
    layout : {"auto", "release", "extracted"}
        ``auto`` takes the release when a ``pavoque-<style>.yaml`` is present.
    allow_outside_root : bool
        Admit audio/YAML files that are symbolic links out of ``root`` (default: refused
        unopened, see :class:`~featstore.corpora.base.RootGuard`).

    Returns
    -------
    pl.DataFrame
        Manifest; release rows carry ``start``/``end`` (seconds in the FLAC).
    """
    root = Path(root)
    if layout not in LAYOUTS:
        raise CorpusFormatError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    message = (f"PAVOQUE not found under {root}: expected the release files "
               f"pavoque-<style>.flac with pavoque-<style>.yaml (style one of {', '.join(STYLES)}), "
               f"or a folder of extracted <prompt>-<style>.wav files such as spike0013-angry.wav")
    if not root.is_dir():
        raise CorpusNotFoundError(message)
    use_release = layout == "release" or (layout == "auto" and _release_yamls(root))
    guard = RootGuard(root, allow_outside_root)
    rows = _read_release(root, name, guard) if use_release else _read_extracted(root, name, guard)
    guard.report(name)
    return to_manifest(rows, {"gender": pl.Utf8, "text": pl.Utf8}, message)


def extract_release(frame: pl.DataFrame, out_dir: Path) -> list[Path]:
    """Write each stretch of a release manifest as ``<out_dir>/<utt_id>.wav`` (the extracted
    layout), only when a user asks for a copy (e.g. to serve files to listeners).

    Samples are copied bit-exactly as integers at the FLAC's own rate and bit depth; an
    existing file is left alone. Rows without ``start``/``end`` are skipped, and so are
    stretches that start after the end of their FLAC (reported in one warning).

    Returns
    -------
    list of Path
        The wav files written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    outside: list[str] = []
    unsafe: list[str] = []
    stretches = frame.filter(pl.col("start").is_not_null() & pl.col("end").is_not_null())
    for path, group in stretches.group_by("path", maintain_order=True):
        with sf.SoundFile(str(path[0])) as source:
            subtype = source.subtype if source.subtype in ("PCM_16", "PCM_24") else "PCM_24"
            for row in group.iter_rows(named=True):
                try:
                    target = out_dir / f"{safe_file_stem(row['utt_id'], 'utt_id')}.wav"
                except UnsafeIdError:
                    unsafe.append(repr(row["utt_id"]))
                    continue
                if target.exists():
                    continue
                first = int(round(row["start"] * source.samplerate))
                last = min(int(round(row["end"] * source.samplerate)), source.frames)
                if last <= first:
                    outside.append(f"{row['utt_id']} ({row['start']}-{row['end']} s)")
                    continue
                source.seek(first)
                data = source.read(last - first, dtype="int32")
                atomic_write(target, lambda tmp, d=data, sr=source.samplerate, st=subtype:
                             sf.write(str(tmp), d, sr, subtype=st, format="WAV"))
                written.append(target)
    if unsafe:
        warn(f"{len(unsafe)} utt_id(s) cannot be used as file names in {out_dir}, not written: "
             f"{summarize(unsafe)}")
    if outside:
        warn(f"{len(outside)} stretch(es) outside their FLAC, not written: {summarize(outside)}")
    return written
