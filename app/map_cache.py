"""One computation per map key across the workbench's sessions.

Streamlit serves each browser session from its own thread. Two sessions opening the Map of the
same index at once would both run UMAP (minutes at 100k points), so the app lets one thread
compute a given layout while the others with the same key wait for its result. The engine
(``core.maps``) stays free of any front end's threading model.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from core import maps

if TYPE_CHECKING:
    from core.index import IndexStore

_GUARD = threading.Lock()
_KEY_LOCKS: dict[str, threading.Lock] = {}


def _key_lock(key: str) -> threading.Lock:
    with _GUARD:
        return _KEY_LOCKS.setdefault(key, threading.Lock())


def _memo(store: IndexStore, **params: Any) -> str:
    return maps.memo_key(store, maps.index_key(store), maps.UmapParams(**params))


def layout(store: IndexStore, progress: maps.layout.Progress | None = None, **params: Any) -> np.ndarray:
    """``core.maps.umap_projection``, computed once per index and parameters however many ask."""
    with _key_lock("layout:" + _memo(store, **params)):
        return maps.umap_projection(store, progress=progress, **params)


def place(store: IndexStore, embeddings: np.ndarray, method: str = "knn", **kw: Any) -> np.ndarray:
    """``core.maps.place_points``; a ``transform`` refit happens once per index, however many ask."""
    params = {p: kw[p] for p in ("n_neighbors", "min_dist", "seed", "n_epochs") if p in kw}
    with _key_lock("transform:" + _memo(store, **params)):
        return maps.place_points(store, embeddings, method=method, **kw)
