"""What the Map shows about its points: colours (labels, split, vote correctness) and selections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from core.schema import UNKNOWN

if TYPE_CHECKING:
    from core.index import IndexStore

COLOR_SPLIT = "split"
COLOR_CORRECT = "correct"  # "correct" (all attributes) or "correct:<attribute>"
CORRECT, WRONG, ABSTAINED, UNLABELLED = "correct", "wrong", "abstained", "unlabelled"
SELECTION_BASE = ("path", "clip_id", "split", "timestamp_s")


def selection_table(store: IndexStore, point_ids: Sequence[int] | np.ndarray) -> pd.DataFrame:
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


# ---- maps of millions of points: what the page draws is aggregated here, on the server ----------
DRAW_POINTS = 50_000  # WebGL (scattergl) draws this many points smoothly; beyond, a density grid and a sample
DENSITY_BINS = 256


def density_grid(layout: np.ndarray, bins: int = DENSITY_BINS,
                 box: tuple[float, float, float, float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points per cell of a ``bins`` x ``bins`` grid over ``box`` (x0, x1, y0, y1; default all points):
    (counts (bins, bins) indexed [x, y], x edges, y edges). Drawn as a heatmap, 1M points cost one
    65k-cell image instead of 1M markers."""
    xy = np.asarray(layout, dtype=np.float32)
    if box is None:
        lo, hi = (xy.min(axis=0), xy.max(axis=0)) if len(xy) else (np.zeros(2), np.ones(2))
        box = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    x0, x1, y0, y1 = box
    counts, xe, ye = np.histogram2d(xy[:, 0], xy[:, 1], bins=int(bins), range=[[x0, x1 if x1 > x0 else x0 + 1],
                                                                               [y0, y1 if y1 > y0 else y0 + 1]])
    return counts.astype(np.int64), xe, ye


def view_points(layout: np.ndarray, box: tuple[float, float, float, float] | None = None,
                limit: int = DRAW_POINTS, seed: int = 0) -> np.ndarray:
    """Row ids of the points inside ``box`` (x0, x1, y0, y1; default all), at most ``limit`` of them
    drawn uniformly at random (the same ones for the same view), in increasing order."""
    xy = np.asarray(layout, dtype=np.float32)
    if box is None:
        rows = np.arange(len(xy), dtype=np.int64)
    else:
        x0, x1, y0, y1 = box
        rows = np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))
    if len(rows) > limit:
        rows = np.sort(np.random.default_rng(seed).choice(rows, int(limit), replace=False))
    return rows.astype(np.int64)


def export_selection(df: pd.DataFrame, fmt: Literal["csv", "jsonl"] = "csv") -> bytes:
    """UTF-8 bytes of the table as CSV (header row) or JSON Lines (one object per row)."""
    if fmt == "csv":
        return df.to_csv(index=False).encode("utf-8")
    if fmt == "jsonl":
        if df.empty:
            return b""
        return df.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8")
    raise ValueError(f"unknown export format {fmt!r}; expected 'csv' or 'jsonl'")


def color_options(store: IndexStore) -> list[str]:
    """What ``color_values`` accepts for this store, in menu order."""
    names = list(store.schema.names)
    return [*names, COLOR_SPLIT, COLOR_CORRECT, *(f"{COLOR_CORRECT}:{a}" for a in names)]


def color_values(store: IndexStore, by: str, predictions: Sequence[Any] | None = None, k: int = 5) -> list[str]:
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


def loo_predictions(store: IndexStore, k: int = 5) -> list[dict[str, str]]:
    """Every indexed point's k-NN labels under the one leave-out rule (``core.scoring.index_votes``:
    other clips' train frames vote), so the Map's colours agree with Triage."""
    from core.scoring import index_votes

    return [v.labels() for v in index_votes(store, k=k)]
