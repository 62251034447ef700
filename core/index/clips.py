"""Clip vectors beside an index's frame vectors, so that Search can rank whole clips.

At build time (``core.index.build``) the frames of every clip with more than one indexed frame are
pooled into one unit clip vector, with the bundled AFA student of the model when one exists
(``assets/clip_students/<model identity>.safetensors``, TeachCLIP-style, ``core.retrieval``) and
by mean pooling (CLIP4Clip's meanP) otherwise. The index folder then holds, beside its four files:

- ``clips.parquet``: one row per clip (clip_id, split, n_frames, start_s, end_s), row i = clip i;
- ``clips.npz``: ``vectors`` (C, d) float32, ``frame_clip`` (N,) the clip row of each frame
  (-1 outside clips) and ``frame_weight`` (N,) its pooling weight in that clip (0 outside);
- ``clips.json`` (written last): model identity, pooling, student file digest, counts.

Loading checks the identity twice: the clips must come from the model that built the frame vectors
(a stale clip file is refused), and with ``model`` given, from that model.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.atomic import atomic_write_bytes, atomic_write_text
from core.index.errors import IndexMismatchError, IndexStoreError
from core.index.factory import make_index

if TYPE_CHECKING:
    import faiss

    from core.index.store import IndexStore
    from core.types import SceneModel

CLIPS_TABLE = "clips.parquet"
CLIPS_ARRAYS = "clips.npz"
CLIPS_MANIFEST = "clips.json"
CLIP_FILES = (CLIPS_TABLE, CLIPS_ARRAYS, CLIPS_MANIFEST)
POOLINGS = ("auto", "afa", "meanp")
STUDENTS_DIR = Path(__file__).resolve().parents[2] / "assets" / "clip_students"
TABLE_COLUMNS = ("clip_id", "split", "n_frames", "start_s", "end_s")


@dataclass
class ClipIndex:
    """An index's clips: table row i, vector i and FAISS id i are clip i."""

    table: pd.DataFrame
    vectors: np.ndarray  # (C, d) unit
    frame_clip: np.ndarray  # (N,) int64 clip row of each indexed frame, -1 outside clips
    frame_weight: np.ndarray  # (N,) float32 pooling weight of each frame in its clip
    manifest: dict[str, Any]
    index: faiss.Index | None = None

    def __len__(self) -> int:
        return len(self.table)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine top-``k`` clips: (similarities (n, k), clip rows (n, k)), exact (FAISS Flat)."""
        k = min(int(k), len(self))
        q = np.atleast_2d(np.asarray(queries, np.float32))
        if k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        if self.index is None:
            self.index = make_index("Flat", self.vectors)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        sims, ids = self.index.search(q, k)
        return sims, ids.astype(np.int64)

    def frames(self, clip: int, timestamps: np.ndarray) -> np.ndarray:
        """Frame rows of clip row ``clip`` in time order."""
        rows = np.flatnonzero(self.frame_clip == int(clip))
        return rows[np.argsort(timestamps[rows], kind="stable")]


# ---- pooling ----------------------------------------------------------------------------------
def student_path(identity: str) -> Path:
    return STUDENTS_DIR / (re.sub(r"[^A-Za-z0-9._-]", "_", identity) + ".safetensors")


def _pooler(identity: str, pooling: str) -> tuple[str, Any, str | None]:
    """("afa", student, digest) or ("meanp", None, None); ``auto`` takes the bundled student if any."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    path = student_path(identity)
    if pooling == "meanp" or (pooling == "auto" and not path.is_file()):
        return "meanp", None, None
    if not path.is_file():
        raise IndexStoreError(f"no AFA student for model {identity} ({path} missing); use pooling 'meanp'")
    from core.retrieval.distill import load_afa

    student, meta = load_afa(path)
    if meta.get("model") != identity:  # a renamed file must not pool another model's vectors
        raise IndexMismatchError(f"{path}: AFA student trained for {meta.get('model')}, not {identity}")
    return "afa", student, hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def build_clips(store: IndexStore, pooling: str = "auto") -> ClipIndex | None:
    """Pool the store's frame vectors into clip vectors; None when no clip has two indexed frames."""
    import torch

    from core.retrieval.clipvec import meanp, pad_clips

    meta = store.meta
    clip = meta["clip_id"].astype(str).to_numpy()
    sizes = pd.Series(clip[clip != ""]).value_counts()
    ids = sorted(sizes.index[sizes > 1])  # a lone frame is a still, not a clip (as in core.search)
    if not ids:
        return None
    model = str(store.manifest["model"])
    kind, student, digest = _pooler(model, pooling)
    emb = np.asarray(store.embeddings(), np.float32)
    rows = np.flatnonzero(np.isin(clip, ids))
    ts = meta["timestamp_s"].to_numpy(np.float64)
    # pad_clips orders frames by frame_index; order by time instead, which is what a strip shows
    order = np.argsort(ts[rows], kind="stable")
    rows = rows[order]
    frames, mask = pad_clips(emb[rows], clip[rows].tolist(), np.arange(len(rows)).tolist(), ids)
    with torch.no_grad():
        f, m = torch.from_numpy(frames), torch.from_numpy(mask)
        if kind == "afa":
            vec, w = student(f, m)
        else:
            vec, w = meanp(f, m), m.float() / m.float().sum(1, keepdim=True)
    frame_clip = np.full(len(meta), -1, np.int64)
    frame_weight = np.zeros(len(meta), np.float32)
    where = {c: i for i, c in enumerate(ids)}
    seen: dict[str, int] = {}
    w = w.numpy()
    for r in rows:  # rows are in time order, as pad_clips laid them out per clip
        c = where[clip[r]]
        frame_clip[r], frame_weight[r] = c, w[c, seen.get(clip[r], 0)]
        seen[clip[r]] = seen.get(clip[r], 0) + 1
    split = meta["split"].astype(str).to_numpy()
    table = pd.DataFrame({
        "clip_id": ids,
        "split": [split[frame_clip == i][0] for i in range(len(ids))],
        "n_frames": [int(sizes[c]) for c in ids],
        "start_s": [float(ts[frame_clip == i].min()) for i in range(len(ids))],
        "end_s": [float(ts[frame_clip == i].max()) for i in range(len(ids))],
    })
    manifest = {"model": model, "pooling": kind, "student": digest, "count": len(ids),
                "dim": int(vec.shape[1]), "frames": int(len(meta))}
    return ClipIndex(table, vec.numpy().astype(np.float32), frame_clip, frame_weight, manifest)


# ---- files ------------------------------------------------------------------------------------
def write_clips(folder: str | Path, clips: ClipIndex | None) -> None:
    """Write the clip files into an index folder, each atomically, the manifest last (None: none)."""
    folder = Path(folder)
    if clips is None:
        return
    buf = io.BytesIO()
    clips.table.to_parquet(buf, index=False)
    atomic_write_bytes(folder / CLIPS_TABLE, buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, vectors=clips.vectors, frame_clip=clips.frame_clip, frame_weight=clips.frame_weight)
    atomic_write_bytes(folder / CLIPS_ARRAYS, buf.getvalue())
    atomic_write_text(folder / CLIPS_MANIFEST, json.dumps(clips.manifest, indent=2) + "\n")


def has_clips(folder: str | Path) -> bool:
    return (Path(folder) / CLIPS_MANIFEST).is_file()


def load_clips(store: IndexStore, model: SceneModel | None = None) -> ClipIndex | None:
    """The clips saved beside ``store`` (None when it has none); refuses clips of another model."""
    if store.path is None or not has_clips(store.path):
        return None
    folder = store.path
    try:
        manifest = json.loads((folder / CLIPS_MANIFEST).read_text())
        table = pd.read_parquet(folder / CLIPS_TABLE)
        with np.load(folder / CLIPS_ARRAYS) as z:
            vectors, frame_clip, frame_weight = z["vectors"], z["frame_clip"], z["frame_weight"]
    except Exception as e:  # json, pyarrow and numpy raise unrelated types for a torn file
        raise IndexStoreError(f"{folder}: clip files unreadable ({e}); rebuild the index") from None
    check_identity(manifest, store, model, folder)
    n, c = len(store), len(table)
    if vectors.shape != (c, store.dim) or frame_clip.shape != (n,) or frame_weight.shape != (n,):
        raise IndexStoreError(f"{folder}: clip files disagree with the index ({c} clips, vectors "
                              f"{vectors.shape}, {len(frame_clip)} frame rows for {n} frames); rebuild it")
    return ClipIndex(table, vectors.astype(np.float32), frame_clip.astype(np.int64),
                     frame_weight.astype(np.float32), manifest)


def check_identity(manifest: dict, store: IndexStore, model: SceneModel | None, where: Path) -> None:
    built = store.manifest["model"]
    if manifest.get("model") != built:
        raise IndexMismatchError(f"{where / CLIPS_MANIFEST}: clip vectors of model {manifest.get('model')} "
                                 f"beside frame vectors of {built}; rebuild the index")
    if model is not None and model.identity != built:
        raise IndexMismatchError(f"index {where} (clips included) was built with model {built}; loaded model "
                                 f"is {model.identity}; rebuild with that model")


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def clips_of(store: IndexStore, model: SceneModel | None = None) -> ClipIndex | None:
    """The store's clips: saved ones, else pooled now in memory (an index built before clip vectors
    existed still ranks clips; nothing is written into it). Cached per store."""
    if store not in _CACHE:
        _CACHE[store] = load_clips(store, model) or build_clips(store)
    clips = _CACHE[store]
    if clips is not None and model is not None and model.identity != clips.manifest["model"]:
        raise IndexMismatchError(f"clip vectors of model {clips.manifest['model']}; loaded model is "
                                 f"{model.identity}; rebuild the index with that model")
    return clips


__all__ = ["CLIPS_ARRAYS", "CLIPS_MANIFEST", "CLIPS_TABLE", "CLIP_FILES", "ClipIndex", "POOLINGS", "build_clips",
           "check_identity", "clips_of", "has_clips", "load_clips", "student_path", "write_clips"]
