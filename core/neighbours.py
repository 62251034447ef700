"""The one neighbour search: ``neighbours(store, queries, k, exclude=...) -> (D, I)``.

Every page, command and benchmark finds voters here. Three things can shape a search:

- ``exclude``, the leave-out rule for queries that are themselves indexed frames, named in the
  spirit of scikit-learn's ``LeaveOneGroupOut``: ``"nothing"`` (an outside query: an upload),
  ``"frame"`` (the query's own row may not answer) or ``"clip"`` (no frame of the query's clip
  may answer: adjacent frames of a clip are near-duplicates, so letting them vote flatters every
  score). Which one applies to indexed frames is decided once, in ``core.scoring``.
- ``among``: the rows allowed to answer (e.g. the train split), as row ids or a boolean mask.
- ``space``: a (values, d) matrix of prompt embeddings; frames are then compared by their vectors
  of cosines to those prompts (an attribute's own space) instead of by the whole embedding.

A plain search (nothing excluded, every row, the whole embedding) goes to the store's own FAISS
index, approximate or not as its factory string says. Any shaped search is exact (a flat inner
product over the stored vectors), so a leave-out score never depends on an ANN index's recall.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np

from core.vectors import normalize

if TYPE_CHECKING:
    import faiss

    from core.index import IndexStore

LEAVE_OUT = ("nothing", "frame", "clip")

# Per store: clip codes and the flat indexes of shaped searches (a store is immutable once built).
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FLAT_MAX = 8  # flat indexes kept per store (one per voter set and space)
# Above this many bytes of voter vectors a shaped search scans the (memory-mapped) vectors in chunks
# instead of copying them into a cached flat index: an index larger than RAM stays larger than RAM.
_FLAT_BYTES = 512 << 20
_CHUNK_ROWS = 1 << 16


def neighbours(
    store: IndexStore,
    queries: np.ndarray,
    k: int,
    *,
    exclude: str = "nothing",
    query_rows: np.ndarray | None = None,
    among: np.ndarray | None = None,
    space: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest stored frames of each query, nearest first: (similarities, row ids).

    Both are (n, k); where fewer than ``k`` frames may answer, ids are -1 and similarities -inf.
    ``query_rows`` (the queries' own rows in ``store``) is needed by ``exclude="frame"|"clip"``.
    """
    if exclude not in LEAVE_OUT:
        raise ValueError(f"exclude={exclude!r}: choose one of {', '.join(LEAVE_OUT)}")
    q = normalize(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
    if q.shape[1] != store.dim:
        raise ValueError(f"queries have dimension {q.shape[1]}; this index holds {store.dim}")
    rows = None
    if exclude != "nothing":
        if query_rows is None:
            raise ValueError(f"exclude={exclude!r} needs query_rows (the queries' own rows in the index)")
        rows = np.asarray(query_rows, dtype=np.int64).reshape(-1)
        if len(rows) != len(q):
            raise ValueError(f"{len(q)} queries but {len(rows)} query rows")
    k = int(k)
    if k <= 0 or len(q) == 0 or len(store) == 0:
        return np.full((len(q), max(k, 0)), -np.inf, np.float32), np.full((len(q), max(k, 0)), -1, np.int64)
    if exclude == "nothing" and among is None and space is None:
        sims, ids = store.search(q, k)
        return _pad(sims, ids, k)
    allowed = _allowed_rows(store, among)
    extra = 0 if rows is None else _largest_group(store, rows, exclude)
    fetch = min(k + extra, len(allowed))
    if not fetch:
        sims, ids = np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
    elif len(allowed) * store.dim * 4 > _FLAT_BYTES:  # too big to copy into RAM: scan it in chunks
        sims, ids = _chunked_search(store, allowed, space, q, fetch)
    else:
        sims, local = _flat_index(store, allowed, space).search(_in_space(q, space), fetch)
        ids = np.where(local >= 0, allowed[np.maximum(local, 0)], -1)
    if rows is not None:
        ids = np.where(_excluded(store, ids, rows, exclude), -1, ids)
    return _first_k(sims, ids, k)


def voters_of(store: IndexStore, split: str | None) -> np.ndarray | None:
    """Rows of ``split`` (the voters of a leave-out evaluation), None for every row."""
    if split is None:
        return None
    return np.flatnonzero(store.meta["split"].astype(str).to_numpy() == split)


# ---- helpers --------------------------------------------------------------------------------
def _cache(store: IndexStore) -> dict:
    return _CACHE.setdefault(store, {})


def clip_codes(store: IndexStore) -> np.ndarray:
    """One integer per row naming its clip (frames without a clip id are each their own clip)."""
    cache = _cache(store)
    if "clips" not in cache:
        clips = store.meta["clip_id"].astype(str).to_numpy()
        codes = np.unique(clips, return_inverse=True)[1].astype(np.int64)
        lone = clips == ""
        codes[lone] = codes.max(initial=-1) + 1 + np.arange(int(lone.sum()))
        cache["clips"] = codes
    return cache["clips"]


def _largest_group(store: IndexStore, rows: np.ndarray, exclude: str) -> int:
    if exclude == "frame":
        return 1
    codes = clip_codes(store)
    return int(np.bincount(codes)[np.unique(codes[rows])].max(initial=1))


def _excluded(store: IndexStore, ids: np.ndarray, rows: np.ndarray, exclude: str) -> np.ndarray:
    if exclude == "frame":
        return ids == rows[:, None]
    codes = clip_codes(store)
    return (ids >= 0) & (codes[np.maximum(ids, 0)] == codes[rows][:, None])


def _allowed_rows(store: IndexStore, among: np.ndarray | None) -> np.ndarray:
    if among is None:
        return np.arange(len(store), dtype=np.int64)
    a = np.asarray(among)
    if a.dtype == bool:
        if len(a) != len(store):
            raise ValueError(f"a mask of {len(a)} rows for an index of {len(store)}")
        return np.flatnonzero(a).astype(np.int64)
    return np.unique(a.astype(np.int64))


def _in_space(x: np.ndarray, space: np.ndarray | None) -> np.ndarray:
    if space is None:
        return np.ascontiguousarray(x, dtype=np.float32)
    return np.ascontiguousarray(prompt_coordinates(x, space), dtype=np.float32)


def prompt_coordinates(x: np.ndarray, prompts: np.ndarray) -> np.ndarray:
    """Each row of ``x`` as its unit-length vector of cosines to ``prompts`` (values, d)."""
    return normalize(np.asarray(x, np.float32) @ np.asarray(prompts, np.float32).T)


def _flat_index(store: IndexStore, allowed: np.ndarray, space: np.ndarray | None) -> faiss.Index:
    """An exact inner-product index over the ``allowed`` rows (in ``space``), cached per store."""
    import hashlib

    import faiss

    key = ("flat", hashlib.sha1(allowed.tobytes()).hexdigest(),
           None if space is None else hashlib.sha1(np.ascontiguousarray(space, np.float32).tobytes()).hexdigest())
    cache = _cache(store)
    flats = cache.setdefault("flat", {})
    if key not in flats:
        x = _in_space(np.asarray(store.embeddings(), dtype=np.float32)[allowed], space)
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        if len(flats) >= _FLAT_MAX:
            flats.pop(next(iter(flats)))
        flats[key] = index
    return flats[key]


def _chunked_search(store: IndexStore, allowed: np.ndarray, space: np.ndarray | None, q: np.ndarray,
                    fetch: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``fetch`` over the ``allowed`` rows, reading ``_CHUNK_ROWS`` stored vectors at a time."""
    import faiss

    x, qs = store.embeddings(), _in_space(q, space)
    heap = faiss.ResultHeap(len(q), fetch, keep_max=True)
    for start in range(0, len(allowed), _CHUNK_ROWS):
        rows = allowed[start:start + _CHUNK_ROWS]
        sims, local = faiss.knn(qs, _in_space(np.asarray(x[rows], np.float32), space), min(fetch, len(rows)),
                                metric=faiss.METRIC_INNER_PRODUCT)
        heap.add_result(sims, np.where(local >= 0, rows[np.maximum(local, 0)], -1))
    heap.finalize()
    return heap.D, heap.I


def _first_k(sims: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first ``k`` hits with id >= 0 (order kept), padded with -1 / -inf."""
    valid = ids >= 0
    order = np.argsort(~valid, axis=1, kind="stable")[:, :k]
    ids = np.take_along_axis(ids, order, axis=1)
    sims = np.take_along_axis(sims, order, axis=1)
    return _pad(np.where(ids >= 0, sims, -np.inf), ids, k)


def _pad(sims: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims = np.where(ids >= 0, sims, -np.inf).astype(np.float32)
    ids = ids.astype(np.int64)
    if ids.shape[1] < k:
        n, m = ids.shape
        sims = np.concatenate([sims, np.full((n, k - m), -np.inf, np.float32)], axis=1)
        ids = np.concatenate([ids, np.full((n, k - m), -1, np.int64)], axis=1)
    return sims, ids


__all__ = ["LEAVE_OUT", "clip_codes", "neighbours", "prompt_coordinates", "voters_of"]
