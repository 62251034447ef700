"""Placing new points (an upload's frames) on an index's cached map.

A fitted UMAP object is never written to disk (it only pickles, and unpickling is unsafe), so new
points are placed either by a k-NN average of their neighbours' positions or by an in-process refit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from core.maps.layout import (
    MIN_UMAP_POINTS,
    UmapParams,
    _reduce,
    _Reduced,
    _umap,
    index_key,
    memo_key,
    umap_projection,
)

if TYPE_CHECKING:
    from core.index import IndexStore

KNN_PLACE_K = 10
# Softmax temperature over cosine similarity for k-NN placement: near-duplicates (sim ~1) dominate,
# neighbours 0.05 lower weigh ~8% as much, so a point lands in its closest cluster, not between two.
KNN_PLACE_TEMPERATURE = 0.02


@dataclass(eq=False)
class _ReducerKey:
    """lru_cache key for a refit: equal for the same index contents and parameters, carries the store."""

    store: IndexStore = field(compare=False)
    key: str

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ReducerKey) and other.key == self.key


@dataclass
class _Fitted:
    reduced: _Reduced
    reducer: Any


@lru_cache(maxsize=2)
def _fitted_reducer(rk: _ReducerKey, params: UmapParams) -> _Fitted:
    store = rk.store
    x = np.asarray(store.embeddings(), dtype=np.float32)
    reduced = _reduce(x, params.seed)
    # transform() needs only the neighbour search structures, not an optimised layout: one epoch
    # from a random start builds them, then the cached layout becomes the map new points join.
    reducer = _umap(params, len(x), n_epochs=1, init="random")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        reducer.fit(reduced.x)
    reducer.embedding_ = umap_projection(store, n_neighbors=params.n_neighbors, min_dist=params.min_dist,
                                         seed=params.seed, n_epochs=params.n_epochs)
    reducer.n_epochs = params.n_epochs  # transform() runs n_epochs // 3, or 100/30 when None
    return _Fitted(reduced, reducer)


def place_points(
    store: IndexStore,
    embeddings: np.ndarray,
    method: Literal["knn", "transform"] = "knn",
    k: int = KNN_PLACE_K,
    layout: np.ndarray | None = None,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
    n_epochs: int | None = None,
) -> np.ndarray:
    """(n, 2) map positions for new vectors on the index's cached UMAP layout.

    ``knn`` (default, milliseconds): softmax-weighted average of the ``k`` nearest indexed points'
    positions. ``transform``: umap-learn's own transform, after a one-off refit held in memory per
    index (seconds to minutes; the first one in a process also compiles umap's search code).
    The UMAP parameters must match the map being shown; ``layout`` (default: the cached one for
    those parameters) is what ``knn`` averages over, while ``transform`` always joins the cached map.
    """
    x = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
    if len(x) == 0:
        return np.zeros((0, 2), np.float32)
    params = UmapParams(int(n_neighbors), float(min_dist), int(seed), n_epochs)
    if layout is None:
        layout = umap_projection(store, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed,
                                 n_epochs=n_epochs)
    if method == "knn":
        return _knn_place(store, x, np.asarray(layout, dtype=np.float32), k)
    if method == "transform":
        if len(store) < MIN_UMAP_POINTS:
            return _knn_place(store, x, np.asarray(layout, dtype=np.float32), k)
        memo = memo_key(store, index_key(store), params)
        fitted = _fitted_reducer(_ReducerKey(store, memo), params)  # one refit per index and parameters
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore")
            out = fitted.reducer.transform(fitted.reduced.apply(x))
        return np.asarray(out, dtype=np.float32)
    raise ValueError(f"unknown placement method {method!r}; expected 'knn' or 'transform'")


def _knn_place(store: IndexStore, x: np.ndarray, layout: np.ndarray, k: int) -> np.ndarray:
    sims, ids = store.search(x, max(1, int(k)))
    valid = ids >= 0
    w = np.exp((sims - sims[:, :1]) / KNN_PLACE_TEMPERATURE) * valid
    pos = (w[..., None] * layout[np.where(valid, ids, 0)]).sum(axis=1)
    return (pos / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)
