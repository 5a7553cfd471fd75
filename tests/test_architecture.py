"""The layering that import-linter cannot see: ``cli.py`` is a module on top of every
package, so no package may import it (the rest is the contract in pyproject.toml,
checked by ``lint-imports`` in CI)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("featstore", "probes", "finetune", "study")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_package_imports_the_cli_module():
    offenders = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if any(name == "cli" or name.startswith("cli.") for name in _imported_modules(path))
    ]
    assert offenders == []


def test_the_check_can_fail(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from cli import app\n", encoding="utf-8")
    assert "cli" in _imported_modules(bad)
