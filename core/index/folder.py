"""Index folder layout and the atomic swap that puts a finished build in place.

A build writes everything into ``<out>.building/``; the swap renames ``out`` to ``<out>.old``,
``<out>.building`` to ``out`` and deletes ``<out>.old``. A crash between the two renames leaves only
``<out>.old``, which :func:`recover` renames back, so ``out`` is always a whole index or absent.
A build holds ``<out>.lock`` (an flock) throughout, so two builds never write the same index.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

INDEX_FILE = "index.faiss"
META_FILE = "meta.parquet"
EMBEDDINGS_FILE = "embeddings.npy"
MANIFEST_FILE = "manifest.json"  # written last: its presence marks a complete folder
FILES = (INDEX_FILE, META_FILE, EMBEDDINGS_FILE, MANIFEST_FILE)
CHUNKS_DIR = "chunks"


def building_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".building")


def old_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".old")


def lock_path(out: str | Path) -> Path:
    """The build lock of ``out``: beside it, since the swap renames the folder itself away."""
    out = Path(out)
    return out.with_name(out.name + ".lock")


def fsync_dir(path: Path) -> None:
    """Make renames inside ``path`` durable (best effort: some filesystems refuse)."""
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


def recover(out: str | Path) -> bool:
    """If a swap died between its renames, put the previous index back; True if it did."""
    out, old = Path(out), old_path(out)
    if not out.exists() and old.is_dir():
        try:
            os.rename(old, out)
        except FileNotFoundError:  # another process recovered it first
            return False
        fsync_dir(out.parent)
        return True
    return False


def is_index_folder(path: Path) -> bool:
    return (path / MANIFEST_FILE).is_file()


def swap_into_place(new: Path, out: Path) -> None:
    """Atomically replace ``out`` by the complete folder ``new`` (same parent folder)."""
    old = old_path(out)
    for attempt in range(3):
        recover(out)
        if out.exists():
            if old.exists():  # a stale leftover of an earlier swap that died before its delete
                shutil.rmtree(old)
            os.rename(out, old)
        try:
            os.rename(new, out)
            break
        except OSError:
            # A concurrent load recovered <out>.old into out between our renames: go again.
            if not out.exists() or attempt == 2:
                raise
    fsync_dir(out.parent)
    shutil.rmtree(old, ignore_errors=True)
