"""Check a report's layout in a real headless Chromium: nothing wider than the window, no
table cell that wraps, no figure text below :data:`MIN_TEXT_PT` at the size shown.

The page is opened with a measuring script added (the report itself is not changed);
the script writes its findings into the page, which Chromium prints with ``--dump-dom``.
Only Debian's ``chromium`` is needed (no driver, no download).

Figure text size: :func:`probes.plot.save_figure` writes the smallest font (pt at print
size) and the dpi into each PNG; a figure shown ``w`` CSS px wide whose PNG is ``n`` px
wide has its text at ``font_pt * (w / n) * (dpi / 96)`` pt (a CSS px is 1/96 in).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from featstore.errors import CrosslingError

MIN_TEXT_PT = 9.0
VIEWPORT_PX = 1280
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1",
)


class BrowserError(CrosslingError):
    """No Chromium, or Chromium did not render the page."""


def png_figure_info(path: str | Path) -> dict:
    """``{"width_px", "height_px", "dpi", "min_font_pt"}`` of a PNG (``dpi`` and
    ``min_font_pt`` from :func:`probes.plot.save_figure`'s text chunks, else the PNG's
    physical size for ``dpi`` and no ``min_font_pt``)."""
    from PIL import Image

    from probes.plot import DPI_KEY, MIN_FONT_KEY

    with Image.open(path) as image:
        info: dict = {"width_px": image.width, "height_px": image.height}
        text = dict(getattr(image, "text", {}) or {})
        phys = image.info.get("dpi")
    try:
        info["dpi"] = float(text[DPI_KEY]) if DPI_KEY in text else (float(phys[0]) if phys else None)
        if MIN_FONT_KEY in text and text[MIN_FONT_KEY] != "inf":
            info["min_font_pt"] = float(text[MIN_FONT_KEY])
    except (TypeError, ValueError):
        pass
    return info


MEASURE_JS = r"""
<script>
window.addEventListener('load', function () {
  var W = window.innerWidth;
  var out = {viewport: W, page_width: document.documentElement.scrollWidth, wide: [], wrapped: [],
             small_text: [], unmeasured: [], scrolling: [], figures: 0, cells: 0};
  function name(el) {
    var t = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className ? '.' + el.className : '');
    return t + ' "' + (el.textContent || el.alt || '').trim().slice(0, 60) + '"';
  }
  function clipped(el) {
    for (var p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      var o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden') return true;
    }
    return false;
  }
  var all = document.body.querySelectorAll('*');
  for (var i = 0; i < all.length; i++) {
    var el = all[i];
    if (el.tagName === 'SCRIPT' || el.tagName === 'STYLE' || el.id === 'layout-report') continue;
    var r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if ((r.right > W + 0.5 || r.left < -0.5) && !clipped(el)) out.wide.push(name(el) + ' right=' + Math.round(r.right));
  }
  var tds = document.querySelectorAll('td, th');
  for (var j = 0; j < tds.length; j++) {
    var td = tds[j];
    if (td.tagName === 'TH' || td.classList.contains('desc')) continue;
    out.cells++;
    var range = document.createRange();
    range.selectNodeContents(td);
    var rects = range.getClientRects(), tops = {};
    for (var k = 0; k < rects.length; k++) if (rects[k].width > 0) tops[Math.round(rects[k].top)] = 1;
    if (Object.keys(tops).length > 1) out.wrapped.push(name(td));
  }
  var boxes = document.querySelectorAll('.scroll');
  for (var b = 0; b < boxes.length; b++) {
    if (boxes[b].scrollWidth > boxes[b].clientWidth + 1) {
      var fig = boxes[b].closest('figure'), cap = fig ? fig.querySelector('figcaption') : null;
      out.scrolling.push((cap ? cap.textContent : name(boxes[b])).trim() + ' (' + boxes[b].scrollWidth + ' px in '
                         + boxes[b].clientWidth + ')');
    }
  }
  var imgs = document.images;
  for (var m = 0; m < imgs.length; m++) {
    var img = imgs[m];
    out.figures++;
    var dpi = parseFloat(img.getAttribute('data-dpi')), pt = parseFloat(img.getAttribute('data-min-font-pt'));
    if (!(dpi > 0) || !(pt > 0) || !img.naturalWidth) { out.unmeasured.push(img.alt); continue; }
    var shown = pt * (img.getBoundingClientRect().width / img.naturalWidth) * dpi / 96;
    if (shown < MIN_PT - 1e-6) out.small_text.push(img.alt + ': ' + shown.toFixed(2) + ' pt');
  }
  var pre = document.createElement('pre');
  pre.id = 'layout-report';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


@dataclass
class LayoutReport:
    """What the measuring script found (see the module docstring)."""

    viewport: int
    page_width: int
    wide: list[str] = field(default_factory=list)
    wrapped: list[str] = field(default_factory=list)
    small_text: list[str] = field(default_factory=list)
    unmeasured: list[str] = field(default_factory=list)
    scrolling: list[str] = field(default_factory=list)
    figures: int = 0
    cells: int = 0

    def problems(self) -> list[str]:
        """Every defect, one line each (empty when the page passes)."""
        out = []
        if self.page_width > self.viewport:
            out.append(f"the page is {self.page_width} px wide in a {self.viewport} px window")
        out += [f"wider than the window: {w}" for w in self.wide]
        out += [f"cell wraps: {w}" for w in self.wrapped]
        out += [f"figure text below {MIN_TEXT_PT:g} pt: {w}" for w in self.small_text]
        out += [f"figure without font/dpi metadata (probes.plot.save_figure): {w}" for w in self.unmeasured]
        return out


def chromium() -> str:
    """The Chromium executable, or a :class:`BrowserError` saying how to install it."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        raise BrowserError("chromium is needed to check the report's layout: apt-get install chromium "
                           "(see .ci/setup-browser)")
    return exe


def check_layout(page: str | Path, width_px: int = VIEWPORT_PX, screenshot: str | Path | None = None,
                 timeout_s: float = 180) -> LayoutReport:
    """Open ``page`` (an HTML file) in headless Chromium ``width_px`` wide, measure it, and
    write a ``screenshot`` (PNG, ``width_px`` x 2400) when asked."""
    page = Path(page)
    text = page.read_text(encoding="utf-8")
    script = MEASURE_JS.replace("MIN_PT", repr(MIN_TEXT_PT))
    text = text.replace("</body>", script + "</body>", 1) if "</body>" in text else text + script
    with tempfile.TemporaryDirectory(prefix="report-check-") as tmp:
        measured = Path(tmp) / page.name
        measured.write_text(text, encoding="utf-8")
        base = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}"]
        run = subprocess.run([*base, f"--window-size={width_px},900", "--virtual-time-budget=10000", "--dump-dom",
                              measured.as_uri()], capture_output=True, text=True, timeout=timeout_s, check=False)
        found = re.search(r'<pre id="layout-report">(.*?)</pre>', run.stdout, re.S)
        if not found:
            raise BrowserError(f"{page}: chromium did not render the page (exit {run.returncode}): "
                               f"{run.stderr.strip()[-400:]}")
        data = json.loads(html.unescape(found.group(1)))
        if screenshot is not None:
            shot = Path(screenshot)
            shot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([*base, f"--window-size={width_px},2400", f"--screenshot={shot}", page.resolve().as_uri()],
                           capture_output=True, timeout=timeout_s, check=False)
            if not shot.is_file():
                raise BrowserError(f"{page}: chromium wrote no screenshot to {shot}")
    return LayoutReport(**data)
