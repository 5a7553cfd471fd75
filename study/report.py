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

from featstore.io import atomic_write_text

MAX_TABLE_ROWS = 60
PROVENANCE_COLUMNS = (
    "model", "model_fingerprint", "manifest_fingerprint", "train_manifest_fingerprint",
    "test_manifest_fingerprint", "cache_fingerprint", "fold_scheme", "seed",
)


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
            "UA per layer of frozen SSL features with a probe head, in the monolingual, cross-lingual "
            "and transfer-learning settings (mean over folds, band = one standard deviation). The table "
            "gives UA % as mean ± std over folds per layer; the best layers feed fine-tuning.",
            "probes layerwise --setting all", ("probes/figure1.png|probes/**/figure1.png",),
            ("probes/best_layers.csv|probes/**/best_layers.csv",)),
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
    Section("table4", "Table IV - speech emotion diarization (EDER)", "sed",
            "Emotion diarization error rate (fraction, lower is better) of the diarization model and of "
            "listener groups on ZED-style utterances, with per-utterance timelines.",
            "probes sed model", ("sed/timelines.png|sed/**/timelines.png", "sed/probe/**/*.png"),
            ("sed/table_iv.csv|sed/**/table_iv.csv", "sed/probe/**/*.csv")),
)


def _data_uri(path: Path) -> str:
    mime = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}[path.suffix.lower()]
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _table_html(frame: pl.DataFrame, caption: str) -> str:
    shown = frame.head(MAX_TABLE_ROWS)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = ["<tr>" + "".join(_cell_html(v) for v in row) + "</tr>" for row in shown.iter_rows()]
    more = f"<p class='note'>{frame.height - MAX_TABLE_ROWS} more rows in the file.</p>" if frame.height > MAX_TABLE_ROWS else ""
    # the table scrolls inside its own box: a wide table never widens the page
    return (f"<figure class='table'><figcaption>{html.escape(caption)}</figcaption><div class='scroll'>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{more}</figure>")


MAX_CELL_CHARS = 28


def _cell_html(value: object) -> str:
    """A table cell: numbers never wrap (class ``num``); long text is shortened in the
    middle with the whole value on hover (``title``)."""
    text = _fmt(value)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool) or _looks_numeric(text)
    if len(text) > MAX_CELL_CHARS:
        keep = (MAX_CELL_CHARS - 1) // 2
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
    per layer, cells ``UA% mean ± std`` over folds."""
    cell = pl.format("{} ± {}", (pl.col("ua_mean") * 100).round(1), (pl.col("ua_std") * 100).round(1))
    frame = summary.with_columns(cell.alias("cell"), pl.col("layer").cast(pl.Utf8))
    return frame.pivot(on="layer", index=["model", "setting", "train_corpus", "test_corpus"], values="cell")


def _special_tables(section: Section, run_dir: Path) -> list[str]:
    out = []
    if section.key == "fig1":
        for path in _glob(run_dir, ("probes/summary.csv|probes/**/summary.csv",)):
            summary = pl.read_csv(path)
            if {"ua_mean", "ua_std", "layer"} <= set(summary.columns):
                caption = f"UA % per layer (mean ± std over folds), {path.relative_to(run_dir).as_posix()}"
                out.append(_table_html(layer_table(summary), caption))
    if section.key == "table1":
        results = sorted((run_dir / "finetune").rglob("results.parquet"))
        if results:
            from finetune.results import table_one

            frame = pl.concat([pl.read_parquet(p) for p in results], how="diagonal_relaxed")
            out.append(_table_html(table_one(frame), f"Table I from {len(results)} fine-tuning run(s)"))
    return out


def _read_table(path: Path) -> pl.DataFrame:
    frame = pl.read_csv(path, infer_schema_length=1000)
    if path.name == "ttests.csv" and "p" in frame.columns:
        keep = [c for c in ("comparison", "metric", "group_a", "group_b", "language_a", "language_b", "t", "df",
                            "p", "p_adj", "correction", "significant") if c in frame.columns]
        frame = frame.sort("p").select(keep).head(20)
    return frame


def _section_html(section: Section, run_dir: Path) -> str:
    folder = run_dir / section.folder
    parts = [f"<section id='{section.key}'><h2>{html.escape(section.title)}</h2>",
             f"<p>{html.escape(section.blurb)}</p>"] if section.blurb else [
             f"<section id='{section.key}'><h2>{html.escape(section.title)}</h2>"]
    if not folder.is_dir():
        parts.append(f"<p class='missing'>Not run yet: <code>{html.escape(section.produced_by)}</code> "
                     f"writes <code>{html.escape(section.folder)}/</code>.</p></section>")
        return "".join(parts)
    figures = _glob(run_dir, section.figures)
    tables = _glob(run_dir, section.tables)
    for fig in figures:
        caption = fig.relative_to(run_dir).as_posix()
        parts.append(f"<figure><img alt='{html.escape(caption)}' src='{_data_uri(fig)}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    special = _special_tables(section, run_dir)
    parts += special
    for table in tables:
        try:
            frame = _read_table(table)
        except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as err:
            parts.append(f"<p class='missing'>{html.escape(table.name)}: unreadable ({html.escape(str(err))})</p>")
            continue
        parts.append(_table_html(frame, table.relative_to(run_dir).as_posix()))
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


def collect_provenance(run_dir: Path) -> pl.DataFrame:
    """Distinct provenance records over every results table (parquet) in ``run_dir``."""
    frames = []
    for path in sorted(run_dir.rglob("*.parquet")):
        try:
            schema = pl.read_parquet_schema(path)
        except (pl.exceptions.PolarsError, OSError):
            continue
        cols = [c for c in PROVENANCE_COLUMNS if c in schema]
        if "model" not in cols or len(cols) < 2:
            continue
        frame = pl.read_parquet(path, columns=cols).unique()
        frame = frame.with_columns([pl.col(c).cast(pl.Utf8) for c in cols])
        frames.append(frame.with_columns(pl.lit(path.relative_to(run_dir).as_posix()).alias("table")))
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal").unique().sort("table", "model")


def build_report(run_dir: str | Path, out: str | Path | None = None, title: str | None = None) -> Path:
    """Write ``report.html`` for ``run_dir`` and return its path.

    Parameters
    ----------
    run_dir : a study's run directory (sub-folders ``probes``, ``finetune``, ``human``, ``sed``)
    out : where to write (default ``<run_dir>/report.html``)
    title : page title (default from ``<run_dir>/study.json`` or the folder name)
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    meta = _read_meta(run_dir)
    title = title or meta.get("title") or f"Cross-lingual SER study: {run_dir.name}"
    banner = ""
    if meta.get("untrained_models"):
        banner = ("<p class='banner'>Demo run: the models are tiny, UNTRAINED, randomly initialised "
                  "networks and the corpus is synthetic speech. The numbers show the pipeline works; "
                  "they say nothing about real SSL models.</p>")
    toc = "".join(f"<li><a href='#{s.key}'>{html.escape(s.title)}</a></li>" for s in SECTIONS)
    body = "".join(_section_html(s, run_dir) for s in SECTIONS)
    extra = _extra_html(run_dir)
    provenance = collect_provenance(run_dir)
    prov_html = (_table_html(provenance, "models, fingerprints, folds and seeds behind every table")
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


def _extra_html(run_dir: Path) -> str:
    known = {s.folder for s in SECTIONS}
    folders = [p for p in sorted(run_dir.iterdir()) if p.is_dir() and p.name not in known]
    parts = []
    for folder in folders:
        if folder.name in {"listening"} or not (any(folder.rglob("*.png")) or any(folder.rglob("*.csv"))):
            continue
        extra = Section(folder.name, f"Further analysis: {folder.name}", folder.name, "", "",
                        (f"{folder.name}/**/*.png",), (f"{folder.name}/*.csv",))
        parts.append(_section_html(extra, run_dir))
    return "".join(parts)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: 'DejaVu Sans', Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222;
        padding: 0 1em; box-sizing: border-box; }}
figure {{ margin: 1em 0; max-width: 100%; }}
.scroll {{ overflow-x: auto; max-width: 100%; }}
td.num, td.long, th {{ white-space: nowrap; }}
pre {{ overflow-x: auto; max-width: 100%; font-size: .8em; }}
h1 {{ font-size: 1.6em; }} h2 {{ border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }}
img {{ max-width: 100%; border: 1px solid #eee; }}
table {{ border-collapse: collapse; font-size: .85em; margin: .5em 0; }}
th, td {{ border: 1px solid #ddd; padding: 2px 6px; text-align: right; }}
th {{ background: #f4f4f4; }}
figcaption {{ font-size: .8em; color: #555; }}
.banner {{ background: #fff3cd; border: 1px solid #e0c36b; padding: .6em; }}
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
