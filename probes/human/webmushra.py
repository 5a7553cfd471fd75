"""webMUSHRA formats: the test configuration we write and the result CSVs we read.

Facts follow ``../shared/specs/webmushra.md`` and webMUSHRA's own sources
(``service/write.php``, ``lib/webmushra/pages/*``, ``configs/*.yaml``):

- a config is YAML with ``testname``, ``testId``, ``bufferSize``, ``stopOnErrors``,
  ``showButtonPreviousPage``, ``remoteService`` and ``pages``; a nested page list whose
  first element is the string ``random`` is shown in random order;
- a ``likert_single_stimulus`` page has ``id``, ``name``, ``content``, ``mustRate``,
  ``mustPlayback`` (the player event that unlocks the scale, ``ended``), ``stimuli``
  (key -> wav path relative to the webMUSHRA root) and ``response`` (``{value, label}``
  list); the key of the stimulus becomes the ``stimuli`` column of ``lss.csv`` and the
  chosen ``value`` its ``stimuli_rating``;
- the ``finish`` page's ``questionnaire`` items (``type`` text/number/likert/long_text,
  ``name``, ``label``, optional ``optional: true``) become columns of every result CSV,
  right after ``session_test_id`` (which holds the test id, not a listener id);
- ``write.php`` appends rows and writes the header only when it creates the file;
  older versions write the rating as ``" value "``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from featstore.errors import CrosslingError
from featstore.io import TableError, atomic_write_text, detect_encoding

LSS_COLUMNS: tuple[str, ...] = ("trial_id", "stimuli_rating", "stimuli", "rating_time")
"""The type-specific columns of ``lss.csv`` after the questionnaire columns."""

PAGE_TYPES: frozenset[str] = frozenset({
    "generic", "volume", "mushra", "bs1116", "paired_comparison", "likert_multi_stimulus",
    "likert_single_stimulus", "likert_comparison", "bbc_spatial", "consent_form",
    "multi_stimulus_familiarisation", "multi_stimulus_likert_familiarisation",
    "multi_stimulus_bbc_spatial_familiarisation", "finish",
})
QUESTION_TYPES: frozenset[str] = frozenset({"text", "number", "likert", "long_text"})
BUFFER_SIZES: frozenset[int] = frozenset({256, 512, 1024, 2048, 4096, 8192, 16384})

LANGUAGE_NAMES: dict[str, str] = {
    "cn": "Mandarin Chinese", "de": "German", "en": "English", "tj": "Tianjin dialect",
    "yue": "Cantonese",
}
L2_LEVELS: tuple[tuple[str, str], ...] = (
    ("none", "None"), ("a", "Basic (CEFR A1-A2)"), ("b", "Independent (CEFR B1-B2)"),
    ("c", "Proficient (CEFR C1-C2)"),
)


class WebMushraError(CrosslingError, ValueError):
    """A webMUSHRA config or result file that does not have the expected structure."""


def sanitize_test_id(test_id: str) -> str:
    """The results folder name ``write.php`` derives from ``testId``."""
    return re.sub(r"--+", "-", re.sub(r"[^\w\-]+", "-", test_id)).lower()


def questionnaire(languages: Sequence[str], ask_listener_id: bool = True,
                  ask_email: bool = True) -> list[dict]:
    """The finish page's listener questions: native language, dialect background,
    second languages and level (+ listener code and an optional e-mail)."""
    items: list[dict] = []
    if ask_listener_id:
        items.append({"type": "text", "name": "listener_id",
                      "label": "Participant code (given by the experimenter)"})
    native = [{"value": code, "label": LANGUAGE_NAMES.get(code, code)} for code in languages]
    native.append({"value": "other", "label": "Other"})
    items += [
        {"type": "likert", "name": "native_language", "label": "Native language",
         "response": native},
        {"type": "text", "name": "native_language_other",
         "label": "If other: which native language?", "optional": True},
        {"type": "text", "name": "dialect",
         "label": "Dialect background (the dialect(s) you grew up with; 'none' if none)"},
        {"type": "text", "name": "second_languages",
         "label": "Second language(s) you speak (e.g. English)"},
        {"type": "likert", "name": "l2_level", "label": "Level of your best second language",
         "response": [{"value": v, "label": lab} for v, lab in L2_LEVELS]},
    ]
    if ask_email:
        items.append({"type": "text", "name": "email", "label": "E-mail (optional)",
                      "optional": True})
    return items


def lss_page(key: str, audio_path: str, labels: Sequence[str], page_id: str,
             content: str) -> dict:
    """One forced-choice ``likert_single_stimulus`` page for one stimulus."""
    return {
        "type": "likert_single_stimulus", "id": page_id, "name": "Which emotion do you hear?",
        "content": content, "mustRate": True, "mustPlayback": "ended",
        "stimuli": {key: audio_path},
        "response": [{"value": lab, "label": lab.capitalize()} for lab in labels],
    }


def make_config(stimuli: Mapping[str, str], test_id: str, labels: Sequence[str],
                languages: Sequence[str], testname: str = "Emotion recognition listening test",
                ask_listener_id: bool = True, ask_email: bool = True) -> dict:
    """A complete webMUSHRA config: intro page, shuffled forced-choice pages, finish page.

    Parameters
    ----------
    stimuli : stimulus key -> wav path relative to the webMUSHRA root
    test_id : ``testId`` (results go to ``results/<sanitised test_id>/lss.csv``)
    labels : response values in order (canonical emotions)
    languages : language codes offered as native-language choices
    """
    intro = (
        "<p>You will hear short recordings of speech in several languages.</p>"
        "<p>Listen to each recording to the end, then choose the emotion you hear: "
        + ", ".join(labels) + ". Each recording can be played more than once.</p>"
        "<p>Please use headphones in a quiet room.</p>"
    )
    pages: list = [{"type": "generic", "id": "intro", "name": "Welcome", "content": intro}]
    trial_pages = [
        lss_page(key, path, labels, f"trial_{key}", "Listen to the end, then choose one emotion.")
        for key, path in stimuli.items()
    ]
    pages.append(["random", *trial_pages])
    pages.append({
        "type": "finish", "name": "Thank you",
        "content": "Thank you for taking part. Please answer these questions, then send.",
        "popupContent": "Your answers were sent. Thank you!",
        "showResults": False, "writeResults": True,
        "questionnaire": questionnaire(languages, ask_listener_id, ask_email),
    })
    return {
        "testname": testname, "testId": test_id, "bufferSize": 2048, "stopOnErrors": True,
        "showButtonPreviousPage": False, "remoteService": "service/write.php", "pages": pages,
    }


def _flatten_pages(pages: list, where: str) -> list[dict]:
    flat: list[dict] = []
    for i, page in enumerate(pages):
        if isinstance(page, list):
            inner = page[1:] if page and page[0] == "random" else page
            flat += _flatten_pages(inner, f"{where}[{i}]")
        elif isinstance(page, dict):
            flat.append(page)
        else:
            raise WebMushraError(f"{where}[{i}]: a page must be a map or a page list, got {page!r}")
    return flat


def validate_config(config: Mapping, root: str | Path | None = None) -> list[dict]:
    """Check the structure webMUSHRA expects; return the flattened page list.

    With ``root`` (the webMUSHRA root folder) every stimulus file must exist there.
    Raises :class:`WebMushraError` naming the first problem.
    """
    for field in ("testname", "testId", "bufferSize", "remoteService", "pages"):
        if field not in config:
            raise WebMushraError(f"config: missing top-level field {field!r}")
    if config["bufferSize"] not in BUFFER_SIZES:
        raise WebMushraError(f"config: bufferSize {config['bufferSize']} not one of {sorted(BUFFER_SIZES)}")
    if not isinstance(config["pages"], list) or not config["pages"]:
        raise WebMushraError("config: pages must be a non-empty list")
    pages = _flatten_pages(config["pages"], "pages")
    ids: set[str] = set()
    for page in pages:
        kind = page.get("type")
        if kind not in PAGE_TYPES:
            raise WebMushraError(f"config: unknown page type {kind!r}")
        if kind != "finish":
            if not page.get("id") or page["id"] in ids:
                raise WebMushraError(f"config: page {page.get('name')!r} needs a unique id")
            ids.add(page["id"])
        if kind == "likert_single_stimulus":
            _check_lss(page, root)
    if pages[-1].get("type") != "finish":
        raise WebMushraError("config: the last page must be the finish page")
    if sum(p.get("type") == "finish" for p in pages) != 1:
        raise WebMushraError("config: exactly one finish page is allowed")
    names = set()
    for item in pages[-1].get("questionnaire", []) or []:
        if item.get("type") not in QUESTION_TYPES or not item.get("name"):
            raise WebMushraError(f"config: bad questionnaire item {item!r}")
        if item["name"] in names:
            raise WebMushraError(f"config: questionnaire name {item['name']!r} used twice")
        names.add(item["name"])
        if item["type"] == "likert" and not item.get("response"):
            raise WebMushraError(f"config: likert question {item['name']!r} has no response list")
    return pages


def _check_lss(page: Mapping, root: str | Path | None) -> None:
    stimuli = page.get("stimuli")
    if not isinstance(stimuli, dict) or not stimuli:
        raise WebMushraError(f"config: page {page['id']!r} needs a stimuli map")
    response = page.get("response")
    if not isinstance(response, list) or not response:
        raise WebMushraError(f"config: page {page['id']!r} needs a response list")
    for r in response:
        if not isinstance(r, dict) or "value" not in r or "label" not in r:
            raise WebMushraError(f"config: page {page['id']!r}: response items need value and label")
    if root is not None:
        for key, rel in stimuli.items():
            if not (Path(root) / rel).is_file():
                raise WebMushraError(f"config: stimulus {key!r}: no file {Path(root) / rel}")


def load_config(path: str | Path) -> dict:
    """Read and validate a webMUSHRA YAML config (``yaml.safe_load``)."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise WebMushraError(f"{path}: cannot read YAML ({err})") from err
    if not isinstance(config, dict):
        raise WebMushraError(f"{path}: not a webMUSHRA config (top level is not a map)")
    validate_config(config)
    return config


def response_values(config: Mapping) -> dict[str, str]:
    """Response ``value`` -> ``label`` over every likert single/multi stimulus page."""
    out: dict[str, str] = {}
    for page in _flatten_pages(config.get("pages", []), "pages"):
        if page.get("type") in ("likert_single_stimulus", "likert_multi_stimulus"):
            for r in page.get("response", []):
                out[str(r["value"]).strip()] = str(r["label"]).strip()
    return out


def write_config(config: Mapping, path: str | Path) -> Path:
    """Validate ``config`` and write it as YAML atomically; re-read it as a check."""
    validate_config(config)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True))
    load_config(path)
    return path


def append_results_csv(path: str | Path, header: Sequence[str], rows: Sequence[Sequence]) -> Path:
    """Append ``rows`` the way ``write.php`` does: header only when the file is new."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    is_new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if is_new:
            writer.writerow(list(header))
        writer.writerows([list(r) for r in rows])
    return path


def read_results_csv(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """Read a webMUSHRA result CSV (``lss.csv`` / ``lms.csv``).

    Returns
    -------
    (questionnaire column names, rows) where each row maps column -> raw string and has
    ``_line`` (1-based line number in the file). Raises :class:`WebMushraError` when the
    header is not ``session_test_id, <questionnaire...>, trial_id, stimuli_rating[1..N],
    stimuli, rating_time``.
    """
    path = Path(path)
    try:
        encoding = detect_encoding(path)  # webMUSHRA writes UTF-8; a re-saved file may not be
        with path.open(newline="", encoding=encoding) as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            body = list(reader)
    except (OSError, UnicodeError, csv.Error, TableError) as err:
        raise WebMushraError(f"{path}: cannot read ({err})") from None
    if not header:
        raise WebMushraError(f"{path}: empty file")
    header = [h.strip() for h in header]
    if header[0] != "session_test_id" or "trial_id" not in header:
        raise WebMushraError(f"{path}: not a webMUSHRA result file (header {header[:4]}...)")
    t = header.index("trial_id")
    tail = header[t:]
    ratings = tail[1:-2]
    if tail[-2:] != ["stimuli", "rating_time"] or not ratings or not all(
        r == "stimuli_rating" or re.fullmatch(r"stimuli_rating\d+", r) for r in ratings
    ):
        raise WebMushraError(
            f"{path}: expected columns trial_id, stimuli_rating, stimuli, rating_time after the "
            f"questionnaire, got {tail}"
        )
    rows = []
    for i, values in enumerate(body, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise WebMushraError(f"{path}: line {i} has {len(values)} fields, header has {len(header)}")
        row = dict(zip(header, values, strict=True))
        row["_line"] = str(i)
        rows.append(row)
    return header[1:t], rows
