"""Export a selection of indexed frames for labelling: a folder (or ZIP) of the frames as they are,
plus a ``manifest.jsonl`` with their labels, split and clip, which is itself a dataset (the
importers and ``scenescope index`` read it), so labels edited there come back as a new dataset."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.atomic import atomic_folder
from core.data.manifest import BASE_COLUMNS, resolve_inside, write_manifest

if TYPE_CHECKING:
    from core.index import IndexStore


def _rows(store: IndexStore, ids: np.ndarray) -> list[dict[str, Any]]:
    ids = np.asarray(ids, np.int64)
    if not len(ids):
        raise ValueError("nothing selected to export")
    bad = [int(i) for i in ids if i < 0 or i >= len(store)]
    if bad:
        raise ValueError(f"rows {bad[:5]} are outside this index (0..{len(store) - 1})")
    cols = list(BASE_COLUMNS) + list(store.schema.names)
    return store.meta.iloc[np.unique(ids)][cols].to_dict(orient="records")


def export_frames_folder(store: IndexStore, ids: np.ndarray, out: str | Path) -> Path:
    """Copy the frames of rows ``ids`` under ``out`` (same relative paths) and write its manifest;
    the folder appears whole or not at all (``core.atomic.atomic_folder``)."""
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out} already exists; choose another name")
    rows = _rows(store, ids)
    with atomic_folder(out) as tmp:
        for r in rows:
            dst = resolve_inside(tmp, r["path"])  # a path escaping the root is refused, as on import
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(resolve_inside(store.data_root, r["path"]), dst)
        write_manifest(tmp, rows, store.schema, origin=f"selection of {store.path}")
    return out


def export_frames_zip(store: IndexStore, ids: np.ndarray) -> bytes:
    """The same folder as a ZIP in memory (frames stored, not recompressed: they are JPEG/PNG)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="scenescope-export-") as tmp:
        folder = export_frames_folder(store, ids, Path(tmp) / "selection")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    z.write(p, Path("selection") / p.relative_to(folder))
        return buf.getvalue()


__all__ = ["export_frames_folder", "export_frames_zip"]
