"""One self-contained HTML report of a run directory (figures embedded as data URIs).

The report reads what the steps of a study left in its run directory and lays it out in
the paper's shapes. Each section names the sub-folder it reads and the files it prefers;
any other figure or table found there is shown too, so a new analysis appears in the
report without touching this file. Missing sections say what command produces them.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from featstore.errors import CrosslingError
from featstore.io import atomic_write_text
from featstore.units import percent_columns
from study.report_marks import simulated_listeners

MAX_TABLE_ROWS = 60
PROVENANCE_COLUMNS = (
    "model", "model_fingerprint", "manifest_fingerprint", "train_manifest_fingerprint",
    "test_manifest_fingerprint", "cache_fingerprint", "fold_scheme", "seed",
)
PROVENANCE_HEADERS = {
    "model_fingerprint": "model fp", "manifest_fingerprint": "manifest fp",
    "train_manifest_fingerprint": "train manifest fp", "test_manifest_fingerprint": "test manifest fp",
    "cache_fingerprint": "cache fp", "fold_scheme": "folds", "manifests": "manifest fp (train→test)",
}
"""Short headers of the provenance table (fp = fingerprint, shown shortened; the whole
value on hover)."""
FINGERPRINT_CHARS = 8


@dataclass(frozen=True)
class Section:
    """A part of the report: the folder it reads, the figures and tables it shows (glob
    patterns relative to the run directory), and what it is. Every other file of the
    folder is listed as a link, so nothing is hidden and the page stays short."""

    key: str
    title: str
    folder: str
    blurb: str
    produced_by: str
    figures: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()


SECTIONS: tuple[Section, ...] = (
    Section("fig1", "Figure 1 - layer-wise analysis", "probes",
            "UA per layer of frozen SSL features with a probe head: one row of panels per setting "
            "(monolingual, cross-lingual, transfer learning), one column per model; line style and marker name "
            "the test corpus; the dotted line is chance. With the statistics the line is the UA of the pooled "
            "test predictions, the band its 95 % speaker-bootstrap interval and a filled marker a layer of the "
            "best-layer set (without them: mean over folds, band = one standard deviation). The table "
            "gives UA % as mean ± std over folds per layer; the best layers feed fine-tuning.",
            "probes layerwise --setting all", ("probes/figure1.png|probes/**/figure1.png",),
            ("probes/best_layers.csv|probes/**/best_layers.csv",)),
    # the statistics of the layer-wise run (probes.stats, docs/statistics.md)
    Section("bestsets", "Best-layer sets - which layers are as good as the best", "probes",
            "Each row: the best layer of a setting (UA averaged over its conditions) or of one condition, and the "
            "layers not significantly worse than it (paired sign-flip tests over speakers, Holm-corrected over "
            "that scope's layers at 5 %); a short set means a sharp optimum, and smallest_in_set is what "
            "--layer best-smallest fine-tunes.",
            "probes layerwise --stats", (), ("probes/stats/best_set_table.csv|probes/**/stats/best_set_table.csv",)),
    Section("gaps", "Cross-lingual gaps per layer", "probes",
            "UA differences in points per layer with 95 % bootstrap bands: mono minus cross is the drop when a "
            "head meets another language, trans minus mono what training in that language recovers against the "
            "native setting, trans minus cross (paired on the same utterances) the gain of training in it; a band "
            "that excludes 0 is a gap the data support.",
            "probes layerwise --stats", ("probes/stats/gaps.png|probes/**/stats/gaps.png",), ()),
    Section("weights", "Weighted-sum probes - learned layer weights", "probes",
            "A weighted-sum probe learns one softmax weight per hidden state jointly with the paper's head "
            "(SUPERB's featurizer); read each line as how much the probe trained on that corpus leans on each "
            "layer (fold mean, band = fold range): above the dashed equal-weight line the probe prefers the "
            "layer. Its UA is the flat line of the same colour and style in Figure 1 and in the table "
            "(mlp and linear heads only: a logreg run, as the demo's, trains none).",
            "probes layerwise --weighted", ("probes/layer_weights.png|probes/**/layer_weights.png",),
            ("probes/weighted_summary.csv|probes/**/weighted_summary.csv",)),
    Section("table1", "Table I - PEFT strategies", "finetune",
            "UA % of the encoder fine-tuned up to the chosen layer with LoRA, bottleneck adapters (BA), "
            "weighted gating (WG) and two-stage training (mean ± std over folds).",
            "finetune peft --strategy lora+ba+wg", ("finetune/*.png",), ()),
    Section("table2", "Tables II and III - listeners and models", "human",
            "Table II: listening-test UA % by listener group (rows) and test language (columns). "
            "Table III: row-normalised confusion matrices of listeners beside the models of the matching "
            "setting (native - mono, non-native - cross-lingual, second language - transfer). "
            "Welch's two-sided t-tests on per-listener metrics, smallest p first.",
            "probes human compare", ("human/figures/*.png|human/**/figures/*.png",),
            ("human/table2_ua.csv|human/**/table2_ua.csv", "human/ttests.csv|human/**/ttests.csv")),
    Section("likeness", "Human-likeness per layer", "human",
            "Which layer errs like a listener: per layer, Cohen's kappa between the probe's answers and the "
            "majority answer of the listener group of its setting (native - mono, non-native - cross-lingual) and "
            "the correlation r of their row-normalised confusion matrices, with 95 % bootstrap bands over stimuli, "
            "beside the probe's UA; a layer where kappa or r peaks while UA does not errs more like the listeners "
            "than its accuracy alone explains (kappa 0 = chance agreement, 1 = the same answer on every stimulus).",
            "probes human compare --predictions <probes run>/predictions.parquet",
            ("human/likeness/human_likeness.png|human/**/likeness/human_likeness.png",),
            ("human/likeness/likeness_best.csv|human/**/likeness/likeness_best.csv",)),
    Section("table4", "Table IV - speech emotion diarization (EDER)", "sed",
            "Emotion diarization error rate (EDER %, lower is better; the files keep fractions) of the "
            "diarization model and of listener groups on ZED-style utterances, with per-utterance timelines.",
            "probes sed model", ("sed/timelines.png|sed/**/timelines.png", "sed/probe/**/*.png"),
            ("sed/table_iv.csv|sed/**/table_iv.csv", "sed/probe/**/*.csv")),
)


def _data_uri(path: Path) -> str:
    mime = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}[path.suffix.lower()]
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _table_html(frame: pl.DataFrame, caption: str, badge: str = "", short: tuple[str, ...] = ()) -> str:
    """A table in its own scrolling box; ``badge`` (HTML) opens the caption; the values of
    the columns ``short`` (fingerprints) are cut to :data:`FINGERPRINT_CHARS` with the
    whole value on hover."""
    shown = frame.head(MAX_TABLE_ROWS)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    cut = [c in short for c in shown.columns]
    rows = ["<tr>" + "".join(_cell_html(v, FINGERPRINT_CHARS if k else MAX_CELL_CHARS)
                             for v, k in zip(row, cut, strict=True)) + "</tr>" for row in shown.iter_rows()]
    more = f"<p class='note'>{frame.height - MAX_TABLE_ROWS} more rows in the file.</p>" if frame.height > MAX_TABLE_ROWS else ""
    # the table scrolls inside its own box: a wide table never widens the page
    return (f"<figure class='table'><figcaption>{badge}{html.escape(caption)}</figcaption><div class='scroll'>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{more}</figure>")


MAX_CELL_CHARS = 28


def _cell_html(value: object, max_chars: int = MAX_CELL_CHARS) -> str:
    """A table cell: no cell wraps; numbers get class ``num``; long text is shortened in
    the middle (a fingerprint keeps its start) with the whole value on hover (``title``)."""
    text = _fmt(value)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool) or _looks_numeric(text)
    if len(text) > max_chars:
        if max_chars < MAX_CELL_CHARS:
            short = text[:max_chars] + "\u2026"
        elif "/" in text and len(text.rsplit("/", 1)[-1]) < max_chars - 2:
            # a path keeps its end (folder and file name), so two paths never shorten alike
            parts, short = text.split("/"), ""
            while parts and len(parts[-1]) + len(short) + 2 <= max_chars:
                short = "/" + parts.pop() + short
            short = "\u2026" + short
        else:
            keep = (max_chars - 1) // 2
            short = text[:keep] + "\u2026" + text[-keep:]
        return f"<td class='long' title='{html.escape(text, quote=True)}'>{html.escape(short)}</td>"
    return f"<td class='num'>{html.escape(text)}</td>" if numeric else f"<td>{html.escape(text)}</td>"


def _looks_numeric(text: str) -> bool:
    """``12.5``, ``-3``, ``36.2 ± 13.5``, ``8.97e-09``, ``41.0 %``."""
    parts = text.replace("±", " ").replace("%", " ").split()
    if not parts:
        return False
    try:
        [float(p) for p in parts]
    except ValueError:
        return False
    return True


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    return "" if value is None else str(value)


def _glob(run_dir: Path, patterns: tuple[str, ...]) -> list[Path]:
    """Files matching each pattern; ``a|b`` takes the first alternative that matches."""
    seen: list[Path] = []
    for pattern in patterns:
        for alternative in pattern.split("|"):
            found = [p for p in sorted(run_dir.glob(alternative)) if p not in seen]
            if found:
                seen += found
                break
    return seen


def layer_table(summary: pl.DataFrame) -> pl.DataFrame:
    """Figure 1 as numbers: one row per model, setting and train -> test corpus, one column
    per layer (``layer <n> UA %``), cells ``UA % mean ± std`` over folds. ``ua_mean`` and
    ``ua_std`` are fractions (the probes' ``summary.csv``; the unit rule of every file)."""
    scale = 100
    cell = pl.format("{} ± {}", (pl.col("ua_mean") * scale).round(1), (pl.col("ua_std") * scale).round(1))
    frame = summary.with_columns(cell.alias("cell"), pl.format("layer {} UA %", pl.col("layer")).alias("layer_name"))
    if {"train_corpus", "test_corpus"} <= set(frame.columns):  # one column: train -> test, or the one corpus
        frame = frame.with_columns(pl.when(pl.col("train_corpus") == pl.col("test_corpus")).then(pl.col("test_corpus"))
                                   .otherwise(pl.format("{}→{}", "train_corpus", "test_corpus")).alias("corpus"))
    index = [c for c in ("model", "setting", "corpus") if c in frame.columns]
    return frame.sort("layer").pivot(on="layer_name", index=index, values="cell", maintain_order=True)


class ReportError(CrosslingError, FileNotFoundError):
    """A run directory that cannot be reported on."""


@dataclass(frozen=True)
class PaperContext:
    """How the paper's numbers are put beside ours: ``demo`` runs are not comparable (their
    numbers are shown without a difference); ``reading`` is the study's
    ``[finetune] two_stage_reading`` (which runs fill Table I's 2-stg cells)."""

    demo: bool = False
    reading: str = "text"

    @classmethod
    def of(cls, meta: dict) -> PaperContext:
        finetune = ((meta.get("config") or {}).get("finetune") or {}) if isinstance(meta.get("config"), dict) else {}
        return cls(demo=bool(meta.get("untrained_models") or meta.get("demo")),
                   reading=str(finetune.get("two_stage_reading") or "text"))


def _special_tables(section: Section, run_dir: Path, badge: str, paper: PaperContext) -> list[str]:
    from probes.paper_compare import PaperCompareError, compare_table_four, compare_table_two

    out = []
    beside = ("ours beside the paper's published value, difference in percentage points"
              + ("; a demo run: not comparable, no difference shown" if paper.demo else ""))
    if section.key == "fig1":
        for path in _glob(run_dir, ("probes/summary.csv|probes/**/summary.csv",)):
            summary = pl.read_csv(path)
            if {"ua_mean", "ua_std", "layer"} <= set(summary.columns):
                caption = f"UA % per layer (mean ± std over folds), {path.relative_to(run_dir).as_posix()}"
                out.append(_table_html(layer_table(summary), caption, badge))
    if section.key == "table1":
        results = sorted((run_dir / "finetune").rglob("results.parquet"))
        if results:
            from finetune.table_one import table_one, table_one_display

            frame = pl.concat([pl.read_parquet(p) for p in results], how="diagonal_relaxed")
            table = table_one(frame, reading=paper.reading, demo=paper.demo)
            out.append(_table_html(table_one_display(table),
                                   f"Table I from {len(results)} fine-tuning run(s), UA % over folds, in the paper's "
                                   f"layout ({paper.reading} reading of the 2-stg rows); {beside}; every column "
                                   "(protocol settings, corpora, kept epochs) in finetune/table1.csv", badge))
    compare = {"table2": ("human/table2_ua.csv|human/**/table2_ua.csv", compare_table_two, "Table II"),
               "table4": ("sed/table_iv.csv|sed/**/table_iv.csv", compare_table_four, "Table IV")}
    if section.key in compare:
        pattern, function, name = compare[section.key]
        for path in _glob(run_dir, (pattern,)):
            try:
                table = function(pl.read_csv(path, infer_schema_length=1000), demo=paper.demo)
            except (PaperCompareError, pl.exceptions.PolarsError) as err:
                out.append(f"<p class='missing'>{html.escape(name)} beside the paper: {html.escape(str(err))}</p>")
                continue
            out.append(_table_html(table, f"{name} {beside} ({path.relative_to(run_dir).as_posix()})", badge))
    return out


TTEST_COLUMNS = ("comparison", "metric", "a", "b", "t", "df", "p", "p_adj", "significant")


def _read_table(path: Path) -> tuple[pl.DataFrame, str]:
    """A table as the report shows it (rates in percent, the unit in each header) and a
    note for its caption."""
    frame = pl.read_csv(path, infer_schema_length=1000)
    note = ""
    if path.name == "ttests.csv" and "p" in frame.columns:
        # who against whom in two short columns; the correction (one for the file) in the caption
        side = {s: pl.concat_str([pl.col(f"group_{s}").str.to_uppercase(), pl.lit(" on "),
                                  pl.col(f"language_{s}").str.to_uppercase()])
                for s in ("a", "b") if {f"group_{s}", f"language_{s}"} <= set(frame.columns)}
        frame = frame.with_columns([expr.alias(s) for s, expr in side.items()])
        if "comparison" in frame.columns:
            frame = frame.with_columns(pl.col("comparison").str.replace("between_", ""))
        if "correction" in frame.columns and frame["correction"].n_unique() == 1:
            note = f"; p_adj: {frame['correction'][0]} correction"
        frame = frame.sort("p").select([c for c in TTEST_COLUMNS if c in frame.columns]).head(20)
        note = f"Welch's t-tests, smallest p first (20 at most){note}; t = a minus b"
    elif path.name == "table_iv.csv":
        frame = percent_columns(frame)
        note = "EDER % (lower is better)"
    elif path.name == "best_layers.csv" and "finetune_layer" in frame.columns:
        frame = percent_columns(frame)
        note = ("layer: the best hidden state by mean UA over folds and corpora (0 = the transformer's input); "
                "finetune_layer: the layer `finetune peft --layer best` uses, the best of layers 1 and up "
                "(fine-tuning adapts at least one transformer layer), so it differs when layer 0 is best")
    elif path.name.startswith("table2") and "group" in frame.columns:
        frame = percent_columns(frame)
        note = "listening-test UA % by listener group (rows) and test language (columns)"
    else:
        frame = percent_columns(frame)
    return frame, note


def _badge(text: str, cls: str = "sim") -> str:
    return f"<span class='{cls}'>{html.escape(text)}</span> "


def _figure_html(fig: Path, caption: str, badge: str) -> str:
    """A figure at its print size (its PNG's dpi; never wider than the column), with its
    smallest font and dpi as data attributes for the layout check."""
    attrs = ""
    if fig.suffix.lower() == ".png":
        from study.report_check import png_figure_info

        info = png_figure_info(fig)
        if info.get("dpi") and info.get("width_px"):
            width_css = info["width_px"] * 96 / info["dpi"]
            attrs = f" style='width:{width_css:.0f}px' data-dpi='{info['dpi']:g}'"
        if info.get("min_font_pt"):
            attrs += f" data-min-font-pt='{info['min_font_pt']:g}'"
    return (f"<figure><img alt='{html.escape(caption, quote=True)}'{attrs} src='{_data_uri(fig)}'>"
            f"<figcaption>{badge}{html.escape(caption)}</figcaption></figure>")


def _section_html(section: Section, run_dir: Path, marks: dict[str, str] | None = None,
                  model_note: str = "", paper: PaperContext | None = None) -> str:
    """``marks``: folder -> how its listener answers were simulated; ``model_note``: a
    badge for sections built on demo models."""
    marks = marks or {}
    folder = run_dir / section.folder
    parts = [f"<section id='{section.key}'><h2>{html.escape(section.title)}</h2>",
             f"<p>{html.escape(section.blurb)}</p>"] if section.blurb else [
             f"<section id='{section.key}'><h2>{html.escape(section.title)}</h2>"]
    sim = marks.get(section.folder)
    badge = ""
    if sim:
        what = "SIMULATED LISTENERS" if section.folder != "sed" else "SIMULATED LISTENER COLUMNS"
        badge = _badge(what)
        parts.append(f"<p class='simnote'>{_badge(what)}{html.escape(sim)}. Every listener number of this "
                     "section comes from simulated answers, not from people.</p>")
    if model_note:
        badge += _badge(model_note, "demo")
    if not folder.is_dir():
        parts.append(f"<p class='missing'>Not run yet: <code>{html.escape(section.produced_by)}</code> "
                     f"writes <code>{html.escape(section.folder)}/</code>.</p></section>")
        return "".join(parts)
    figures = _glob(run_dir, section.figures)
    tables = _glob(run_dir, section.tables)
    for fig in figures:
        parts.append(_figure_html(fig, fig.relative_to(run_dir).as_posix(), badge))
    special = _special_tables(section, run_dir, badge, paper or PaperContext())
    parts += special
    for table in tables:
        try:
            frame, note = _read_table(table)
        except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as err:
            parts.append(f"<p class='missing'>{html.escape(table.name)}: unreadable ({html.escape(str(err))})</p>")
            continue
        caption = table.relative_to(run_dir).as_posix() + (f": {note}" if note else "")
        parts.append(_table_html(frame, caption, badge))
    if not figures and not tables and not special:
        parts.append("<p class='missing'>The folder exists but holds no figure or table yet.</p>")
    shown = set(figures) | set(tables)
    others = [p for p in sorted(folder.rglob("*")) if p.is_file() and p not in shown
              and p.suffix in {".csv", ".parquet", ".svg", ".png", ".json", ".md", ".yaml"}]
    if others:
        links = "".join(f"<li><a href='{html.escape(p.relative_to(run_dir).as_posix())}'>"
                        f"{html.escape(p.relative_to(run_dir).as_posix())}</a></li>" for p in others)
        parts.append(f"<details><summary>All files of this step ({len(others)})</summary><ul>{links}</ul></details>")
    parts.append("</section>")
    return "".join(parts)


def collect_provenance(run_dir: Path, marks: dict[str, str] | None = None) -> pl.DataFrame:
    """Distinct provenance records over every results table (parquet) in ``run_dir``;
    with ``marks`` (folder -> note, :func:`study.report_marks.simulated_listeners`) a
    column ``answers`` says ``simulated`` for the tables of a folder whose listeners were."""
    frames = []
    for path in sorted(run_dir.rglob("*.parquet")):
        try:
            schema = pl.read_parquet_schema(path)
        except (pl.exceptions.PolarsError, OSError):
            continue
        cols = [c for c in PROVENANCE_COLUMNS if c in schema]
        listener = _holds_listeners(path, schema)
        if "model" in cols and len(cols) >= 2:
            frame = pl.read_parquet(path, columns=cols).unique()
            frame = frame.with_columns([pl.col(c).cast(pl.Utf8) for c in cols])
        elif listener:  # listener answers (no model): one row, so every listener table is listed
            frame = pl.DataFrame({"model": ["listeners"]})
        else:
            continue
        frames.append(frame.with_columns(pl.lit(path.relative_to(run_dir).as_posix()).alias("table"),
                                         pl.lit(listener).alias("_listener")))
    if not frames:
        return pl.DataFrame()
    frame = pl.concat(frames, how="diagonal").unique().sort("table", "model")
    if marks:
        folder = pl.col("table").str.split("/").list.first()
        frame = frame.with_columns(pl.when(folder.is_in(list(marks)) & pl.col("_listener")).then(pl.lit("simulated"))
                                   .otherwise(pl.lit("")).alias("answers"))
    frame = frame.drop("_listener")
    return frame.select([c for c in frame.columns if frame[c].null_count() < frame.height])


def _holds_listeners(path: Path, schema: object) -> bool:
    """Whether a results table holds listener answers or is built on them: a ``simulated``
    field in its provenance, or a listener / group column (a model's own output has neither)."""
    from featstore.io import TableError, parquet_metadata

    names = [str(c) for c in schema]  # type: ignore[attr-defined]
    if any("listener" in c for c in names) or "group" in names:
        return True
    try:
        return "simulated" in parquet_metadata(path)
    except (TableError, OSError, ValueError):
        return False


def build_report(run_dir: str | Path, out: str | Path | None = None, title: str | None = None) -> Path:
    """Write ``report.html`` for ``run_dir`` and return its path.

    Parameters
    ----------
    run_dir : a study's run directory (sub-folders ``probes``, ``finetune``, ``human``, ``sed``)
    out : where to write (default ``<run_dir>/report.html``)
    title : page title (default from ``<run_dir>/study.json`` or the folder name)
    """
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise ReportError(f"{run_dir} is a file, not a run directory (give the folder a study or the demo wrote)")
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such run directory")
    meta = _read_meta(run_dir)
    title = title or meta.get("title") or f"Cross-lingual SER study: {run_dir.name}"
    marks = simulated_listeners(run_dir, meta)
    banner = _banner(meta, marks)
    model_note = "untrained demo models" if meta.get("untrained_models") else ("demo models" if meta.get("demo") else "")
    toc = "".join(f"<li><a href='#{s.key}'>{html.escape(s.title)}</a></li>" for s in SECTIONS)
    paper = PaperContext.of(meta)
    body = _about_html(meta) + "".join(_section_html(s, run_dir, marks, model_note, paper) for s in SECTIONS)
    extra = _extra_html(run_dir, marks)
    provenance = collect_provenance(run_dir, marks)
    prov_html = (_table_html(_provenance_display(provenance),
                             "models, fingerprints (fp, first characters; the whole value on hover or in the "
                             "parquet files), folds and seeds behind every table; answers = simulated where the "
                             "listeners were", short=tuple(v for k, v in PROVENANCE_HEADERS.items() if k.endswith("fingerprint")))
                 if provenance.height else "<p class='missing'>No results table with provenance found.</p>")
    meta_html = f"<pre>{html.escape(json.dumps(meta, indent=2, default=str))}</pre>" if meta else ""
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = _TEMPLATE.format(
        title=html.escape(title), banner=banner, toc=toc, body=body, extra=extra,
        provenance=prov_html, meta=meta_html, generated=generated,
    )
    out = Path(out) if out else run_dir / "report.html"
    atomic_write_text(out, page)
    return out


def _read_meta(run_dir: Path) -> dict:
    path = run_dir / "study.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def _provenance_display(frame: pl.DataFrame) -> pl.DataFrame:
    """The provenance table as shown: the manifest fingerprints in one column (``m`` or
    ``train→test``, first characters), short headers."""
    if frame.is_empty():
        return frame
    cut = FINGERPRINT_CHARS
    parts = [c for c in ("manifest_fingerprint", "train_manifest_fingerprint", "test_manifest_fingerprint")
             if c in frame.columns]
    if parts:
        one = pl.col("manifest_fingerprint").str.slice(0, cut) if "manifest_fingerprint" in parts else pl.lit(None)
        pair = (pl.concat_str([pl.col("train_manifest_fingerprint").str.slice(0, cut), pl.lit("→"),
                               pl.col("test_manifest_fingerprint").str.slice(0, cut)])
                if {"train_manifest_fingerprint", "test_manifest_fingerprint"} <= set(parts) else pl.lit(None))
        frame = frame.with_columns(pl.coalesce(one, pair).alias("manifests")).drop(parts)
        order = [c for c in frame.columns if c != "manifests"]
        frame = frame.select(order[:2] + ["manifests"] + order[2:])
    return frame.rename({k: v for k, v in PROVENANCE_HEADERS.items() if k in frame.columns})


def _banner(meta: dict, marks: dict[str, str]) -> str:
    parts = []
    if meta.get("untrained_models"):
        parts.append("Demo run: the models are tiny, UNTRAINED, randomly initialised networks and the corpus is "
                     "synthetic speech. The numbers show the pipeline works; they say nothing about real SSL models.")
    elif meta.get("demo"):
        parts.append("Demo run: small models made on synthetic speech (see how below). The numbers show the "
                     "pipeline works; they say nothing about real SSL models.")
    if marks:
        parts.append("The listening tests (" + ", ".join(sorted(marks)) + ") use SIMULATED listeners, "
                     "not people: each of their tables and figures says so.")
    return f"<p class='banner'>{html.escape(' '.join(parts))}</p>" if parts else ""


def _about_html(meta: dict) -> str:
    """How the models were made (``study.json`` ``models``: alias -> description) and the
    margins over chance (``margins``: ``<name>_pct`` -> UA %, ``chance_pct`` optional)."""
    parts = []
    models = meta.get("models")
    if isinstance(models, dict) and models:
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td class='desc'>{html.escape(str(v))}</td></tr>"
                       for k, v in models.items())
        parts.append("<h3>How the models were made</h3><div class='scroll'><table><thead><tr><th>model</th>"
                     f"<th>made how</th></tr></thead><tbody>{rows}</tbody></table></div>")
    margins = meta.get("margins")
    if isinstance(margins, dict) and margins:
        chance = float(margins.get("chance_pct", 25.0))
        rows = []
        for key, value in margins.items():
            if key == "chance_pct" or not isinstance(value, (int, float)):
                continue
            name = key.removesuffix("_pct").replace("_", " ").replace(" ua", " UA")
            rows.append(f"<tr><td>{html.escape(name)}</td><td class='num'>{value:.1f}</td>"
                        f"<td class='num'>{chance:.1f}</td><td class='num'>{value - chance:+.1f}</td></tr>")
        if rows:
            parts.append(f"<h3>Margin over chance</h3><div class='scroll'><table><thead><tr><th>result</th><th>UA %</th>"
                         f"<th>chance UA %</th><th>margin (points)</th></tr></thead><tbody>{''.join(rows)}</tbody>"
                         "</table></div>")
    return f"<section id='about'><h2>About this run</h2>{''.join(parts)}</section>" if parts else ""


def _extra_html(run_dir: Path, marks: dict[str, str] | None = None) -> str:
    known = {s.folder for s in SECTIONS}
    folders = [p for p in sorted(run_dir.iterdir()) if p.is_dir() and p.name not in known]
    parts = []
    for folder in folders:
        if folder.name in {"listening"} or not (any(folder.rglob("*.png")) or any(folder.rglob("*.csv"))):
            continue
        extra = Section(folder.name, f"Further analysis: {folder.name}", folder.name, "", "",
                        (f"{folder.name}/**/*.png",), (f"{folder.name}/*.csv",))
        parts.append(_section_html(extra, run_dir, marks))
    return "".join(parts)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: 'DejaVu Sans', Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222;
        padding: 0 1em; box-sizing: border-box; }}
figure {{ margin: 1em 0; max-width: 100%; }}
.scroll {{ overflow-x: auto; max-width: 100%; }}
td {{ white-space: nowrap; }} td.desc {{ white-space: normal; min-width: 20em; text-align: left; }}
th {{ white-space: normal; vertical-align: bottom; }}
pre {{ overflow-x: auto; max-width: 100%; font-size: .8em; }}
h1 {{ font-size: 1.6em; }} h2 {{ border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }}
img {{ max-width: 100%; border: 1px solid #eee; }}
table {{ border-collapse: collapse; font-size: .85em; margin: .5em 0; }}
th, td {{ border: 1px solid #ddd; padding: 2px 6px; text-align: right; }}
th {{ background: #f4f4f4; }}
figcaption {{ font-size: .8em; color: #555; }}
.banner {{ background: #fff3cd; border: 1px solid #e0c36b; padding: .6em; }}
.sim {{ background: #b35900; color: #fff; font-weight: bold; padding: 0 .3em; border-radius: 2px; }}
.demo {{ background: #666; color: #fff; padding: 0 .3em; border-radius: 2px; }}
.simnote {{ border-left: 4px solid #b35900; padding-left: .5em; }}
.missing {{ color: #8a6d3b; }} .note {{ font-size: .8em; color: #666; }}
</style></head>
<body>
<h1>{title}</h1>
{banner}
<ul>{toc}<li><a href="#provenance">Provenance</a></li></ul>
{body}
{extra}
<section id="provenance"><h2>Provenance</h2>{provenance}{meta}</section>
<p class="note">Generated {generated} by crossling-ser.</p>
<script>
window.addEventListener('load', function () {{
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
}});
</script>
</body></html>
"""
