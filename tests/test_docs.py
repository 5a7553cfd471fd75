"""The README and the docs stay readable documents: no paragraph twice (an edit that
repeated one 20,000 times once slipped through), and every local link points at a file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _paragraphs(text: str) -> list[str]:
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text)]
    return [b for b in blocks if b.count("\n") >= 2 and not b.startswith("```") and not b.startswith("|")]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_no_paragraph_is_repeated(path):
    text = path.read_text(encoding="utf-8")
    assert len(text) < 200_000, f"{path.name} is {len(text):,} characters"
    seen: dict[str, int] = {}
    for block in _paragraphs(text):
        seen[block] = seen.get(block, 0) + 1
    repeated = [b.splitlines()[0] for b, n in seen.items() if n > 1]
    assert not repeated, f"{path.name}: paragraphs repeated: {repeated}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_local_links_point_at_files(path):
    text = path.read_text(encoding="utf-8")
    missing = [target for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
               if "://" not in target and not (path.parent / target).exists()]
    assert not missing, f"{path.name} links to files that do not exist: {missing}"
