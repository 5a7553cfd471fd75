"""The cache writer lock: no ``.lock`` left beside a finished cache, and still one writer
at a time when the lock file is removed on every release."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import pytest

from featstore.cache import CacheLockedError, WriterLock
from featstore.errors import CrosslingError


def test_lock_file_removed_on_release(tmp_path):
    target = tmp_path / "c" / "toy.h5"
    with WriterLock(target) as lock:
        assert lock.path.exists()
        with pytest.raises(CacheLockedError, match="another extraction") as info:
            with WriterLock(target):
                pass
        assert isinstance(info.value, CrosslingError)
    assert not Path(str(target) + ".lock").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == []


def test_lock_file_removed_when_the_writer_fails(tmp_path):
    target = tmp_path / "toy.h5"
    with pytest.raises(ZeroDivisionError):
        with WriterLock(target):
            1 / 0  # noqa: B018
    assert not Path(str(target) + ".lock").exists()


def _bump(target: str, counter: str, rounds: int) -> None:
    for _ in range(rounds):
        with WriterLock(target, wait=True):
            value = int(Path(counter).read_text())
            time.sleep(0.001)  # widen the window a broken lock would let two writers into
            Path(counter).write_text(str(value + 1))


def test_one_writer_at_a_time_although_the_file_is_removed(tmp_path):
    target, counter = tmp_path / "toy.h5", tmp_path / "count.txt"
    counter.write_text("0")
    ctx = mp.get_context("fork")
    workers = [ctx.Process(target=_bump, args=(str(target), str(counter), 40)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    assert int(counter.read_text()) == 160  # a lost update means two writers held the lock
    assert not Path(str(target) + ".lock").exists()
