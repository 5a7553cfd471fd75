"""glibc malloc settings: the trimmer hands pages back only when the resident set grew,
settings the user chose in the environment are left alone, and freed pages really leave
the resident set."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from featstore import malloc

ROOT = Path(__file__).resolve().parents[2]
glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc (Linux)")


def test_trimmer_trims_only_past_the_growth_and_rebases(monkeypatch):
    sizes = iter([1000, 1040, 1060, 900, 960, 940, 980])  # resident set after each batch, then after each trim
    calls = []
    monkeypatch.setattr(malloc, "resident_bytes", lambda: next(sizes))
    monkeypatch.setattr(malloc, "release_free_memory", lambda: calls.append(1) or True)
    trim = malloc.HeapTrimmer(growth=0.05)
    assert trim() is False and trim.baseline == 1000  # the first batch sets the baseline
    assert trim() is False  # +4 %: kept
    assert trim() is True and trim.baseline == 900  # +6 %: trimmed, then the trimmed size is the baseline
    assert trim() is True and trim.baseline == 940  # 960 > 945
    assert trim() is False  # 980 <= 987
    assert (len(calls), trim.trims) == (2, 2)
    with pytest.raises(ValueError, match="growth"):
        malloc.HeapTrimmer(growth=-0.1)


@glibc_only
def test_the_users_environment_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "4096")
    applied = malloc.mallopt({malloc.M_TRIM_THRESHOLD: 1 << 30, malloc.M_ARENA_MAX: 8})
    assert applied == {malloc.M_TRIM_THRESHOLD: False, malloc.M_ARENA_MAX: True}


@glibc_only
def test_release_gives_fragmented_free_pages_back():
    # 300 blocks of 1 MiB from the heap, every other one freed: the free half is in holes
    # between live blocks, which only malloc_trim's page release (not top trimming) returns
    code = textwrap.dedent("""
        import ctypes, json
        from featstore import malloc
        malloc.mallopt({malloc.M_MMAP_THRESHOLD: 32 << 20, malloc.M_TRIM_THRESHOLD: 1 << 30})
        libc = ctypes.CDLL("libc.so.6"); libc.malloc.restype = ctypes.c_void_p; libc.free.argtypes = [ctypes.c_void_p]
        blocks = [libc.malloc(1 << 20) for _ in range(300)]
        for b in blocks:
            ctypes.memset(b, 1, 1 << 20)
        for b in blocks[::2]:
            libc.free(b)
        before = malloc.resident_bytes()
        ran = malloc.release_free_memory()
        print(json.dumps([ran, before, malloc.resident_bytes()]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=60)
    ran, before, after = __import__("json").loads(out.stdout)
    assert ran and before - after > 100 * 2**20  # most of the 150 MiB of holes left the resident set
