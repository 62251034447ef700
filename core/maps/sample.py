"""Maps of millions of points: UMAP fitted on a sample, every other point placed by k-NN.

UMAP's cost grows with the point count (100k points took 39-103 s on 2 shared cores; 1M would be
most of an hour and gigabytes of neighbour graph). Above ``UMAP_SAMPLE`` points the layout is
fitted on a uniform random sample only, and each other point is placed at the softmax-weighted
average position of its nearest sample points (the same rule that places an upload's frames,
``core.maps.place``). The neighbours come from the one neighbour search (``core.neighbours``,
``among`` = the sample) in the sample's top PCA directions, so the search costs 50 dimensions per
pair instead of the embedding's 256-768.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.maps.layout import PCA_DIMS, Progress, UmapParams, compute_layout

if TYPE_CHECKING:
    from core.index import IndexStore

UMAP_SAMPLE = 20_000  # points UMAP is fitted on; the rest are placed (a 20k fit: ~10-30 s)
PLACE_K = 10
PLACE_TEMPERATURE = 0.02  # as core.maps.place: the nearest sample points dominate
_CHUNK = 1 << 15  # placed per neighbour search: bounded RAM whatever the index size


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """The sorted rows UMAP is fitted on (all rows when ``n <= size``)."""
    if n <= size:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False)).astype(np.int64)


def sampled_layout(store: IndexStore, params: UmapParams, progress: Progress | None = None,
                   sample_size: int | None = None) -> np.ndarray:
    """(N, 2) layout: UMAP of ``sample_size`` random rows, the others placed by k-NN among them."""
    from core.neighbours import neighbours

    report = progress or (lambda _f, _m: None)
    emb = store.embeddings()
    n = len(emb)
    rows = sample_rows(n, UMAP_SAMPLE if sample_size is None else sample_size, params.seed)
    xs = np.asarray(emb[rows], dtype=np.float32)
    report(0.02, f"fitting the map on a sample of {len(rows):,} of {n:,} points")
    out = np.empty((n, 2), np.float32)
    out[rows] = compute_layout(xs, params, lambda f, m: report(0.02 + 0.6 * f, m))
    space = _directions(xs, params.seed)
    rest = np.setdiff1d(np.arange(n, dtype=np.int64), rows, assume_unique=True)
    for start in range(0, len(rest), _CHUNK):
        part = rest[start:start + _CHUNK]
        sims, ids = neighbours(store, np.asarray(emb[part], np.float32), PLACE_K, among=rows, space=space)
        out[part] = knn_positions(sims, ids, out)
        report(0.62 + 0.36 * min(1.0, (start + len(part)) / len(rest)), f"placing {start + len(part):,} of "
               f"{len(rest):,} points beyond the sample")
    return out


def knn_positions(sims: np.ndarray, ids: np.ndarray, layout: np.ndarray,
                  temperature: float = PLACE_TEMPERATURE) -> np.ndarray:
    """Softmax(similarity / ``temperature``)-weighted mean of the neighbours' ``layout`` rows."""
    valid = ids >= 0
    w = np.exp(np.where(valid, sims - sims[:, :1], -np.inf) / temperature) * valid
    pos = (w[..., None] * layout[np.where(valid, ids, 0)]).sum(axis=1)
    return (pos / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _directions(x: np.ndarray, seed: int) -> np.ndarray | None:
    """The sample's top principal directions (PCA_DIMS, d), or None when the vectors are that small."""
    if x.shape[1] <= PCA_DIMS or len(x) <= PCA_DIMS:
        return None
    from sklearn.decomposition import PCA

    return PCA(n_components=PCA_DIMS, random_state=seed).fit(x).components_.astype(np.float32)


__all__ = ["UMAP_SAMPLE", "knn_positions", "sample_rows", "sampled_layout"]
