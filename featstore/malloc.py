"""glibc malloc settings for the toolkit's two ways of allocating memory.

Large tensors are ordinary ``malloc`` blocks, and glibc's defaults suit neither of our loops:

- **extraction** allocates hidden states whose size changes with every clip: blocks kept in
  the heap fragment it and the resident set grows clip after clip; extraction on CPU hands
  large blocks back at once and, once the resident set has grown, the free pages inside
  the heap (:class:`HeapTrimmer`, :func:`release_free_memory`);
- **probe training** allocates the same blocks at every step (a stack of heads' weight
  gradients, 6 MiB; each minibatch, 1.5 MiB): glibc hands freed blocks back to the OS (top
  of the heap over the trim threshold, or mmapped) and the next step faults the same pages
  in again. :func:`keep_freed_memory` keeps them for reuse.

Settings are process-wide and stay set: in a one-process study the steps after the probes
(fine-tuning, diarization) run with the probes' settings, which only keeps more freed
memory resident; extraction sets its own mmap threshold and trims as above.

A setting is left alone when its environment variable is set (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_ARENA_MAX``): the user's choice wins. Other C
libraries (musl, macOS, Windows) are left alone.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
"""``mallopt`` parameters (glibc's ``malloc.h``)."""

ENV_OF = {M_TRIM_THRESHOLD: "MALLOC_TRIM_THRESHOLD_", M_MMAP_THRESHOLD: "MALLOC_MMAP_THRESHOLD_",
          M_ARENA_MAX: "MALLOC_ARENA_MAX"}
"""Each parameter's environment variable (a user who set it has chosen)."""

REUSE_MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
"""Probe training: blocks below this come from the heap (glibc's largest allowed threshold)."""

REUSE_TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024
"""Probe training: free memory at the top of the heap is handed back only above this."""


def mallopt(settings: Mapping[int, int]) -> dict[int, bool]:
    """Apply each ``{parameter: value}`` with glibc's ``mallopt`` unless its environment
    variable is set; returns, per parameter, whether it was applied (``False`` everywhere
    off Linux or without glibc)."""
    applied = dict.fromkeys(settings, False)
    libc = _glibc()
    call = getattr(libc, "mallopt", None)
    if call is None:
        return applied
    for param, value in settings.items():
        if ENV_OF.get(param, "") not in os.environ:
            applied[param] = bool(call(int(param), int(value)))
    return applied


def release_free_memory() -> bool:
    """Hand the free pages of every malloc arena back to the OS (glibc's ``malloc_trim(0)``:
    the top of each heap and whole free pages inside it), so that memory freed in a
    fragmented heap stops counting in the resident set.

    The pages are faulted in again when next used, so extraction calls it through a
    :class:`HeapTrimmer` (when the resident set has grown), not after every batch.
    Returns whether it ran (glibc only)."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    libc.malloc_trim(0)
    return True


def resident_bytes() -> int | None:
    """This process's resident set now, bytes (``/proc/self/statm``; ``None`` off Linux)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class HeapTrimmer:
    """Call after each unit of work (an extraction batch): hands the heap's free pages back
    (:func:`release_free_memory`) when the resident set has grown by more than ``growth``
    (a fraction) since the first call or the last trim, then takes the trimmed size as the
    new baseline. Between trims the resident set stays within ``growth`` of the last
    trimmed size; what is live (the model, a batch's activations) is never trimmed, so
    the size itself still follows what the work holds.

    Measured on the 2-core AMD EPYC VM: wav2vec 2.0 base over 60 clips, the resident set
    after each batch drifts 871 -> 1,194 MiB (+37 %) untrimmed; a 6-layer x 1024 wav2vec 2.0
    (XLS-R's width) over clips of 1-20 s peaks at 1.29 GiB for 25 clips and 1.77 GiB for 100
    untrimmed (+37 %), 1.23 and 1.28 GiB with this trimmer (+3.9 %); XLS-R size itself
    (24 x 1024, ``featstore bench --family xlsr``): +13.0 % from 50 to 200 clips with it,
    +29.4 % without (``docs/large-models.md``)."""

    def __init__(self, growth: float = 0.05) -> None:
        if not growth >= 0:
            raise ValueError(f"growth must be >= 0, got {growth}")
        self.growth = growth
        self.baseline: int | None = None
        self.trims = 0

    def __call__(self) -> bool:
        """Trim if the resident set grew past the baseline; returns whether it trimmed."""
        rss = resident_bytes()
        if rss is None:
            return False
        if self.baseline is None or rss < self.baseline:
            self.baseline = rss
            return False
        if rss <= self.baseline * (1 + self.growth) or not release_free_memory():
            return False
        self.trims += 1
        self.baseline = resident_bytes() or rss
        return True


@functools.lru_cache(maxsize=1)
def _glibc() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        import ctypes.util

        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Keep freed blocks of up to 32 MiB in the heap, for loops that allocate the same sizes
    at every step (the stacked probe trainer calls it; process-wide, idempotent).

    Measured on the 2-core AMD EPYC VM, one thread, 16 paper heads (768-128-16-4) stacked,
    each setting in a fresh process: 5 epochs of 1,280 utterances took 1.41 s instead of
    1.72 s (short runs; over a whole grid job glibc's own adaptive threshold catches up and
    the gain is smaller). The resident set stays what the loop holds at its peak. Returns
    whether both settings were applied."""
    done = mallopt({M_MMAP_THRESHOLD: REUSE_MMAP_THRESHOLD_BYTES, M_TRIM_THRESHOLD: REUSE_TRIM_THRESHOLD_BYTES})
    return all(done.values())
