"""One writer per cache: an advisory ``fcntl.flock`` on ``<cache>.lock``, removed on release."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from featstore.errors import CrosslingError


class CacheLockedError(CrosslingError, RuntimeError):
    """Another process is writing the same cache."""


class WriterLock:
    """Exclusive lock on ``<path>.lock``, held while a cache is being written.

    The kernel drops the lock when the holder dies (even by SIGKILL), so a stale lock
    file never blocks a rerun. On a clean release the lock file is removed, so a finished
    cache has no ``.lock`` beside it. Removal is safe against a waiter that opened the
    file just before: the holder unlinks it *while still holding the lock*, and every
    acquirer checks, once it holds the lock, that the path still names the very file it
    locked (same device and inode), else it retries on the new file. On network
    filesystems without ``flock`` support the lock may be a no-op; run one writer per
    cache there.
    """

    def __init__(self, cache_path: str | Path, wait: bool = False) -> None:
        self.path = Path(str(cache_path) + ".lock")
        self.wait = wait
        self._fd: int | None = None

    def _same_file(self, fd: int) -> bool:
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)

    def __enter__(self) -> WriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise CacheLockedError(
                    f"{self.path.with_suffix('')}: another extraction (pid {holder}) is writing this cache; "
                    "wait for it to finish or pass --wait"
                ) from None
            if self._same_file(fd):
                break
            # the previous holder removed the file we opened: lock the current one instead
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            try:
                if self._same_file(self._fd):
                    self.path.unlink()
            except OSError:  # already gone, or a read-only folder: the lock is released anyway
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
