"""Near-duplicate frames across splits: the leakage that grouped splits cannot see.

Two clips of the same place on the same day can look identical; if one is in train and the
other in test, a k-NN classifier "remembers" the answer. This finds such pairs by embedding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

COLUMNS = ["i", "j", "split_i", "split_j", "similarity"]
# Below this many candidate pairs a NumPy matrix product is as fast as building a FAISS index.
_NUMPY_MAX_PAIRS = 4_000_000


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # Zero vectors stay zero (similarity 0 to everything) instead of becoming NaN.
    return x / np.where(norms > 0, norms, 1.0)


def _knn_numpy(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims_out = np.empty((len(queries), k), dtype=np.float32)
    ids_out = np.empty((len(queries), k), dtype=np.int64)
    chunk = max(1, _NUMPY_MAX_PAIRS // max(len(base), 1))
    for s in range(0, len(queries), chunk):
        sims = queries[s : s + chunk] @ base.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else np.argsort(-sims, axis=1)
        top_sims = np.take_along_axis(sims, top, axis=1)
        ids_out[s : s + chunk] = top
        sims_out[s : s + chunk] = top_sims
    return sims_out, ids_out


def _knn_faiss(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    sims, ids = index.search(queries, k)
    return sims, ids


def find_leakage(
    embeddings: np.ndarray,
    splits: Sequence[str] | np.ndarray,
    threshold: float = 0.95,
    k: int = 5,
    backend: str = "auto",
) -> pd.DataFrame:
    """Pairs of frames in *different* splits whose cosine similarity is at least ``threshold``.

    Each split is searched only against the other splits, so a crowd of within-split duplicates
    cannot push a cross-split duplicate out of the ``k`` nearest. Returns one row per unordered
    pair (``i < j``) with columns i, j, split_i, split_j, similarity, most similar first.
    ``backend`` is "auto" (NumPy for small inputs, FAISS otherwise), "numpy" or "faiss".
    """
    emb = np.asarray(embeddings)
    labels = np.asarray(splits).astype(str)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (N, d), got shape {emb.shape}")
    if len(labels) != len(emb):
        raise ValueError(f"{len(emb)} embeddings but {len(labels)} split labels")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if backend not in ("auto", "numpy", "faiss"):
        raise ValueError(f"unknown backend {backend!r} (auto, numpy or faiss)")
    x = _normalised(emb)
    found: dict[tuple[int, int], float] = {}
    for name in np.unique(labels):
        q_ids = np.flatnonzero(labels == name)
        b_ids = np.flatnonzero(labels != name)
        if len(b_ids) == 0:
            continue
        kk = min(k, len(b_ids))
        use_numpy = backend == "numpy" or (backend == "auto" and len(q_ids) * len(b_ids) <= _NUMPY_MAX_PAIRS)
        search = _knn_numpy if use_numpy else _knn_faiss
        sims, nn = search(x[b_ids], x[q_ids], kk)
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows, cols, strict=True):
            a, b = int(q_ids[r]), int(b_ids[nn[r, c]])
            key = (min(a, b), max(a, b))
            found[key] = max(found.get(key, -1.0), float(sims[r, c]))
    if not found:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(COLUMNS, [int, int, str, str, float], strict=True)})
    pairs = np.array(list(found.keys()), dtype=np.int64)
    out = pd.DataFrame(
        {
            "i": pairs[:, 0],
            "j": pairs[:, 1],
            "split_i": labels[pairs[:, 0]],
            "split_j": labels[pairs[:, 1]],
            "similarity": np.fromiter(found.values(), dtype=np.float64, count=len(found)),
        }
    )
    return out.sort_values(["similarity", "i", "j"], ascending=[False, True, True], ignore_index=True)


__all__ = ["find_leakage"]
