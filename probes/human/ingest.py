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
- ``unused_group_entry``: a listener in the groups table who gave no answers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from featstore.manifest import CANONICAL_EMOTIONS
from probes.human import webmushra
from probes.human.build import check_key

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
    "listener", "group", "stimulus", "corpus", "utt_id", "language", "true", "answer",
    "raw_answer", "rating_time_ms", "source", "line",
)


@dataclass(frozen=True)
class IngestConfig:
    """How to read answers.

    Attributes
    ----------
    group_column : questionnaire column that gives the listener group (the paper groups
        listeners by native language); ignored when a groups table is given
    listener_columns : questionnaire columns tried, in order, for the listener id
    duplicates : ``last``, ``first`` or ``drop`` (see the module docstring)
    labels : canonical answer labels
    response_map : extra rating value -> label pairs (e.g. from the config's
        ``response`` list, so numeric values map to labels)
    """

    group_column: str = "native_language"
    listener_columns: tuple[str, ...] = LISTENER_COLUMNS
    duplicates: str = "last"
    labels: tuple[str, ...] = CANONICAL_EMOTIONS
    response_map: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.duplicates not in DUPLICATE_POLICIES:
            raise ValueError(f"duplicates must be one of {DUPLICATE_POLICIES}, got {self.duplicates!r}")
        if not self.listener_columns:
            raise ValueError("listener_columns: give at least one column name")


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


def read_groups(path: str | Path) -> dict[str, str]:
    """A listener -> group table (CSV/TSV/parquet with columns ``listener``, ``group``)."""
    frame = _read_table(Path(path))
    missing = [c for c in ("listener", "group") if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: groups table lacks column(s) {missing}")
    return {str(r["listener"]).strip(): str(r["group"]).strip()
            for r in frame.iter_rows(named=True) if r["listener"] is not None and r["group"]}


def _read_table(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        if path.suffix == ".parquet":
            return pl.read_parquet(path).with_columns(pl.all().cast(pl.Utf8))
        sep = "\t" if path.suffix in (".tsv", ".tab") else ","
        return pl.read_csv(path, separator=sep, infer_schema_length=0)
    except Exception as err:  # polars raises several error types for malformed files
        raise ValueError(f"{path}: cannot read table ({err})") from err


def _raw_rows(path: Path, config: IngestConfig, anomalies: list[dict]) -> list[dict]:
    """Rows of one result file as dicts: listener, group, stimulus, raw, time_ms, meta."""
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline()
    if path.suffix != ".parquet" and first.split(",")[0].strip().strip('"') == "session_test_id":
        return _webmushra_rows(path, config, anomalies)
    frame = _read_table(path)
    missing = [c for c in ("listener", "stimulus", "answer") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: neither a webMUSHRA result file (first column session_test_id) nor a long "
            f"table (missing column(s) {missing})"
        )
    rows = []
    for i, r in enumerate(frame.iter_rows(named=True), start=2):
        rows.append({
            "listener": (r["listener"] or "").strip() or f"{path.name}#row{i}",
            "group": (r.get("group") or "").strip() or None, "stimulus": (r["stimulus"] or "").strip(),
            "raw": r["answer"], "time_ms": r.get("rating_time"), "meta": {},
            "source": str(path), "line": i,
        })
    return rows


def _webmushra_rows(path: Path, config: IngestConfig, anomalies: list[dict]) -> list[dict]:
    qnames, rows = webmushra.read_results_csv(path)
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
        group = meta.get(config.group_column) or None
        if group == "other" and meta.get(f"{config.group_column}_other"):
            group = meta[f"{config.group_column}_other"]
        out.append({"listener": listener, "group": group.lower() if group else None,
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
) -> IngestResult:
    """Read result files, map answers to labels, join with the key, collect anomalies.

    Parameters
    ----------
    results : webMUSHRA result CSVs and/or long tables, read in this order
    key : key table (:func:`probes.human.build.read_key`)
    config : see :class:`IngestConfig`
    groups : listener -> group; overrides the group column of the files
    """
    key = check_key(key)
    anomalies: list[dict] = []
    raw: list[dict] = []
    for path in results:
        raw += _raw_rows(Path(path), config, anomalies)
    known = {r["stimulus"]: r for r in key.iter_rows(named=True)}
    lmap = label_map(config.labels, config.response_map)
    groups = {str(k): str(v).lower() for k, v in (groups or {}).items()}

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

    schema = {"listener": pl.Utf8, "group": pl.Utf8, "stimulus": pl.Utf8, "corpus": pl.Utf8,
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
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"answers": out_dir / "answers.parquet", "listeners": out_dir / "listeners.csv",
             "anomalies_json": out_dir / "anomalies.json", "anomalies_csv": out_dir / "anomalies.csv",
             "provenance": out_dir / "ingest.json"}
    meta = {"crossling": json.dumps(dict(provenance), default=str)}
    _atomic(paths["answers"], lambda p: result.answers.write_parquet(p, metadata=meta))
    _atomic(paths["listeners"], lambda p: result.listeners.write_csv(p))
    _atomic(paths["anomalies_csv"], lambda p: result.anomalies_frame().write_csv(p))
    _atomic(paths["anomalies_json"], lambda p: Path(p).write_text(
        json.dumps(result.anomalies, indent=2, default=str), encoding="utf-8"))
    _atomic(paths["provenance"], lambda p: Path(p).write_text(
        json.dumps(dict(provenance), indent=2, default=str), encoding="utf-8"))
    return paths


def _atomic(path: Path, write: object) -> None:
    tmp = path.with_name(path.name + ".tmp" + path.suffix)
    write(tmp)  # type: ignore[operator]
    os.replace(tmp, path)
