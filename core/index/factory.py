"""FAISS indexes named by a factory string; cosine similarity = inner product of unit vectors."""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from core.index.errors import IndexStoreError
from core.vectors import normalize  # noqa: F401  (re-exported: the index's callers use it from here)

DEFAULT_FACTORY = "Flat"
DEFAULT_NPROBE = 16  # IVF lists probed per query: good recall at a small fraction of a Flat scan
LARGE_NPROBE = 32  # from LARGE_IVF vectors on: 10M on disk reached recall@5 0.938 at nprobe 32 with a
LARGE_IVF = 3_000_000  # 2000-row re-rank, 8.8 ms p50 (bench/RESULTS.md 12; nprobe 64 gave no more recall)
DEFAULT_EF_SEARCH = 64  # HNSW candidate list; faiss's default (16) loses recall at k > 10
POINTS_PER_LIST = 128  # k-means training sample per IVF list (faiss warns below 39, caps at 256)
PQ_TRAIN_POINTS = 256 * 256  # faiss's own cap for a PQ's 256-centroid k-means
TRAIN_SEED = 0  # the training sample's draw: the same vectors give the same index


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
        ivf.nprobe = min(LARGE_NPROBE if ivf.ntotal >= LARGE_IVF else DEFAULT_NPROBE, ivf.nlist)
    except RuntimeError:
        pass
    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = max(inner.hnsw.efSearch, DEFAULT_EF_SEARCH)
    return index


def ivf_or_none(index: faiss.Index) -> Any:
    """The IVF part of ``index`` as its own type (IndexIVFPQ...), or None."""
    try:
        return faiss.downcast_index(faiss.extract_index_ivf(index))
    except RuntimeError:
        return None


def without_polysemous(index: faiss.Index) -> faiss.Index:
    """Switch off polysemous training (``IVF..,PQ32`` turns it on; 127 s vs 20.5 s at 1M, unused)."""
    for part in (index, ivf_or_none(index)):
        if part is not None and hasattr(part, "do_polysemous_training"):
            part.do_polysemous_training = False
    return index


def training_size(index: faiss.Index, count: int) -> int:
    """How many of ``count`` vectors to train ``index`` on: for IVF lists and PQ codebooks a sample
    (k-means needs ~50-250 points per centroid, not all of them); other trainable parts (a PCA, a
    scalar quantizer's ranges) see every vector."""
    ivf = ivf_or_none(index)
    has_pq = hasattr(ivf, "pq") or hasattr(faiss.downcast_index(index), "pq")
    if ivf is None and not has_pq:
        return count
    need = POINTS_PER_LIST * (ivf.nlist if ivf is not None else 1)
    if has_pq:
        need = max(need, PQ_TRAIN_POINTS)
    return min(count, need)


def train_rows(count: int, size: int, seed: int = TRAIN_SEED) -> np.ndarray:
    """``size`` of ``count`` row numbers drawn uniformly with ``seed``, sorted (one pass over a file)."""
    if size >= count:
        return np.arange(count, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(count, size, replace=False))


def make_index(factory: str, vectors: np.ndarray, seed: int = TRAIN_SEED) -> faiss.Index:
    """Build (train if needed, add) a ``factory`` index over unit ``vectors`` (n, d); IVF lists and
    PQ codebooks are trained on a seeded sample (``training_size``), as ``core.index.ondisk`` does."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)  # no copy when it already is
    index = without_polysemous(parse_factory(factory, x.shape[1]))
    check_trainable(index, factory, len(x))
    if not index.is_trained:
        size = training_size(index, len(x))
        try:
            index.train(x if size >= len(x) else x[train_rows(len(x), size, seed)])
        except RuntimeError as e:  # any other training limit faiss enforces
            raise IndexStoreError(f"cannot train {factory!r} on {len(x)} vectors: "
                                  f"{str(e).strip().splitlines()[-1][-200:]}") from None
    index.add(x)
    return tune(index)


