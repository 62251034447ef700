"""Search over clips and moments: a query vector ranks an index's clip vectors (``core.index.clips``),
and inside each top clip the frames' similarities to the query propose the moment that matches
(``core.retrieval.evaluate.propose_windows``, the windows measured by ``eval-retrieval``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.index.clips import ClipIndex, clips_of
from core.retrieval.evaluate import propose_windows

if TYPE_CHECKING:
    from core.types import IndexStore, SceneModel

CLIP_COLUMNS = ("clip_row", "clip_id", "similarity", "split", "n_frames", "start_s", "end_s", "frame_ids",
                "weights", "moment_start_s", "moment_end_s", "moment_similarity")
DEFAULT_STEP_S = 0.5  # a clip of one timestamp has no spacing to read its frame length from


def rank_clips(store: IndexStore, clips: ClipIndex, vector: np.ndarray, k: int = 6) -> pd.DataFrame:
    """Top-``k`` clips by cosine similarity of their clip vectors to ``vector``, best first, each with
    its frames in time order, their pooling weights, and its best moment (start, end, mean similarity)."""
    q = np.asarray(vector, np.float32).reshape(1, -1)
    if not np.all(np.isfinite(q)) or not np.any(q):
        raise ValueError("the query vector is zero or not finite")
    sims, ids = clips.search(q, k)
    ts = store.meta["timestamp_s"].to_numpy(np.float64)
    emb = store.embeddings()
    unit = q[0] / np.linalg.norm(q[0])
    rows = []
    for sim, c in zip(sims[0], ids[0], strict=True):
        if c < 0:
            continue
        frames = clips.frames(int(c), ts)
        fs = np.asarray(emb[frames], np.float32) @ unit
        start, end, msim = best_moment(ts[frames], fs)
        info = clips.table.iloc[int(c)]
        rows.append({"clip_row": int(c), "clip_id": str(info["clip_id"]), "similarity": float(sim),
                     "split": str(info["split"]), "n_frames": int(info["n_frames"]),
                     "start_s": float(info["start_s"]), "end_s": float(info["end_s"]),
                     "frame_ids": frames.astype(np.int64), "weights": clips.frame_weight[frames].astype(np.float32),
                     "moment_start_s": start, "moment_end_s": end, "moment_similarity": msim})
    return pd.DataFrame(rows, columns=list(CLIP_COLUMNS))


def best_moment(times: np.ndarray, scores: np.ndarray) -> tuple[float, float, float]:
    """The top window of ``propose_windows`` over one clip's frames: (start_s, end_s, mean score of
    its frames); end_s is the last frame's time plus one frame step."""
    step = float(np.median(np.diff(times))) if len(times) > 1 else DEFAULT_STEP_S
    step = step if step > 0 else DEFAULT_STEP_S
    start, end, _ = propose_windows(times, scores, step, top=1)[0]
    inside = (times >= start - 1e-9) & (times < end - 1e-9)
    return float(start), float(end), float(scores[inside].mean())


def moments_table(ranked: pd.DataFrame) -> pd.DataFrame:
    """The ranked clips' moments, best mean frame similarity first (moments of different clips compare
    by their frames' similarity, not by the clip-relative window score)."""
    cols = ["clip_id", "moment_start_s", "moment_end_s", "moment_similarity", "similarity", "clip_row"]
    out = ranked[cols].sort_values(["moment_similarity", "clip_id"], ascending=[False, True], kind="stable")
    return out.rename(columns={"similarity": "clip_similarity"}).reset_index(drop=True)


def search_clips(model: SceneModel, store: IndexStore, query: str | np.ndarray, k: int = 6) -> pd.DataFrame:
    """Text (``str``) or a query vector -> the top ``k`` clips (``rank_clips``); empty without clips."""
    if isinstance(query, str):
        if not query.strip():
            raise ValueError("empty search text: describe the scene to look for")
        query = model.embed_texts([query.strip()])[0]
    clips = clips_of(store, model)
    if clips is None:
        return pd.DataFrame(columns=list(CLIP_COLUMNS))
    return rank_clips(store, clips, query, k)


__all__ = ["CLIP_COLUMNS", "best_moment", "moments_table", "rank_clips", "search_clips"]
