"""A record of finished steps, so a stopped study restarts where it stopped.

Each step has a name and a fingerprint of everything it depends on (its config and the
fingerprints of its inputs). A step is skipped when the ledger holds the same name with
the same fingerprint and its outputs still exist. The ledger is a JSON file rewritten
atomically after every step, so a kill at any moment leaves either the old or the new one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from featstore.errors import CrosslingError
from featstore.io import atomic_write_text


class LedgerError(CrosslingError, ValueError):
    """A step ledger that cannot be read (the message names the file and what to do)."""


def fingerprint_of(*parts: object) -> str:
    """A 16-hex fingerprint of JSON-serialisable ``parts`` (dataclasses via ``default=str``)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


class Ledger:
    """Finished steps of one run directory (``<run_dir>/steps.json``)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / "steps.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._steps: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                self._steps = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise LedgerError(f"{self.path}: corrupt step ledger ({err}); delete it to rerun every step") from err

    def is_done(self, name: str, fingerprint: str) -> bool:
        """True when ``name`` finished with ``fingerprint`` and all its outputs still exist."""
        entry = self._steps.get(name)
        if not entry or entry.get("fingerprint") != fingerprint:
            return False
        return all(Path(p).exists() for p in entry.get("outputs", []))

    def mark_done(self, name: str, fingerprint: str, outputs: Sequence[str | Path] = ()) -> None:
        """Record a finished step (atomically)."""
        self._steps[name] = {"fingerprint": fingerprint, "outputs": [str(p) for p in outputs]}
        atomic_write_text(self.path, json.dumps(self._steps, indent=2, sort_keys=True))

    def run(
        self,
        name: str,
        fingerprint: str,
        fn: Callable[[], Sequence[str | Path] | None],
        log: Callable[[str], None] = print,
    ) -> bool:
        """Run ``fn`` unless the step is done; ``fn`` returns its output paths.

        Returns True when the step ran, False when it was skipped.
        """
        if self.is_done(name, fingerprint):
            log(f"[skip] {name} (done, inputs unchanged)")
            return False
        log(f"[run ] {name}")
        t0 = time.perf_counter()
        outputs = fn() or []
        self.mark_done(name, fingerprint, outputs)
        log(f"[done] {name} in {time.perf_counter() - t0:.1f} s")
        return True

    @property
    def steps(self) -> dict[str, dict[str, Any]]:
        """A copy of the recorded steps."""
        return json.loads(json.dumps(self._steps))
