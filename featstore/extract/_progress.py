"""Progress bar of an extraction: utterances, hours of audio, speed as x real time."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class ExtractProgress:
    """A rich progress bar; a no-op when ``enabled`` is False."""

    def __init__(self, total_utts: int, done_utts: int, enabled: bool = True, label: str = "extracting") -> None:
        self.enabled = enabled
        self.audio_s = 0.0
        self._t0 = time.perf_counter()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("utts"),
            TextColumn("{task.fields[hours]:.2f} h audio"), TextColumn("{task.fields[rt]:.1f}x real time"),
            TimeRemainingColumn(), disable=not enabled,
        )
        self._task = self._progress.add_task(label, total=total_utts, completed=done_utts, hours=0.0, rt=0.0)

    def advance(self, n_utts: int, audio_s: float) -> None:
        """``n_utts`` more utterances done, holding ``audio_s`` seconds of audio."""
        self.audio_s += audio_s
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        self._progress.update(self._task, advance=n_utts, hours=self.audio_s / 3600, rt=self.audio_s / elapsed)

    def __enter__(self) -> ExtractProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()
