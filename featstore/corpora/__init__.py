"""Corpus readers and their registry.

Each reader turns one corpus layout into a manifest (:mod:`featstore.manifest`) and
takes ``allow_outside_root`` (default False): audio paths leaving the root are refused
unopened (:class:`RootGuard`, :class:`OutsideRootWarning`). The
registry :data:`READERS` is explicit: adding a corpus means writing its module and one
entry below. :func:`featstore.corpora.prepare.prepare_corpus` runs a reader and saves the
manifest (``featstore prepare``).
"""

from __future__ import annotations

from featstore.corpora.base import (
    CorpusFormatError,
    CorpusNotFoundError,
    CorpusWarning,
    OutsideRootWarning,
    ReaderSpec,
    RootGuard,
)
from featstore.corpora.esd import read_esd
from featstore.corpora.iemocap import read_iemocap
from featstore.corpora.pavoque import read_pavoque
from featstore.corpora.table import read_table
from featstore.corpora.zed import read_zed

_LANGUAGE_HELP = "language code for every utterance (cn, de, en, tj, yue ...)"

READERS: dict[str, ReaderSpec] = {
    "esd": ReaderSpec(
        name="esd",
        description="ESD: 20 speakers (0001-0010 Mandarin, 0011-0020 English), 5 emotions; "
                    "also the demo corpus (ESD layout)",
        languages=("cn", "en"),
        read=read_esd,
        options={"language": _LANGUAGE_HELP + "; default from ESD's speaker number"},
    ),
    "pavoque": ReaderSpec(
        name="pavoque",
        description="PAVOQUE: German, one male actor, 5 styles (poker kept); release FLAC+YAML "
                    "or extracted <prompt>-<style>.wav",
        languages=("de",),
        read=read_pavoque,
        options={"layout": "auto, release (FLAC + YAML) or extracted (wav folder); default auto"},
    ),
    "iemocap": ReaderSpec(
        name="iemocap",
        description="IEMOCAP: English, 5 sessions, 10 speakers; EmoEvaluation consensus labels "
                    "(exc -> happy), improvised/scripted",
        languages=("en",),
        read=read_iemocap,
        options={"keep_missing": "keep labelled utterances without wav (true/false); default false"},
    ),
    "zed": ReaderSpec(
        name="zed",
        description="ZED: English, one emotional event per utterance (speech emotion diarization)",
        languages=("en",),
        read=read_zed,
    ),
    "table": ReaderSpec(
        name="table",
        description="Any other corpus (e.g. the Tianjin dialect corpus): CSV/TSV/JSONL with path "
                    "and label, optional label map",
        languages=("any",),
        read=read_table,
        options={"language": _LANGUAGE_HELP + "; default the table's language column",
                 "label_map": "original=emotion pairs, e.g. negation=angry,expectation=happy"},
        needs_name=True,
    ),
}
"""Reader name -> :class:`ReaderSpec` (``featstore corpora`` lists these)."""

__all__ = [
    "READERS", "ReaderSpec", "CorpusFormatError", "CorpusNotFoundError", "CorpusWarning",
    "OutsideRootWarning", "RootGuard", "read_esd", "read_iemocap", "read_pavoque", "read_table", "read_zed",
]
