"""Exclusive, non-blocking ``flock`` locks on a lock file, shared by training jobs and index builds.

``flock`` rather than a pid file: the kernel drops the lock when the last descriptor of its holder
closes, however the holder dies (kill -9 included), so a crash never leaves a stale lock behind.
The lock file itself is never deleted: unlinking it would let two processes lock two different
inodes under the same name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

HOLDER_BYTES = 200


def mark_lock(fd: int, holder: str) -> None:
    """Record who holds the lock in its file, so that a refused process can name the holder."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{holder}\n".encode(), 0)


@contextlib.contextmanager
def exclusive_lock(
    path: str | Path, busy: Callable[[list[str]], Exception], holder: str | None = None
) -> Iterator[int]:
    """Hold an exclusive lock on ``path`` (created with its folder if missing); yields the descriptor.

    If another process holds it, raise ``busy(words)`` at once, ``words`` being what the holder
    recorded with :func:`mark_lock` split on whitespace (empty if nothing). ``holder`` is recorded
    as soon as the lock is taken.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy(os.pread(fd, HOLDER_BYTES, 0).decode(errors="replace").split()) from None
        if holder is not None:
            mark_lock(fd, holder)
        yield fd
    finally:
        os.close(fd)


__all__ = ["exclusive_lock", "mark_lock"]
