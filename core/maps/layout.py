"""The Map's layout: a 2-D UMAP of an index, computed once and cached beside it.

The layout is the expensive part (minutes at 100k points), so it is computed once per index and
saved as ``<index>/umap.npy`` with ``umap.json`` naming the parameters and the index it belongs to.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.atomic import atomic_path, atomic_write_text

if TYPE_CHECKING:
    from core.index import IndexStore

Progress = Callable[[float, str], None]

UMAP_FILE = "umap.npy"
UMAP_META_FILE = "umap.json"
PCA_ABOVE = 50_000  # above this many points UMAP runs on a PCA reduction (NN-descent cost grows with d)
PCA_DIMS = 50
MIN_UMAP_POINTS = 8  # fewer points than this cannot make a neighbour graph; lay them out by PCA


@dataclass(frozen=True)
class UmapParams:
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0
    n_epochs: int | None = None  # None: umap-learn's default (500 below 10k points, else 200)

    def as_dict(self) -> dict[str, Any]:
        return {"n_neighbors": self.n_neighbors, "min_dist": self.min_dist, "seed": self.seed,
                "n_epochs": self.n_epochs}


def index_key(store: IndexStore) -> dict[str, Any]:
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
# No locks here: a front end serving several sessions at once serialises calls per key itself
# (app/map_cache.py), so the engine stays free of any front end's threading model.
_LAYOUTS: OrderedDict[str, np.ndarray] = OrderedDict()
_LAYOUTS_MAX = 8


def _remember(memo: str, layout: np.ndarray) -> None:
    _LAYOUTS[memo] = layout
    _LAYOUTS.move_to_end(memo)
    while len(_LAYOUTS) > _LAYOUTS_MAX:
        _LAYOUTS.popitem(last=False)


def memo_key(store: IndexStore, key: dict[str, Any], params: UmapParams) -> str:
    where = str(Path(store.path).resolve()) if getattr(store, "path", None) else f"mem:{id(store)}"
    return json.dumps([where, key, params.as_dict()], sort_keys=True)


def umap_projection(
    store: IndexStore,
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
    memo = memo_key(store, key, params)
    layout = None if refresh else _LAYOUTS.get(memo)
    if layout is not None:
        report(1.0, "map loaded")
        return layout
    folder = Path(store.path) if getattr(store, "path", None) else None
    layout = None if refresh or folder is None else _read_cache(folder, key, params)
    if layout is not None:
        report(1.0, "map loaded from cache")
    else:
        if len(store) > UMAP_SAMPLE:  # fitted on a sample, the rest placed (below)
            layout = sampled_layout(store, params, report)
        else:
            layout = compute_layout(np.asarray(store.embeddings(), dtype=np.float32), params, report)
        if folder is not None:
            report(0.98, "saving map")
            _write_cache(folder, layout, key, params)
        report(1.0, "map ready")
    _remember(memo, layout)
    return layout


def seed_layout(store: IndexStore, layout: np.ndarray, params: UmapParams | None = None) -> None:
    """Cache a layout made elsewhere (the demo's shipped map) as this index's map for ``params``."""
    layout = np.ascontiguousarray(layout, dtype=np.float32)
    if layout.shape != (len(store), 2):
        raise ValueError(f"a layout of shape {layout.shape} for an index of {len(store)} points")
    if store.path is None:
        raise ValueError("only a saved index caches its map")
    _write_cache(Path(store.path), layout, index_key(store), params or UmapParams())


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


# ---- maps of millions of points: UMAP fitted on a sample, the rest placed by k-NN ------------
# UMAP's cost grows with the point count (100k points took 39-103 s on 2 shared cores; 1M would be
# most of an hour and gigabytes of neighbour graph). Above ``UMAP_SAMPLE`` points the layout is
# fitted on a uniform random sample only, and each other point is placed at the softmax-weighted
# average position of its nearest sample points (the same rule that places an upload's frames,
# ``core.maps.place``). The neighbours come from the one neighbour search (``core.neighbours``,
# ``among`` = the sample) in the sample's top PCA directions, so the search costs 50 dimensions per
# pair instead of the embedding's 256-768.

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
    from core.neighbours import neighbours  # lazy: the map engine loads without the index

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
