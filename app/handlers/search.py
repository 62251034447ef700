"""Text and image search over the index."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image

if TYPE_CHECKING:
    from core.types import IndexStore, SceneModel


# ---- search ----------------------------------------------------------------------------------------
SEGMENT_HITS = 200  # frame hits grouped into clip segments (more than shown: segments need runs)


def search_scenes(model: SceneModel, store: IndexStore, query: str | Image.Image | np.ndarray,
                  k: int = 12, among: np.ndarray | None = None) -> pd.DataFrame:
    """Indexed frames ranked by similarity to a text (``str``) or an example image, best first;
    ValueError for an empty text. ``among``: only these rows (the sidebar's view)."""
    from core import search

    if among is not None:
        from app.handlers.views import search_in_view

        return search_in_view(model, store, query, among, int(k))
    if isinstance(query, str):
        return search.search_text(model, store, query, k=int(k))
    return search.search_image(model, store, query, k=int(k))


def search_segments(model: SceneModel, store: IndexStore, query: str | Image.Image | np.ndarray,
                    hits: int = SEGMENT_HITS, among: np.ndarray | None = None) -> pd.DataFrame:
    """The top ``hits`` frames for ``query`` (``among``: of these rows) merged into time segments
    inside clips, best first."""
    from core.search import clip_windows

    return clip_windows(search_scenes(model, store, query, k=hits, among=among), store)


SEGMENT_COLUMNS = {"clip_id": "Clip", "start_s": "Start (s)", "end_s": "End (s)", "n_frames": "Matching frames",
                   "best_similarity": "Best similarity", "best_timestamp_s": "Best frame at (s)",
                   "best_id": "Best frame (index row)"}


def segment_table(windows: pd.DataFrame) -> pd.DataFrame:
    """``search_segments``' table with its columns named for people, in reading order."""
    return windows[list(SEGMENT_COLUMNS)].rename(columns=SEGMENT_COLUMNS)
