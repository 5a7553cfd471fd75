"""Read listening-test answers, join them with the key, and list everything odd.

Inputs are webMUSHRA result files (``lss.csv``/``lms.csv``: ``session_test_id``, the
finish page's questionnaire columns, ``trial_id``, ``stimuli_rating``, ``stimuli``,
``rating_time``) or plain long tables (CSV/TSV/parquet with ``listener``, ``stimulus``,
``answer`` and optionally ``group``).

Nothing is dropped silently. Every row that does not become an answer, and every
listener that looks incomplete, is listed in the anomalies with the action taken:

- ``unknown_stimulus``: the stimulus key is not in the key table (row dropped);
- ``na_answer``: ``NA`` or empty rating (row dropped);
- ``unmapped_answer``: a rating that is none of the response values/labels (dropped);
- ``duplicate_answer``: a listener answered a stimulus more than once. Policy
  ``last`` (default) keeps the last answer in file order (a re-submission or a
  corrected answer is the listener's final choice); ``first`` keeps the first;
  ``drop`` drops all. Every discarded row is listed;
- ``no_group``: a listener without a group (kept; left out of group tables);
- ``unfinished``: fewer valid answers than stimuli in the key (kept, missing listed);
- ``listener_from_rows``: no listener id column; listeners were told apart by blocks
  of rows with the same questionnaire answers (kept);
- ``inconsistent_metadata``: one listener id with different questionnaire answers
  (kept; the first answers are used);
- ``several_scales``: ``stimuli_rating1..N`` columns; the first scale is used;
- ``unused_group_entry``: a listener in the groups table who gave no answers;
- ``group_language``: a group taken as a language by a built-in alias (``zh`` -> ``cn``);
- ``key_assumption``: what was derived for a hand-made key (utt_id, corpus, labels).

Refused with an error naming the file (never a quiet default): a file or column that is
missing or misspelt (with the closest column name), a group column that is not in a file
(``group_column=""`` says there are no groups), a group that is neither a stimulus
language, a built-in alias (:mod:`probes.human.groups`) nor in ``group_languages``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from featstore.errors import CrosslingError, did_you_mean
from featstore.io import (
    TableError,
    atomic_write,
    atomic_write_json,
    check_columns,
    detect_encoding,
    read_table,
    write_parquet,
)
from featstore.manifest import CANONICAL_EMOTIONS
from probes.human import webmushra
from probes.human.groups import GroupError, normalise_group, resolve_group_languages
from probes.human.keys import check_key

LABEL_ALIASES: dict[str, str] = {
    "angry": "angry", "anger": "angry", "ang": "angry", "a": "angry",
    "happy": "happy", "happiness": "happy", "hap": "happy", "joy": "happy", "h": "happy",
    "neutral": "neutral", "neu": "neutral", "n": "neutral",
    "sad": "sad", "sadness": "sad", "s": "sad",
}
"""Case-insensitive spellings of the canonical labels accepted as answers."""

LISTENER_COLUMNS: tuple[str, ...] = (
    "session_uuid", "listener_id", "listener", "participant_id", "participant", "id", "email",
)
DUPLICATE_POLICIES: tuple[str, ...] = ("last", "first", "drop")
ANSWER_COLUMNS: tuple[str, ...] = (
    "listener", "group", "group_language", "stimulus", "corpus", "utt_id", "language", "true", "answer",
    "raw_answer", "rating_time_ms", "source", "line",
)


@dataclass(frozen=True)
class IngestConfig:
    """How to read answers.

    Attributes
    ----------
    group_column : questionnaire column (webMUSHRA files) or column (long tables; ``group``
        is also accepted there) that gives the listener group (the paper groups listeners by
        native language); ignored when a groups table is given. A column that is not in a
        file is an error; ``""`` says on purpose that there are no groups
    group_languages : group -> language code, for groups not named by a stimulus language
        code nor a built-in alias (:mod:`probes.human.groups`); any other group is an error
    listener_columns : questionnaire columns tried, in order, for the listener id
    duplicates : ``last``, ``first`` or ``drop`` (see the module docstring)
    labels : answer labels (the four canonical ones, plus any category kept as its own
        answer, e.g. TJD's ``question``)
    response_map : extra rating value -> label pairs (e.g. from the config's
        ``response`` list, so numeric values map to labels)
    """

    group_column: str = "native_language"
    listener_columns: tuple[str, ...] = LISTENER_COLUMNS
    duplicates: str = "last"
    labels: tuple[str, ...] = CANONICAL_EMOTIONS
    response_map: Mapping[str, str] = field(default_factory=dict)
    group_languages: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.duplicates not in DUPLICATE_POLICIES:
            raise IngestError(f"duplicates must be one of {DUPLICATE_POLICIES}, got {self.duplicates!r}")
        if not self.listener_columns:
            raise IngestError("listener_columns: give at least one column name")
        bad = {k: v for k, v in self.group_languages.items() if not str(k).strip() or not str(v).strip()}
        if bad:
            raise IngestError(f"group_languages: empty group or language in {bad}")


class IngestError(CrosslingError, ValueError):
    """Answers that cannot be read or joined; the message names the file and column."""


@dataclass
class IngestResult:
    """Answers (one row per listener and stimulus), listeners and anomalies."""

    answers: pl.DataFrame
    listeners: pl.DataFrame
    anomalies: list[dict]

    def anomalies_frame(self) -> pl.DataFrame:
        """The anomalies as a table (kind, action, listener, stimulus, source, line, detail)."""
        cols = ("kind", "action", "listener", "stimulus", "source", "line", "detail")
        if not self.anomalies:
            return pl.DataFrame(schema=dict.fromkeys(cols, pl.Utf8))
        return pl.DataFrame([{c: _s(a.get(c)) for c in cols} for a in self.anomalies])


def _s(value: object) -> str | None:
    return None if value is None else str(value)


def label_map(labels: Sequence[str], response_map: Mapping[str, str] | None = None) -> dict[str, str]:
    """Lower-cased answer text -> canonical label."""
    out = {k: v for k, v in LABEL_ALIASES.items() if v in labels}
    out |= {lab.lower(): lab for lab in labels}
    for value, lab in (response_map or {}).items():
        canon = out.get(str(lab).strip().lower())
        if canon is not None:
            out[str(value).strip().lower()] = canon
    return out


def answer_labels(response_map: Mapping[str, str] | None = None,
                  base: Sequence[str] = CANONICAL_EMOTIONS) -> tuple[str, ...]:
    """The answer labels of a test: ``base`` (the four emotions), then every response label
    of a webMUSHRA config that is no spelling of one of them (e.g. ``Question``), lower case,
    in the config's order."""
    known = {k for k, v in LABEL_ALIASES.items() if v in base} | {b.lower() for b in base}
    extra = [str(lab).strip().lower() for lab in (response_map or {}).values()]
    return tuple(dict.fromkeys([*base, *(e for e in extra if e and e not in known)]))


class GroupTable(dict):
    """listener -> group, read from ``source`` (named in the messages about its groups)."""

    source: str = "the groups table"


def read_groups(path: str | Path) -> GroupTable:
    """A listener -> group table (CSV/TSV/JSONL/parquet with columns ``listener``, ``group``).

    A listener listed twice with different groups, or a table where no listener has a
    group, is an :class:`IngestError` naming the file.
    """
    frame = _read_table(Path(path), ("listener", "group"), "groups table")
    out = GroupTable()
    out.source = str(path)
    for line, r in enumerate(frame.iter_rows(named=True), start=2):
        who, group = (r["listener"] or "").strip(), (r["group"] or "").strip()
        if not who or not group or group.upper() == "NA":
            continue
        if who in out and normalise_group(out[who]) != normalise_group(group):
            raise IngestError(f"{path}: line {line}: listener {who!r} is in group {out[who]!r} and {group!r}")
        out[who] = group
    if not out:
        raise IngestError(f"{path}: no row of the groups table has both a listener and a group")
    return out


def _read_table(path: Path, required: Sequence[str] = (), what: str = "answer table") -> pl.DataFrame:
    try:
        frame = read_table(path, required=required, what=what)
    except TableError as err:
        raise IngestError(str(err)) from None
    return frame.with_columns(pl.all().cast(pl.Utf8))


def _group_value(value: object) -> str | None:
    text = "" if value is None else str(value).strip()
    return None if not text or text.upper() == "NA" else text.lower()


def _group_column(path: Path, columns: Sequence[str], config: IngestConfig, groups_given: bool) -> str | None:
    """The column of ``path`` that holds the group, ``None`` for no groups (on purpose, or a
    groups table given); an :class:`GroupError` when the configured column is not there."""
    if groups_given or not config.group_column:
        return None
    options = [config.group_column] + (["group"] if config.group_column == "native_language" else [])
    found = next((c for c in options if c in columns), None)
    if found is None:
        raise GroupError(
            f"{path}: no group column {config.group_column!r}{did_you_mean(config.group_column, columns)}; "
            f"it has: {', '.join(columns)}. Name the column that gives the listener group "
            "(--group-column), give a groups table (--groups), or --group-column '' for no groups"
        )
    return found


def _raw_rows(path: Path, config: IngestConfig, anomalies: list[dict], groups_given: bool = False) -> list[dict]:
    """Rows of one result file as dicts: listener, group, stimulus, raw, time_ms, meta."""
    if not path.is_file():
        raise IngestError(f"{path}: no such answer file" if not path.exists() else f"{path}: not a file")
    first = ""
    if path.suffix.lower() != ".parquet":
        try:
            with path.open(encoding=detect_encoding(path), newline="") as fh:
                first = fh.readline()
        except (OSError, UnicodeError, TableError):
            first = ""  # read_table below names the problem
    if first.split(",")[0].strip().strip('"') == "session_test_id":
        return _webmushra_rows(path, config, anomalies, groups_given)
    frame = _read_table(path)
    try:
        check_columns(frame, ("listener", "stimulus", "answer"), path,
                      "long answer table (or a webMUSHRA result file, first column session_test_id)")
    except TableError as err:
        raise IngestError(str(err)) from None
    group_col = _group_column(path, frame.columns, config, groups_given)
    rows = []
    for i, r in enumerate(frame.iter_rows(named=True), start=2):
        rows.append({
            "listener": (r["listener"] or "").strip() or f"{path.name}#row{i}",
            "group": _group_value(r.get(group_col) if group_col else None),
            "stimulus": (r["stimulus"] or "").strip(),
            "raw": r["answer"], "time_ms": r.get("rating_time"), "meta": {},
            "source": str(path), "line": i,
        })
    return rows


def _webmushra_rows(path: Path, config: IngestConfig, anomalies: list[dict], groups_given: bool) -> list[dict]:
    qnames, rows = webmushra.read_results_csv(path)
    group_col = _group_column(path, qnames, config, groups_given)
    rating_cols = [c for c in rows[0] if c.startswith("stimuli_rating")] if rows else ["stimuli_rating"]
    rating_col = "stimuli_rating" if "stimuli_rating" in rating_cols else sorted(rating_cols)[0]
    if len(rating_cols) > 1:
        anomalies.append({"kind": "several_scales", "action": "kept", "source": str(path),
                          "detail": f"columns {rating_cols}; used {rating_col}"})
    id_col = next((c for c in config.listener_columns if c in qnames), None)
    out, block, seen, last_meta, told = [], 0, set(), None, False
    for r in rows:
        meta = {q: r[q].strip() for q in qnames}
        listener = meta.get(id_col, "") if id_col else ""
        stim = r["stimuli"].strip()
        if not listener:
            # write.php appends one block of rows per submitted session; without an id
            # column a new block starts where the questionnaire answers change or a
            # stimulus comes round again.
            if meta != last_meta or stim in seen:
                block, seen = block + 1, set()
            seen.add(stim)
            listener = f"{path.stem}#block{block}"
            if not told:
                anomalies.append({"kind": "listener_from_rows", "action": "kept", "source": str(path),
                                  "detail": "no listener id in the questionnaire columns "
                                            f"{list(config.listener_columns)}; listeners = row blocks"})
                told = True
        last_meta = meta
        group = _group_value(meta.get(group_col)) if group_col else None
        if group == "other" and meta.get(f"{group_col}_other", "").strip():
            group = _group_value(meta[f"{group_col}_other"])
        out.append({"listener": listener, "group": group,
                    "stimulus": stim, "raw": r[rating_col], "time_ms": r["rating_time"],
                    "meta": meta, "source": str(path), "line": int(r["_line"])})
    return out


def _float_or_none(value: object) -> float | None:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


def ingest(
    results: Sequence[str | Path],
    key: pl.DataFrame,
    config: IngestConfig = IngestConfig(),
    groups: Mapping[str, str] | None = None,
    key_notes: Sequence[str] = (),
) -> IngestResult:
    """Read result files, map answers to labels, join with the key, collect anomalies.

    Parameters
    ----------
    results : webMUSHRA result CSVs and/or long tables, read in this order
    key : key table (:func:`probes.human.build.read_key`)
    config : see :class:`IngestConfig`
    groups : listener -> group; overrides the group column of the files
    key_notes : what was assumed when reading the key (:func:`probes.human.keys.read_key`);
        listed in the anomalies as ``key_assumption``

    Raises
    ------
    IngestError, GroupError
        An unreadable file, a missing column, a group column not in a file, a group that
        is neither a stimulus language, a built-in alias nor in ``config.group_languages``.
    """
    anomalies: list[dict] = [{"kind": "key_assumption", "action": "assumed", "detail": n} for n in key_notes]
    key = check_key(key, notes=(notes := []), labels=config.labels)
    anomalies += [{"kind": "key_assumption", "action": "assumed", "detail": n} for n in notes]
    raw: list[dict] = []
    for path in results:
        raw += _raw_rows(Path(path), config, anomalies, groups_given=bool(groups))
    if not raw:
        raise IngestError(f"no answer rows in {', '.join(str(p) for p in results) or 'no files'}")
    known = {r["stimulus"]: r for r in key.iter_rows(named=True)}
    lmap = label_map(config.labels, config.response_map)
    groups_source = getattr(groups, "source", "the groups table")
    groups = {str(k): normalise_group(v) for k, v in (groups or {}).items()}
    found = set(groups.values()) if groups else {r["group"] for r in raw if r["group"]}
    group_language, group_notes = resolve_group_languages(
        found, key["language"].to_list(), config.group_languages,
        where=groups_source if groups else ", ".join(sorted({r["source"] for r in raw})))
    anomalies += [{"kind": "group_language", "action": "assumed", "detail": n} for n in group_notes]

    meta_of: dict[str, dict] = {}
    group_of: dict[str, str | None] = {}
    sources: dict[str, list[str]] = {}
    valid: list[dict] = []
    for r in raw:
        who = r["listener"]
        where = {"listener": who, "stimulus": r["stimulus"], "source": r["source"], "line": r["line"]}
        if who not in meta_of:
            meta_of[who] = r["meta"]
            group_of[who] = groups.get(who) if groups else r["group"]
        elif r["meta"] != meta_of[who] and not any(
            a["kind"] == "inconsistent_metadata" and a["listener"] == who for a in anomalies
        ):
            anomalies.append({"kind": "inconsistent_metadata", "action": "kept", **where,
                              "detail": f"questionnaire {r['meta']} differs from the first {meta_of[who]}"})
        if r["source"] not in sources.setdefault(who, []):
            sources[who].append(r["source"])
        text = "" if r["raw"] is None else str(r["raw"]).strip()
        if r["stimulus"] not in known:
            anomalies.append({"kind": "unknown_stimulus", "action": "dropped", **where,
                              "detail": f"answer {text!r}"})
            continue
        if text == "" or text.upper() == "NA":
            anomalies.append({"kind": "na_answer", "action": "dropped", **where, "detail": repr(text)})
            continue
        answer = lmap.get(text.lower())
        if answer is None:
            anomalies.append({"kind": "unmapped_answer", "action": "dropped", **where,
                              "detail": f"{text!r} is none of {sorted(set(lmap))}"})
            continue
        k = known[r["stimulus"]]
        valid.append({"listener": who, "group": None, "stimulus": r["stimulus"], "corpus": k["corpus"],
                      "utt_id": k["utt_id"], "language": k["language"], "true": k["emotion"],
                      "answer": answer, "raw_answer": text, "rating_time_ms": _float_or_none(r["time_ms"]),
                      "source": r["source"], "line": r["line"]})

    kept = _dedupe(valid, config.duplicates, anomalies)
    for row in kept:
        row["group"] = group_of.get(row["listener"])
        row["group_language"] = group_language.get(row["group"]) if row["group"] else None
    listeners = []
    n_expected = key.height
    for who in meta_of:
        done = {r["stimulus"] for r in kept if r["listener"] == who}
        if group_of[who] is None:
            anomalies.append({"kind": "no_group", "action": "kept", "listener": who,
                              "detail": "no group from the groups table or the "
                                        f"{config.group_column!r} column"})
        if len(done) < n_expected:
            missing = sorted(set(known) - done)
            anomalies.append({"kind": "unfinished", "action": "kept", "listener": who,
                              "detail": f"{len(done)} of {n_expected} stimuli answered; missing "
                                        + ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")})
        listeners.append({"listener": who, "group": group_of[who], "n_answers": len(done),
                          "n_expected": n_expected, "finished": len(done) == n_expected,
                          "sources": ";".join(sources[who]),
                          **{f"q_{k}": v for k, v in meta_of[who].items()}})
    for who in sorted(set(groups) - set(meta_of)):
        anomalies.append({"kind": "unused_group_entry", "action": "ignored", "listener": who,
                          "detail": f"group {groups[who]!r} but no answers"})

    schema = {"listener": pl.Utf8, "group": pl.Utf8, "group_language": pl.Utf8, "stimulus": pl.Utf8, "corpus": pl.Utf8,
              "utt_id": pl.Utf8, "language": pl.Utf8, "true": pl.Utf8, "answer": pl.Utf8,
              "raw_answer": pl.Utf8, "rating_time_ms": pl.Float64, "source": pl.Utf8, "line": pl.Int64}
    answers = pl.DataFrame(kept, schema=schema) if kept else pl.DataFrame(schema=schema)
    listeners_df = pl.DataFrame(listeners, infer_schema_length=None) if listeners else pl.DataFrame(
        schema={"listener": pl.Utf8, "group": pl.Utf8})
    return IngestResult(answers, listeners_df, anomalies)


def _dedupe(rows: list[dict], policy: str, anomalies: list[dict]) -> list[dict]:
    by_pair: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by_pair.setdefault((r["listener"], r["stimulus"]), []).append(r)
    kept = []
    for (who, stim), items in by_pair.items():
        if len(items) == 1:
            kept.append(items[0])
            continue
        keep = {"last": items[-1], "first": items[0], "drop": None}[policy]
        kept_txt = (f"kept {keep['answer']!r} from {keep['source']}:{keep['line']}"
                    if keep else "all dropped")
        for r in items:
            if r is keep:
                continue
            anomalies.append({"kind": "duplicate_answer", "action": "dropped", "listener": who,
                              "stimulus": stim, "source": r["source"], "line": r["line"],
                              "detail": f"answer {r['answer']!r}; policy {policy}: {kept_txt}"})
        if keep:
            kept.append(keep)
    return sorted(kept, key=lambda r: (r["source"], r["line"]))


def save_ingest(result: IngestResult, out_dir: str | Path, provenance: Mapping) -> dict[str, Path]:
    """Write ``answers.parquet``, ``listeners.csv``, ``anomalies.json``/``.csv`` and
    ``ingest.json`` (provenance) atomically under ``out_dir``."""
    out_dir = Path(out_dir)
    paths = {"answers": out_dir / "answers.parquet", "listeners": out_dir / "listeners.csv",
             "anomalies_json": out_dir / "anomalies.json", "anomalies_csv": out_dir / "anomalies.csv",
             "provenance": out_dir / "ingest.json"}
    atomic_write(paths["listeners"], lambda p: result.listeners.write_csv(p))
    atomic_write(paths["anomalies_csv"], lambda p: result.anomalies_frame().write_csv(p))
    atomic_write_json(paths["anomalies_json"], result.anomalies)
    atomic_write_json(paths["provenance"], dict(provenance))
    # the answers last: a folder with answers.parquet is a finished ingest
    write_parquet(result.answers, paths["answers"], metadata=dict(provenance))
    return paths
