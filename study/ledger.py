"""A record of finished steps, so a stopped study restarts where it stopped.

Each step (a job of the study graph, :mod:`study.graph`) has a name and a fingerprint of
everything it depends on (its config and the fingerprints of its inputs). A step is
skipped when the ledger holds the same name with the same fingerprint and its outputs
still exist.

The ledger is safe under concurrency: jobs finish in any order, on any node that sees the
run directory (a shared file system), and each writes its OWN record, atomically
(``<run_dir>/ledger/done/<job>.json``, written by the job itself after its outputs), so no
two writers ever rewrite one file and a kill at any moment leaves a record either whole or
absent. What the study driver knows about jobs in flight (``submitted``/``running`` with
the scheduler's job id, ``failed`` with the path of the job's log) is kept apart, in
``<run_dir>/ledger/jobs/<job>.json``, and never decides what is done.

A run directory of an earlier version holds one ``steps.json``: it is still read (its
steps count as done) and never written again.

:class:`StudyLock` keeps two studies off one run directory (``<run_dir>/study.lock``,
the kernel lock of :class:`featstore.cache.WriterLock`, dropped when its holder dies).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from featstore.errors import CrosslingError, safe_file_stem
from featstore.io import atomic_write_json

LEGACY_FILE = "steps.json"
"""The one-file ledger of earlier versions (read, never written)."""


class LedgerError(CrosslingError, ValueError):
    """A step ledger that cannot be read (the message names the file and what to do)."""


class StudyLockedError(CrosslingError, RuntimeError):
    """Another ``crossling study`` is running on the same run directory."""


def fingerprint_of(*parts: object) -> str:
    """A 16-hex fingerprint of JSON-serialisable ``parts`` (dataclasses via ``default=str``)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def record_stem(name: str) -> str:
    """The file stem of job ``name``'s records (``finetune/m/a-to-b/x`` -> ``finetune~m~a-to-b~x``)."""
    return safe_file_stem(name.replace("/", "~"), "job name")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LedgerError(f"{path}: corrupt ledger record ({err}); delete it to rerun that job") from err
    return value if isinstance(value, dict) else None


class Ledger:
    """Finished steps of one run directory (one record file per job under ``<run_dir>/ledger``).

    Every query reads the records from disk, so a ledger object sees what jobs on other
    nodes recorded since it was made.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / "ledger"
        self.path = self.run_dir / LEGACY_FILE  # the earlier one-file ledger
        self.done_dir, self.jobs_dir = self.root / "done", self.root / "jobs"
        self.done_dir.mkdir(parents=True, exist_ok=True)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._legacy: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                self._legacy = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise LedgerError(f"{self.path}: corrupt step ledger ({err}); delete it to rerun every step") from err

    # finished jobs --------------------------------------------------------------------
    def record(self, name: str) -> dict[str, Any] | None:
        """The done record of ``name`` (None when it never finished)."""
        found = _read_json(self.done_dir / f"{record_stem(name)}.json")
        return found if found is not None else self._legacy.get(name)

    def is_done(self, name: str, fingerprint: str) -> bool:
        """True when ``name`` finished with ``fingerprint`` and all its outputs still exist."""
        entry = self.record(name)
        if not entry or entry.get("fingerprint") != fingerprint:
            return False
        return all(Path(p).exists() for p in entry.get("outputs", []))

    def mark_done(self, name: str, fingerprint: str, outputs: Sequence[str | Path] = (),
                  duration_s: float | None = None) -> Path:
        """Record a finished step in its own file (atomically); returns the record's path.
        ``duration_s``: the step's own run time in seconds."""
        record = {"name": name, "fingerprint": fingerprint, "outputs": [str(p) for p in outputs],
                  "duration_s": duration_s, "host": socket.gethostname(), "pid": os.getpid(),
                  "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        return atomic_write_json(self.done_dir / f"{record_stem(name)}.json", record)

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
        elapsed = time.perf_counter() - t0
        self.mark_done(name, fingerprint, outputs, duration_s=elapsed)
        log(f"[done] {name} in {elapsed:.1f} s")
        return True

    @property
    def steps(self) -> dict[str, dict[str, Any]]:
        """A copy of the recorded steps (name -> fingerprint and outputs)."""
        found = {k: dict(v) for k, v in self._legacy.items()}
        for path in sorted(self.done_dir.glob("*.json")):
            entry = _read_json(path)
            if entry and "name" in entry:
                found[entry["name"]] = {"fingerprint": entry.get("fingerprint"), "outputs": entry.get("outputs", [])}
        return found

    # jobs in flight (what the driver knows; never decides "done") -------------------------
    def set_state(self, name: str, state: str, **info: object) -> Path:
        """Record that job ``name`` is ``submitted``, ``running`` or ``failed`` (with e.g.
        ``job_id``, ``log``, ``error``), atomically, in the job's own state file."""
        record = {"name": name, "state": state, "updated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  **info}
        return atomic_write_json(self.jobs_dir / f"{record_stem(name)}.json", record)

    def state(self, name: str) -> dict[str, Any] | None:
        """The last in-flight state recorded for ``name`` (None when none)."""
        return _read_json(self.jobs_dir / f"{record_stem(name)}.json")

    def clear_state(self, name: str) -> None:
        """Forget ``name``'s in-flight state (it is done, or about to be resubmitted)."""
        (self.jobs_dir / f"{record_stem(name)}.json").unlink(missing_ok=True)


class StudyLock:
    """The exclusive lock of one run directory (``<run_dir>/study.lock``), held for the
    whole of a ``crossling study``; a second study on the same directory is refused with
    a clear message (the kernel drops the lock when its holder dies, so a killed study
    never blocks the next one)."""

    def __init__(self, run_dir: str | Path) -> None:
        from featstore.cache import WriterLock

        self.run_dir = Path(run_dir)
        self._lock = WriterLock(self.run_dir / "study")  # locks <run_dir>/study.lock

    @property
    def path(self) -> Path:
        """The lock file."""
        return self._lock.path

    def __enter__(self) -> StudyLock:
        from featstore.cache import CacheLockedError

        try:
            self._lock.__enter__()
        except CacheLockedError:
            holder = "?"
            try:
                holder = self.path.read_text(encoding="utf-8").strip() or "?"
            except OSError:
                pass
            raise StudyLockedError(
                f"{self.run_dir}: another `crossling study` (pid {holder}) is running on this output "
                f"(lock {self.path}); wait for it to finish, or watch it with `crossling study --status`"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(*exc)

    def held_elsewhere(self) -> bool:
        """True when another process holds the lock now (a study is running)."""
        try:
            with self:
                return False
        except StudyLockedError:
            return True
