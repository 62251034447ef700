"""The Search page's engine: rank indexed scenes by similarity to a text or an image, and turn
frame hits inside clips into time windows ("0:12-0:17 of clip X looks like a snowy roundabout")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from core.models.scene_model import ImageLike
    from core.types import IndexStore, SceneModel

HIT_BASE = ("path", "clip_id", "frame_index", "timestamp_s", "split")
WINDOW_COLUMNS = ("clip_id", "start_s", "end_s", "best_similarity", "n_frames", "best_id", "best_timestamp_s")


def search_vector(store: IndexStore, vector: np.ndarray, k: int = 20) -> pd.DataFrame:
    """Top-``k`` indexed frames by cosine similarity to one query vector, best first.

    Columns: id, similarity, path, clip_id, frame_index, timestamp_s, split, one per attribute.
    """
    q = np.atleast_2d(np.asarray(vector, dtype=np.float32))
    if q.shape[0] != 1:
        raise ValueError(f"expected one query vector, got {q.shape[0]}")
    if not np.all(np.isfinite(q)) or not np.any(q):
        raise ValueError("the query vector is zero or not finite")
    sims, ids = store.search(q, int(k))
    keep = ids[0] >= 0  # FAISS pads with -1 when the index holds fewer than k vectors
    ids, sims = ids[0][keep], sims[0][keep]
    cols = list(HIT_BASE) + list(store.schema.names)
    df = store.meta.iloc[ids][cols].reset_index(drop=True)
    df.insert(0, "similarity", sims.astype(np.float32))
    df.insert(0, "id", ids.astype(np.int64))
    return df


def search_text(model: SceneModel, store: IndexStore, query: str, k: int = 20) -> pd.DataFrame:
    """Frames ranked by similarity to a free-text description (e.g. "snowy night, 5-way intersection")."""
    query = (query or "").strip()
    if not query:
        raise ValueError("empty search text: describe the scene to look for")
    return search_vector(store, model.embed_texts([query])[0], k)


def search_image(model: SceneModel, store: IndexStore, image: ImageLike, k: int = 20) -> pd.DataFrame:
    """Frames ranked by similarity to an example image (PIL image or HxWx3 array)."""
    return search_vector(store, model.embed_images([image])[0], k)


def clip_windows(
    hits: pd.DataFrame, store: IndexStore, gap_s: float = 1.0, min_similarity: float | None = None
) -> pd.DataFrame:
    """Group hits inside clips into time windows, best window first.

    Only clips with more than one frame in the index count (a lone frame is a still, not a clip).
    Within a clip, hits sorted by time whose timestamps are at most ``gap_s`` apart join one window;
    a longer gap starts a new one, so one missed frame between two hits does not split a window
    as long as ``gap_s`` exceeds the sampling step. Columns: clip_id, start_s, end_s,
    best_similarity, n_frames (hits in the window), best_id, best_timestamp_s.
    """
    if hits.empty:
        return _empty_windows()
    h = hits[["id", "similarity"]].copy()
    if min_similarity is not None:
        h = h[h["similarity"] >= float(min_similarity)]
    meta = store.meta
    clip = meta["clip_id"].astype(str)
    sizes = clip[clip != ""].value_counts()
    multi = set(sizes.index[sizes > 1])
    ids = h["id"].to_numpy(np.int64)
    h["clip_id"] = clip.to_numpy()[ids]
    # Times come from the index, not the hit table, so a trimmed hit table still works.
    h["t"] = meta["timestamp_s"].to_numpy(np.float64)[ids]
    h = h[h["clip_id"].isin(multi)].drop_duplicates("id").reset_index(drop=True)
    if h.empty:
        return _empty_windows()
    h = h.sort_values(["clip_id", "t"], kind="stable")
    new_window = (h["clip_id"] != h["clip_id"].shift()) | (h["t"].diff() > float(gap_s))
    h["window"] = new_window.cumsum()
    best = h.loc[h.groupby("window")["similarity"].idxmax()].set_index("window")
    g = h.groupby("window")
    out = pd.DataFrame({
        "clip_id": g["clip_id"].first(),
        "start_s": g["t"].min(),
        "end_s": g["t"].max(),
        "best_similarity": g["similarity"].max().astype(np.float64),
        "n_frames": g.size().astype(np.int64),
        "best_id": best["id"].astype(np.int64),
        "best_timestamp_s": best["t"],
    })
    out = out.sort_values(["best_similarity", "clip_id", "start_s"], ascending=[False, True, True], kind="stable")
    return out.reset_index(drop=True)[list(WINDOW_COLUMNS)]


def _empty_windows() -> pd.DataFrame:
    return pd.DataFrame({
        "clip_id": pd.Series(dtype=str), "start_s": pd.Series(dtype=np.float64),
        "end_s": pd.Series(dtype=np.float64), "best_similarity": pd.Series(dtype=np.float64),
        "n_frames": pd.Series(dtype=np.int64), "best_id": pd.Series(dtype=np.int64),
        "best_timestamp_s": pd.Series(dtype=np.float64),
    })


def search_clip_windows(
    model: SceneModel,
    store: IndexStore,
    query: str,
    k: int = 200,
    gap_s: float = 1.0,
    min_similarity: float | None = None,
) -> pd.DataFrame:
    """Text -> time windows: the top ``k`` frame hits grouped by ``clip_windows``."""
    return clip_windows(search_text(model, store, query, k), store, gap_s=gap_s, min_similarity=min_similarity)


__all__ = ["clip_windows", "search_clip_windows", "search_image", "search_text", "search_vector"]
