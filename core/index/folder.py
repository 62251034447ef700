"""Index folder layout and the atomic swap that puts a finished build in place.

A build writes everything into ``<out>.building/``; ``core.atomic.swap_into_place`` fsyncs it,
renames ``out`` to ``<out>.old``, ``<out>.building`` to ``out`` and deletes ``<out>.old``. A crash
between the two renames leaves only ``<out>.old``, which ``recover`` renames back, so ``out`` is
always a whole index or absent.
A build holds ``<out>.lock`` (an flock) throughout, so two builds never write the same index.
"""

from __future__ import annotations

from pathlib import Path

# The swap and its recovery are the project's one folder-writing mechanism (core.atomic);
# re-exported here for the index code that has always imported them from this module.
from core.atomic import fsync_dir, old_path, recover, swap_into_place

INDEX_FILE = "index.faiss"
META_FILE = "meta.parquet"
EMBEDDINGS_FILE = "embeddings.npy"
MANIFEST_FILE = "manifest.json"  # written last: its presence marks a complete folder
FILES = (INDEX_FILE, META_FILE, EMBEDDINGS_FILE, MANIFEST_FILE)
CHUNKS_DIR = "chunks"


def building_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".building")


def lock_path(out: str | Path) -> Path:
    """The build lock of ``out``: beside it, since the swap renames the folder itself away."""
    out = Path(out)
    return out.with_name(out.name + ".lock")


def is_index_folder(path: Path) -> bool:
    return (path / MANIFEST_FILE).is_file()


__all__ = [
    "CHUNKS_DIR", "EMBEDDINGS_FILE", "FILES", "INDEX_FILE", "MANIFEST_FILE", "META_FILE", "building_path",
    "fsync_dir", "is_index_folder", "lock_path", "old_path", "recover", "swap_into_place",
]
