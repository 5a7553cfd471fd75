"""Progress of an extraction: utterances, hours of audio, speed as x real time.

A Rich bar on a terminal, plain one-line messages otherwise (a log never holds a bar cut
at 80 columns): :class:`featstore.console.StepProgress`.
"""

from __future__ import annotations

import time

from featstore.console import StepProgress


class ExtractProgress:
    """The progress of one extraction; a no-op when ``enabled`` is False."""

    def __init__(self, total_utts: int, done_utts: int, enabled: bool = True, label: str = "extracting") -> None:
        self.enabled = enabled
        self.audio_s = 0.0
        self._t0 = time.perf_counter()
        self._progress = StepProgress(f"extracting {label}", total_utts, "utts", done_utts, enabled=enabled)

    def advance(self, n_utts: int, audio_s: float) -> None:
        """``n_utts`` more utterances done, holding ``audio_s`` seconds of audio."""
        self.audio_s += audio_s
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        self._progress.advance(n_utts, f"{self.audio_s / 3600:.2f} h audio, {self.audio_s / elapsed:.1f}x real time")

    def __enter__(self) -> ExtractProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)
