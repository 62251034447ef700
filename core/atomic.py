"""Crash-safe writes of files and folders, shared by everything the project writes to disk.

Files: written beside the target, fsynced, renamed over it, and the parent folder fsynced, so a
crash leaves the old file or the new one, never a torn one.

Folders (index folders, model folders): built complete in a sibling folder, fsynced, then
swapped in by two renames, ``out -> <out>.old`` and ``new -> out``, after which ``<out>.old`` is
deleted. A crash between the renames leaves only ``<out>.old``; :func:`recover` (run by every
loader and by the next swap) renames it back, so ``out`` is always a whole folder or absent.

``crash_point(name)`` marks each durable step. It does nothing unless the tests set
``SCENESCOPE_CRASH_AT`` (a point name or the 1-based count of points passed) to SIGKILL the
process right there, or ``SCENESCOPE_CRASH_LOG`` to list the points passed, one per line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

CRASH_AT_ENV = "SCENESCOPE_CRASH_AT"
CRASH_LOG_ENV = "SCENESCOPE_CRASH_LOG"
_points_passed = 0


def crash_point(name: str) -> None:
    """Test hook before a rename, replace or fsync (see the module docstring); cheap when unset."""
    at, log = os.environ.get(CRASH_AT_ENV), os.environ.get(CRASH_LOG_ENV)
    if at is None and log is None:
        return
    global _points_passed
    _points_passed += 1
    if log:
        with open(log, "a") as f:
            f.write(f"{_points_passed} {name}\n")
    if at in (name, str(_points_passed)):
        os.kill(os.getpid(), signal.SIGKILL)


class WriteError(OSError):
    """A write that failed and changed nothing; the message names the target."""


def _write_error(target: Path, e: OSError) -> OSError:
    """The OSError of a failed write, naming the target and saying the old version is kept."""
    if isinstance(e, WriteError):  # already worded by an inner atomic write
        return e
    msg = f"cannot write {target}: {e.strerror or e} (the previous version is unchanged)"
    return WriteError(e.errno, msg) if e.errno is not None else WriteError(msg)


def fsync_file(path: str | Path) -> None:
    crash_point("file.fsync")
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: str | Path) -> None:
    """Make renames inside ``path`` durable (best effort: some filesystems refuse)."""
    crash_point("dir.fsync")
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: str | Path) -> None:
    """fsync every file under ``folder`` and every folder in it (the contents before a swap)."""
    folder = Path(folder)
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            fsync_file(Path(dirpath) / name)
        fsync_dir(dirpath)


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``target``.

    A failed write (disk full, read-only folder) raises an OSError naming ``target``; the old
    ``target`` is left as it was and the temporary file is removed.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    except OSError as e:
        raise _write_error(target, e) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except OSError as e:
            raise _write_error(target, e) from None
        try:
            fsync_file(tmp_path)
            crash_point("file.replace")
            os.replace(tmp_path, target)
        except OSError as e:
            raise _write_error(target, e) from None
        fsync_dir(target.parent)
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | Path, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


# ---- folders -------------------------------------------------------------------------------------
def old_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".old")


def recover(out: str | Path) -> bool:
    """If a swap died between its renames, put the previous folder back; True if it did."""
    out, old = Path(out), old_path(out)
    if not out.exists() and old.is_dir():
        crash_point("recover.rename")
        try:
            os.rename(old, out)
        except FileNotFoundError:  # another process recovered it first
            return False
        fsync_dir(out.parent)
        return True
    return False


def swap_into_place(new: Path, out: Path) -> None:
    """Atomically replace folder ``out`` by the complete folder ``new`` (same parent folder).

    ``new`` is fsynced first, so after the rename ``out`` holds durable data whatever happens next.
    """
    new, out = Path(new), Path(out)
    old = old_path(out)
    fsync_tree(new)
    for attempt in range(3):
        recover(out)
        if out.exists():
            if old.exists():  # a stale leftover of an earlier swap that died before its delete
                shutil.rmtree(old)
            crash_point("swap.rename_old")
            os.rename(out, old)
        try:
            crash_point("swap.rename_new")
            os.rename(new, out)
            break
        except OSError:
            # A concurrent load recovered <out>.old into out between our renames: go again.
            if not out.exists() or attempt == 2:
                raise
    fsync_dir(out.parent)
    crash_point("swap.remove_old")
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(out: str | Path) -> Iterator[Path]:
    """Yield an empty ``<out>.partial``; on success it replaces ``out`` (see swap_into_place).

    On any failure the partial folder is removed and ``out`` is left as it was; an OSError names
    ``out``.
    """
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        recover(out)
        if tmp.exists():  # left by a save that was killed; a fixed name so it never piles up
            shutil.rmtree(tmp)
        tmp.mkdir()
    except OSError as e:
        raise _write_error(out, e) from None
    try:
        try:
            yield tmp
            swap_into_place(tmp, out)
        except OSError as e:
            raise _write_error(out, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = [
    "CRASH_AT_ENV", "CRASH_LOG_ENV", "WriteError", "atomic_folder", "atomic_path", "atomic_write_bytes",
    "atomic_write_text", "crash_point", "fsync_dir", "fsync_file", "fsync_tree", "old_path", "recover",
    "swap_into_place",
]
