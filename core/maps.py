"""The Map page's engine: a 2-D UMAP layout of an index, cached beside it, plus selection tools.

The layout is the expensive part (minutes at 100k points), so it is computed once per index and
saved as ``<index>/umap.npy`` with ``umap.json`` naming the parameters and the index it belongs to.
A fitted UMAP object is never written to disk (it only pickles, and unpickling is unsafe), so new
points are placed either by a k-NN average of their neighbours' positions or by an in-process refit.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.atomic import atomic_path, atomic_write_text
from core.schema import UNKNOWN

Progress = Callable[[float, str], None]

UMAP_FILE = "umap.npy"
UMAP_META_FILE = "umap.json"
PCA_ABOVE = 50_000  # above this many points UMAP runs on a PCA reduction (NN-descent cost grows with d)
PCA_DIMS = 50
MIN_UMAP_POINTS = 8  # fewer points than this cannot make a neighbour graph; lay them out by PCA
KNN_PLACE_K = 10
# Softmax temperature over cosine similarity for k-NN placement: near-duplicates (sim ~1) dominate,
# neighbours 0.05 lower weigh ~8% as much, so a point lands in its closest cluster, not between two.
KNN_PLACE_TEMPERATURE = 0.02

COLOR_SPLIT = "split"
COLOR_CORRECT = "correct"  # "correct" (all attributes) or "correct:<attribute>"
CORRECT, WRONG, ABSTAINED, UNLABELLED = "correct", "wrong", "abstained", "unlabelled"
SELECTION_BASE = ("path", "clip_id", "split", "timestamp_s")


# ---- layout -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UmapParams:
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0
    n_epochs: int | None = None  # None: umap-learn's default (500 below 10k points, else 200)

    def as_dict(self) -> dict[str, Any]:
        return {"n_neighbors": self.n_neighbors, "min_dist": self.min_dist, "seed": self.seed,
                "n_epochs": self.n_epochs}


def index_key(store: Any) -> dict[str, Any]:
    """What identifies the exact contents of an index: a cache made for another one is stale.

    ``created`` has one-second resolution, so a sample of the vectors is hashed as well.
    """
    x = store.embeddings()
    n = len(x)
    rows = np.unique(np.linspace(0, n - 1, num=min(n, 64)).astype(np.int64)) if n else np.zeros(0, int)
    sample = np.ascontiguousarray(np.asarray(x[rows], dtype=np.float32))
    manifest = getattr(store, "manifest", {}) or {}
    return {
        "count": int(n),
        "dim": int(x.shape[1]) if x.ndim == 2 else 0,
        "created": str(manifest.get("created", "")),
        "model": str(manifest.get("model", "")),
        "fingerprint": hashlib.sha1(sample.tobytes()).hexdigest(),
    }


# In-memory copies keyed by (folder or object id, key): Streamlit reruns the page script on every
# click, and re-reading + re-hashing the .npy each time is wasted work. Bounded: layouts are N x 2.
_LAYOUTS: OrderedDict[str, np.ndarray] = OrderedDict()
_LAYOUTS_MAX = 8
# Streamlit serves each browser session from its own thread: guard the dicts, and let only one
# thread compute a given layout while others with the same key wait for its result.
_GUARD = threading.Lock()
_KEY_LOCKS: dict[str, threading.Lock] = {}


def _key_lock(memo: str) -> threading.Lock:
    with _GUARD:
        return _KEY_LOCKS.setdefault(memo, threading.Lock())


def _remember(cache: OrderedDict, memo: str, value: Any, limit: int) -> None:
    with _GUARD:
        cache[memo] = value
        cache.move_to_end(memo)
        while len(cache) > limit:
            cache.popitem(last=False)


def _recall(cache: OrderedDict, memo: str) -> Any:
    with _GUARD:
        if memo in cache:
            cache.move_to_end(memo)
            return cache[memo]
    return None


def _memo_key(store: Any, key: dict[str, Any], params: UmapParams) -> str:
    where = str(Path(store.path).resolve()) if getattr(store, "path", None) else f"mem:{id(store)}"
    return json.dumps([where, key, params.as_dict()], sort_keys=True)


def umap_projection(
    store: Any,
    progress: Progress | None = None,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
    n_epochs: int | None = None,
    refresh: bool = False,
) -> np.ndarray:
    """(N, 2) float32 UMAP layout of the index's embeddings (cosine), row i = index id i.

    Computed once and cached in ``<index>/umap.npy`` (+ ``umap.json``); later calls with the same
    parameters on the same index reuse it. ``refresh`` forces a recompute. ``progress(fraction,
    message)`` is called as the work advances. A store without a folder is cached in memory only.
    """
    params = UmapParams(int(n_neighbors), float(min_dist), int(seed), n_epochs)
    report = progress or (lambda _f, _m: None)
    key = index_key(store)
    memo = _memo_key(store, key, params)
    with _key_lock(memo):
        layout = None if refresh else _recall(_LAYOUTS, memo)
        if layout is not None:
            report(1.0, "map loaded")
            return layout
        folder = Path(store.path) if getattr(store, "path", None) else None
        layout = None if refresh or folder is None else _read_cache(folder, key, params)
        if layout is not None:
            report(1.0, "map loaded from cache")
        else:
            layout = compute_layout(np.asarray(store.embeddings(), dtype=np.float32), params, report)
            if folder is not None:
                report(0.98, "saving map")
                _write_cache(folder, layout, key, params)
            report(1.0, "map ready")
        _remember(_LAYOUTS, memo, layout, _LAYOUTS_MAX)
        return layout


def _read_cache(folder: Path, key: dict[str, Any], params: UmapParams) -> np.ndarray | None:
    try:
        meta = json.loads((folder / UMAP_META_FILE).read_text())
        layout = np.load(folder / UMAP_FILE, allow_pickle=False)
    except (OSError, ValueError, json.JSONDecodeError):
        return None
    ok = (
        isinstance(meta, dict)
        and meta.get("index") == key
        and meta.get("params") == params.as_dict()
        # The two files are replaced one after the other; the hash ties this layout to this JSON.
        and meta.get("sha1") == hashlib.sha1(np.ascontiguousarray(layout).tobytes()).hexdigest()
        and layout.shape == (key["count"], 2)
    )
    return layout.astype(np.float32, copy=False) if ok else None


def _write_cache(folder: Path, layout: np.ndarray, key: dict[str, Any], params: UmapParams) -> None:
    meta = {"index": key, "params": params.as_dict(),
            "sha1": hashlib.sha1(np.ascontiguousarray(layout).tobytes()).hexdigest()}
    try:
        with atomic_path(folder / UMAP_FILE) as tmp, open(tmp, "wb") as f:
            np.save(f, layout)
        atomic_write_text(folder / UMAP_META_FILE, json.dumps(meta, indent=2) + "\n")
    except OSError as e:  # a read-only index (e.g. baked into an image) still gets a map, uncached
        warnings.warn(f"could not cache the map in {folder}: {e}", RuntimeWarning, stacklevel=3)


@dataclass
class _Reduced:
    """Input to UMAP: the vectors themselves, or their PCA projection above PCA_ABOVE points."""

    x: np.ndarray
    pca: Any = None

    def apply(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float32)
        return y if self.pca is None else self.pca.transform(y).astype(np.float32)


def _reduce(x: np.ndarray, seed: int) -> _Reduced:
    if len(x) <= PCA_ABOVE or x.shape[1] <= PCA_DIMS:
        return _Reduced(x)
    from sklearn.decomposition import PCA

    pca = PCA(n_components=PCA_DIMS, random_state=seed)
    return _Reduced(pca.fit_transform(x).astype(np.float32), pca)


def _umap(params: UmapParams, n: int, **extra: Any) -> Any:
    import umap  # ~2 s import plus numba compilation on first fit: only pay it on the Map page

    kwargs: dict[str, Any] = {
        "n_neighbors": max(2, min(params.n_neighbors, n - 1)),
        "min_dist": params.min_dist,
        "metric": "cosine",
        "random_state": params.seed,
        "n_jobs": 1,  # a seed forces one thread anyway; saying so silences umap's warning
        "n_epochs": params.n_epochs,
    }
    kwargs.update(extra)
    return umap.UMAP(**kwargs)


class _EpochStream(io.TextIOBase):
    """A file for umap's tqdm bar that turns "n/total" updates into progress callbacks."""

    def __init__(self, report: Progress, lo: float, hi: float) -> None:
        self.report, self.lo, self.hi = report, lo, hi

    def write(self, s: str) -> int:
        m = re.search(r"(\d+)/(\d+)", s)
        if m and int(m.group(2)) > 0:
            frac = int(m.group(1)) / int(m.group(2))
            self.report(self.lo + (self.hi - self.lo) * frac, f"optimising layout ({m.group(1)}/{m.group(2)} epochs)")
        return len(s)


def compute_layout(x: np.ndarray, params: UmapParams | None = None, progress: Progress | None = None) -> np.ndarray:
    """The UMAP layout of ``x`` (no caching); tiny inputs get a PCA layout instead."""
    params = params or UmapParams()
    report = progress or (lambda _f, _m: None)
    n = len(x)
    if n < MIN_UMAP_POINTS:
        return _pca_layout(x)
    if n > PCA_ABOVE:
        report(0.02, f"reducing {n:,} vectors to {PCA_DIMS} dimensions (PCA)")
    reduced = _reduce(x, params.seed)
    report(0.1, f"finding neighbours of {n:,} points")
    reducer = _umap(params, n, tqdm_kwds={"disable": False, "file": _EpochStream(report, 0.3, 0.97),
                                          "bar_format": "{n}/{total}", "mininterval": 0.5})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(n_jobs|spectral|graph is not fully connected).*")
        layout = reducer.fit_transform(reduced.x)
    return np.ascontiguousarray(layout, dtype=np.float32)


def _pca_layout(x: np.ndarray) -> np.ndarray:
    out = np.zeros((len(x), 2), np.float32)
    if len(x) < 2:
        return out
    centred = x - x.mean(axis=0)
    vt = np.linalg.svd(centred, full_matrices=False)[2]
    k = min(2, vt.shape[0])
    out[:, :k] = centred @ vt[:k].T
    return out


# ---- placing new points ---------------------------------------------------------------------------
@dataclass(eq=False)
class _ReducerKey:
    """lru_cache key for a refit: equal for the same index contents and parameters, carries the store."""

    store: Any = field(compare=False)
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
    store: Any,
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
        memo = _memo_key(store, index_key(store), params)
        with _key_lock("transform:" + memo):  # one refit per index, however many sessions ask
            fitted = _fitted_reducer(_ReducerKey(store, memo), params)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore")
            out = fitted.reducer.transform(fitted.reduced.apply(x))
        return np.asarray(out, dtype=np.float32)
    raise ValueError(f"unknown placement method {method!r}; expected 'knn' or 'transform'")


def _knn_place(store: Any, x: np.ndarray, layout: np.ndarray, k: int) -> np.ndarray:
    sims, ids = store.search(x, max(1, int(k)))
    valid = ids >= 0
    w = np.exp((sims - sims[:, :1]) / KNN_PLACE_TEMPERATURE) * valid
    pos = (w[..., None] * layout[np.where(valid, ids, 0)]).sum(axis=1)
    return (pos / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


# ---- selection ------------------------------------------------------------------------------------
def selection_table(store: Any, point_ids: Sequence[int] | np.ndarray) -> pd.DataFrame:
    """The selected frames (in the given order, duplicates dropped): id, path, clip_id, split,
    timestamp_s, then one column per schema attribute."""
    ids = pd.unique(np.asarray(list(point_ids), dtype=np.int64)) if len(point_ids) else np.zeros(0, np.int64)
    n = len(store.meta)
    bad = [int(i) for i in ids if i < 0 or i >= n]
    if bad:
        raise ValueError(f"point ids {bad[:5]} are outside this index (0..{n - 1})")
    cols = list(SELECTION_BASE) + list(store.schema.names)
    df = store.meta.iloc[ids][cols].reset_index(drop=True)
    df.insert(0, "id", ids)
    return df


def export_selection(df: pd.DataFrame, fmt: Literal["csv", "jsonl"] = "csv") -> bytes:
    """UTF-8 bytes of the table as CSV (header row) or JSON Lines (one object per row)."""
    if fmt == "csv":
        return df.to_csv(index=False).encode("utf-8")
    if fmt == "jsonl":
        if df.empty:
            return b""
        return df.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8")
    raise ValueError(f"unknown export format {fmt!r}; expected 'csv' or 'jsonl'")


# ---- colouring ------------------------------------------------------------------------------------
def color_options(store: Any) -> list[str]:
    """What ``color_values`` accepts for this store, in menu order."""
    names = list(store.schema.names)
    return [*names, COLOR_SPLIT, COLOR_CORRECT, *(f"{COLOR_CORRECT}:{a}" for a in names)]


def color_values(store: Any, by: str, predictions: Sequence[Any] | None = None, k: int = 5) -> list[str]:
    """One category string per indexed point for colouring the map.

    ``by``: an attribute name (its value), ``"split"``, ``"correct"`` (every labelled attribute
    predicted right -> "correct", any wrong -> "wrong", else "abstained"/"unlabelled") or
    ``"correct:<attribute>"``. Correctness uses ``predictions`` (label dicts or Votes, one per
    point) or, when None, leave-one-out ``k``-NN predictions (``loo_predictions``).
    """
    names = list(store.schema.names)
    if by in names or by == COLOR_SPLIT:
        return store.meta[by].astype(str).tolist()
    if by == COLOR_CORRECT or by.startswith(COLOR_CORRECT + ":"):
        attrs = names if by == COLOR_CORRECT else [by.split(":", 1)[1]]
        unknown = [a for a in attrs if a not in names]
        if unknown:
            raise ValueError(f"unknown attribute {unknown[0]!r}; expected one of {names}")
        preds = [p.labels() if hasattr(p, "labels") else dict(p)
                 for p in (predictions if predictions is not None else loo_predictions(store, k=k))]
        if len(preds) != len(store.meta):
            raise ValueError(f"{len(preds)} predictions for {len(store.meta)} points")
        truth = store.meta[attrs].astype(str).to_numpy()
        return [_correctness(truth[i], [p.get(a, UNKNOWN) for a in attrs]) for i, p in enumerate(preds)]
    raise ValueError(f"cannot colour by {by!r}; choose one of {color_options(store)}")


def _correctness(truth: Sequence[str], pred: Sequence[str]) -> str:
    judged = [(t, p) for t, p in zip(truth, pred, strict=True) if t != UNKNOWN]
    if not judged:
        return UNLABELLED
    if any(p != UNKNOWN and p != t for t, p in judged):
        return WRONG
    return ABSTAINED if any(p == UNKNOWN for _, p in judged) else CORRECT


_LOO: OrderedDict[str, list[dict[str, str]]] = OrderedDict()
_LOO_MAX = 4


def loo_predictions(store: Any, k: int = 5) -> list[dict[str, str]]:
    """Leave-one-out k-NN labels for every indexed point (its own vector excluded), cached per index."""
    from core.predict import vote_batch

    memo = json.dumps([_memo_key(store, index_key(store), UmapParams()), int(k)])
    with _key_lock("loo:" + memo):
        preds = _recall(_LOO, memo)
        if preds is None:
            votes = vote_batch(store, np.asarray(store.embeddings(), dtype=np.float32), k=k, exclude_self=True)
            preds = [v.labels() for v in votes]
            _remember(_LOO, memo, preds, _LOO_MAX)
        return preds


# ---- comparing layouts ----------------------------------------------------------------------------
def aligned_layouts(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``after`` rotated/reflected, scaled and shifted onto ``before`` (orthogonal Procrustes).

    Two UMAP runs of the same points are free to come out turned or mirrored; aligning them lets
    a before/after view show only real movement. Rows must correspond (same points, same order).
    """
    from scipy.linalg import orthogonal_procrustes

    a = np.asarray(before, dtype=np.float64)
    b = np.asarray(after, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"layouts must have the same (N, d) shape; got {a.shape} and {b.shape}")
    if len(a) == 0:
        return a.astype(np.float32), b.astype(np.float32)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    a0, b0 = a - mu_a, b - mu_b
    norm_b = float((b0**2).sum())
    if norm_b == 0.0:  # all points coincide: nothing to rotate
        return a.astype(np.float32), np.broadcast_to(mu_a, a.shape).astype(np.float32)
    rot, sv_sum = orthogonal_procrustes(b0, a0)
    scale = sv_sum / norm_b
    return a.astype(np.float32), (scale * b0 @ rot + mu_a).astype(np.float32)


__all__ = [
    "COLOR_CORRECT", "COLOR_SPLIT", "UMAP_FILE", "UMAP_META_FILE", "UmapParams", "aligned_layouts",
    "color_options", "color_values", "compute_layout", "export_selection", "index_key", "loo_predictions",
    "place_points", "selection_table", "umap_projection",
]
