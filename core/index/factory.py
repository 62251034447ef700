"""FAISS indexes named by a factory string; cosine similarity = inner product of unit vectors."""

from __future__ import annotations

import faiss
import numpy as np

from core.index.errors import IndexStoreError
from core.vectors import normalize  # noqa: F401  (re-exported: the index's callers use it from here)

DEFAULT_FACTORY = "Flat"
DEFAULT_NPROBE = 16  # IVF lists probed per query: good recall at a small fraction of a Flat scan
DEFAULT_EF_SEARCH = 64  # HNSW candidate list; faiss's default (16) loses recall at k > 10


def parse_factory(factory: str, dim: int) -> faiss.Index:
    """An empty index for ``factory``; a bad string raises IndexStoreError (not faiss's C++ trace)."""
    try:
        return faiss.index_factory(int(dim), factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        detail = str(e).strip().splitlines()[-1][-160:]
        raise IndexStoreError(
            f"invalid FAISS factory string {factory!r} (examples: Flat, HNSW32, IVF1024,Flat, "
            f"IVF4096,PQ32): {detail}"
        ) from None


def _inner(index: faiss.Index) -> faiss.Index:
    index = faiss.downcast_index(index)
    # OPQ/PCA wrappers hold the real index one level down.
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index


def min_training_vectors(index: faiss.Index) -> tuple[int, str]:
    """Fewest vectors that can train ``index`` (k-means needs one point per centroid), and why."""
    if index.is_trained:
        return 0, ""
    need, why = 1, "training"
    try:
        nlist = faiss.extract_index_ivf(index).nlist
        need, why = nlist, f"{nlist} IVF lists"
    except RuntimeError:
        pass
    pq = getattr(_inner(index), "pq", None)
    if pq is not None and pq.ksub > need:
        need, why = int(pq.ksub), f"{pq.ksub} PQ centroids per sub-quantizer"
    return int(need), why


def check_trainable(index: faiss.Index, factory: str, count: int) -> None:
    """Refuse early (before any embedding) when ``count`` vectors cannot train ``factory``."""
    need, why = min_training_vectors(index)
    if count < need:
        lists = max(1, count // 39)  # faiss wants ~39 points per centroid
        raise IndexStoreError(
            f"factory {factory!r} needs at least {need} vectors to train ({why}) but the data has "
            f"only {count}; use a smaller index (e.g. 'IVF{lists},Flat') or 'Flat'"
        )


def tune(index: faiss.Index) -> faiss.Index:
    """Search-time parameters that are not saved with the index (nprobe, efSearch)."""
    try:
        ivf = faiss.extract_index_ivf(index)
        ivf.nprobe = min(DEFAULT_NPROBE, ivf.nlist)
    except RuntimeError:
        pass
    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = max(inner.hnsw.efSearch, DEFAULT_EF_SEARCH)
    return index


def make_index(factory: str, vectors: np.ndarray) -> faiss.Index:
    """Build (train if needed, add) a ``factory`` index over unit ``vectors`` (n, d)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index = parse_factory(factory, x.shape[1])
    check_trainable(index, factory, len(x))
    if not index.is_trained:
        try:
            index.train(x)
        except RuntimeError as e:  # any other training limit faiss enforces
            raise IndexStoreError(f"cannot train {factory!r} on {len(x)} vectors: "
                                  f"{str(e).strip().splitlines()[-1][-200:]}") from None
    index.add(x)
    return tune(index)


