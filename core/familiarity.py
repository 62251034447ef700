"""Familiarity: does the index know footage like this frame?

Two measurements of a frame against the index, each turned into a percentile of the same
measurement on the index's own frames (an empirical CDF, so 0.3 reads "30% of the index's own
frames look less at home than this one"):

- neighbour similarity: the mean cosine of its ``k`` nearest indexed frames, the indexed frames
  measured as Triage votes them (``core.scoring``'s leave-out rule: no frame of their own clip);
- subspace fit: how much of the frame's embedding lies outside the principal subspace that the
  index's frames span (the residual after a PCA of the index, scikit-learn's). Footage unlike the
  index lands off that subspace even when some indexed frame happens to be near it: on the demo
  index the neighbour similarity alone separated real dashcam frames from held-out synthetic ones
  with AUROC 0.90, with the subspace fit 0.98 (bench/familiarity.py).

A frame's familiarity is the lower of the two percentiles. Below ``FLAG_BELOW`` the frame is
unlike this index and its votes abstain with that reason.

The calibration is computed when an index is built and stored in its manifest (``familiarity``:
the two quantile curves and how the subspace is fitted, which is refitted deterministically on
load); an index built before that is calibrated on first use, in memory.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from core.neighbours import clip_codes, neighbours
from core.vectors import normalize

if TYPE_CHECKING:
    from sklearn.decomposition import PCA

    from core.index import IndexStore
    from core.predict import Vote

FAMILIARITY_K = 5
CALIBRATION_FRAMES = 4000  # indexed frames measured for the curves (they are smooth well before)
SUBSPACE_FRAMES = 20000  # indexed frames the PCA is fitted on
SUBSPACE_SHARE = 0.25  # principal directions kept, as a share of the embedding's (64 of 256)
QUANTILES = 201  # points of each stored curve (every half percentile)
# Flag a frame when fewer than 1% of the index's own frames look less at home on either measure:
# about 2% of frames like the index's are flagged (the issue allows 5%), far-off footage mostly.
FLAG_BELOW = 0.01
UNFAMILIAR_REASON = "unlike this index"
SEED = 0

_MEMORY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def neighbour_similarity(sims: np.ndarray) -> np.ndarray:
    """Per row, the mean of its finite neighbour similarities (rows from ``neighbours``)."""
    s = np.atleast_2d(np.asarray(sims, dtype=np.float64))
    finite = np.isfinite(s)
    return np.where(finite, s, 0.0).sum(axis=1) / np.maximum(finite.sum(axis=1), 1)


def subspace_fit(pca: PCA, x: np.ndarray) -> np.ndarray:
    """Minus the length of each row's residual off the PCA subspace (higher: more at home)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    return -np.linalg.norm(x - pca.inverse_transform(pca.transform(x)), axis=1)


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    return np.arange(n) if n <= size else np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def _fit_pca(x: np.ndarray, dims: int, seed: int) -> PCA:
    from sklearn.decomposition import PCA

    return PCA(n_components=max(1, min(dims, x.shape[0] - 1, x.shape[1])), random_state=seed).fit(x)


def _curve(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in np.quantile(values, np.linspace(0, 1, QUANTILES))]


def calibrate(store: IndexStore, k: int = FAMILIARITY_K, frames: int = CALIBRATION_FRAMES,
              seed: int = SEED) -> dict[str, Any]:
    """The manifest's ``familiarity`` record: both measurements' quantiles on the index's own frames."""
    x = np.asarray(store.embeddings(), dtype=np.float32)
    # A subspace as wide as the embedding would fit everything: keep a quarter of its directions.
    dims = max(1, int(x.shape[1] * SUBSPACE_SHARE))
    rows = _sample(len(x), frames, seed)
    if len(rows) < 4:
        raise ValueError(f"an index of {len(x)} frames is too small to calibrate familiarity")
    sims, _ = neighbours(store, x[rows], k, exclude="clip", query_rows=rows)
    # The subspace curve is measured out of fold: frames of half the clips against a PCA of the
    # other half's, so an indexed frame's own direction does not flatter its fit.
    fold = clip_codes(store) % 2
    fits = []
    for f in (0, 1):
        fit_rows, test_rows = rows[fold[rows] != f], rows[fold[rows] == f]
        if len(fit_rows) > 1 and len(test_rows):
            fits.append(subspace_fit(_fit_pca(x[fit_rows], dims, seed), x[test_rows]))
    if not fits:
        fits = [subspace_fit(_fit_pca(x[rows], dims, seed), x[rows])]
    return {"k": int(k), "frames": int(len(rows)), "leave_out": "clip", "flag_below": FLAG_BELOW,
            "quantiles": _curve(neighbour_similarity(sims)),
            "subspace": {"dims": int(dims), "frames": SUBSPACE_FRAMES, "seed": int(seed),
                         "quantiles": _curve(np.concatenate(fits))}}


def calibration_of(store: IndexStore) -> dict[str, Any]:
    """The store's calibration: from its manifest, else computed once and kept in memory."""
    record = (store.manifest or {}).get("familiarity")
    if isinstance(record, dict) and record.get("quantiles") and record.get("subspace"):
        return record
    if store not in _MEMORY:
        _MEMORY[store] = {"calibration": calibrate(store)}
    return _MEMORY[store]["calibration"]


def _subspace(store: IndexStore, calibration: dict[str, Any]) -> PCA:
    """The PCA of the index that a query is measured against (fitted once per store)."""
    memo = _MEMORY.setdefault(store, {})
    if "pca" not in memo:
        sub = calibration["subspace"]
        x = np.asarray(store.embeddings(), dtype=np.float32)
        memo["pca"] = _fit_pca(x[_sample(len(x), int(sub["frames"]), int(sub["seed"]))], int(sub["dims"]),
                               int(sub["seed"]))
    return memo["pca"]


def _cdf(quantiles: Sequence[float], values: np.ndarray) -> np.ndarray:
    q = np.asarray(quantiles, dtype=np.float64)
    levels = np.linspace(0, 1, len(q))
    # The CDF is flat where quantiles repeat; interp over the distinct values keeps it monotone.
    q, first = np.unique(q, return_index=True)
    return np.interp(values, q, levels[first], left=0.0, right=1.0)


def familiarity(calibration: dict[str, Any], sims: np.ndarray, fit: np.ndarray | None = None) -> np.ndarray:
    """Per query, its familiarity in [0, 1]: the lower of its two percentiles (``fit``: its
    ``subspace_fit``; without it, the neighbour similarity's percentile alone)."""
    out = _cdf(calibration["quantiles"], neighbour_similarity(sims))
    if fit is not None:
        out = np.minimum(out, _cdf(calibration["subspace"]["quantiles"], np.asarray(fit, np.float64)))
    return out


def measure(store: IndexStore, embeddings: np.ndarray) -> np.ndarray:
    """Familiarity of outside queries against ``store``."""
    calibration = calibration_of(store)
    q = normalize(np.atleast_2d(np.asarray(embeddings, dtype=np.float32)))  # as the stored vectors are
    sims, _ = neighbours(store, q, int(calibration["k"]))
    return familiarity(calibration, sims, subspace_fit(_subspace(store, calibration), q))


def is_unfamiliar(value: float | None, calibration: dict[str, Any]) -> bool:
    return value is not None and value < float(calibration.get("flag_below", FLAG_BELOW))


def judge(store: IndexStore, embeddings: np.ndarray, votes: Sequence[Vote]) -> Sequence[Vote]:
    """Give each vote (of the rows of ``embeddings``) its familiarity; unfamiliar ones abstain.

    This searches again rather than reusing the votes' neighbours on purpose: the calibration
    fixes its own k and whole-embedding space, while a vote may use another k, a leave-out rule
    or per-attribute prompt spaces, and a familiarity must not change with those choices.
    """
    if not len(votes):
        return votes
    calibration = calibration_of(store)
    for vote, value in zip(votes, measure(store, embeddings), strict=True):
        vote.familiarity = float(value)
        if is_unfamiliar(vote.familiarity, calibration):
            vote.abstain(UNFAMILIAR_REASON)
    return votes


def median_familiarity(values: Sequence[float | None]) -> float | None:
    """A clip's familiarity: the median over its frames (None when no frame has one)."""
    known = [v for v in values if v is not None]
    return float(np.median(known)) if known else None


__all__ = [
    "FAMILIARITY_K", "FLAG_BELOW", "UNFAMILIAR_REASON", "calibrate", "calibration_of", "familiarity",
    "is_unfamiliar", "judge", "measure", "median_familiarity", "neighbour_similarity", "subspace_fit",
]
