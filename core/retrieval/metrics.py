"""Retrieval metrics: text<->clip recall/median/mean rank and Moment-DETR's moment metrics.

Ranking (``retrieval_metrics``) follows CLIP4Clip's ``compute_metrics`` (ArrowLuo/CLIP4Clip,
metrics.py): rows of the similarity matrix are queries, the rank of a query is the 0-based position
of its correct item in the row sorted by decreasing similarity, R@k = 100 * share of ranks < k,
MdR = median(rank) + 1, MnR = mean(rank) + 1; clip-to-text is the same on the transposed matrix.
One deliberate difference: CLIP4Clip finds the correct item with ``np.where(sorted - correct == 0)``,
so a tie puts it at the *first* tied position (and a tied row adds several entries to the rank
list). Here a tie counts against the query: rank = number of wrong items scoring >= the correct
one, so a constant or collapsed model cannot earn recall from ties. Without ties the two agree.

Moments (``moment_metrics``) follow Moment-DETR's QVHighlights evaluation (jayleicn/moment_detr,
standalone_eval/eval.py: ``compute_mr_r1`` and ``compute_mr_ap``, which calls ActivityNet's
``compute_average_precision_detection``):
- R1@t: the top-scored predicted window is a hit when its IoU with the ground-truth window it
  overlaps most is >= t (t = 0.5 and 0.7);
- mAP: per query, detection AP of its top ``max_windows`` (10) predictions at each IoU threshold
  in 0.50:0.05:0.95 (predictions taken in decreasing score order; each one matches the
  still-unmatched ground-truth window of highest IoU >= t, else is a false positive; AP is the
  VOC-interpolated area under precision/recall), averaged over queries, then over thresholds.
Retrieval recalls are percentages as in CLIP4Clip; moment figures are fractions in [0, 1] (the
issue's targets use both scales). Two choices where the reference leaves it open: a query with no
prediction counts as a miss with AP 0 (the reference only scores queries that have predictions),
and equal scores keep their given order (a stable sort).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RECALL_AT = (1, 5, 10)
MOMENT_IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.50, 0.55, ..., 0.95


def _matrix(sim: np.ndarray) -> np.ndarray:
    x = np.asarray(sim, dtype=np.float64)
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"similarity matrix must be 2-D and non-empty, got shape {x.shape}")
    if not np.isfinite(x).all():
        row = int(np.argwhere(~np.isfinite(x))[0][0])
        raise ValueError(f"similarity matrix has a NaN or infinite score in row {row}")
    return x


def retrieval_ranks(sim: np.ndarray, relevant: np.ndarray | None = None) -> np.ndarray:
    """0-based rank of each query row's best relevant item, ties counted against it.

    ``relevant`` is a boolean matrix shaped like ``sim`` (every row needs at least one True);
    None means the square diagonal (query i's item is column i), CLIP4Clip's layout. The rank is
    the number of non-relevant items scoring at least as high as the best relevant item.
    """
    x = _matrix(sim)
    if relevant is None:
        if x.shape[0] != x.shape[1]:
            raise ValueError(f"a non-square similarity matrix {x.shape} needs the relevant items given")
        rel = np.eye(x.shape[0], dtype=bool)
    else:
        rel = np.asarray(relevant, dtype=bool)
        if rel.shape != x.shape:
            raise ValueError(f"relevant mask has shape {rel.shape}, similarity matrix {x.shape}")
        empty = np.flatnonzero(~rel.any(axis=1))
        if len(empty):
            raise ValueError(f"query row {int(empty[0])} has no relevant item")
    best = np.where(rel, x, -np.inf).max(axis=1, keepdims=True)
    return ((x >= best) & ~rel).sum(axis=1)


def rank_metrics(ranks: np.ndarray) -> dict[str, float]:
    """R@1/5/10 in percent, MdR = median rank + 1 and MnR = mean rank + 1 from 0-based ranks."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.ndim != 1 or len(r) == 0:
        raise ValueError(f"ranks must be a non-empty 1-D array, got shape {r.shape}")
    out = {f"r{k}": float(100.0 * np.mean(r < k)) for k in RECALL_AT}
    out["mdr"] = float(np.median(r) + 1)
    out["mnr"] = float(np.mean(r) + 1)
    return out


def retrieval_metrics(sim: np.ndarray, clip_of_text: Sequence[int] | np.ndarray | None = None) -> dict:
    """Text-to-clip (``t2v``) and clip-to-text (``v2t``) metrics of a (texts x clips) matrix.

    ``clip_of_text[i]`` is the clip that caption i describes; None means one caption per clip on
    the diagonal. A clip with several captions is found, clip-to-text, by its best-ranked one.
    Returns ``{"t2v": {r1, r5, r10, mdr, mnr}, "v2t": {...}}``.
    """
    x = _matrix(sim)
    if clip_of_text is None:
        if x.shape[0] != x.shape[1]:
            raise ValueError(f"{x.shape[0]} captions for {x.shape[1]} clips: give clip_of_text")
        rel = None
    else:
        owner = np.asarray(clip_of_text)
        if owner.shape != (x.shape[0],) or not np.issubdtype(owner.dtype, np.integer):
            raise ValueError(f"clip_of_text must hold one clip number per caption ({x.shape[0]})")
        if owner.min() < 0 or owner.max() >= x.shape[1]:
            raise ValueError(f"clip_of_text names a clip outside 0..{x.shape[1] - 1}")
        rel = owner[:, None] == np.arange(x.shape[1])[None, :]
        lonely = np.flatnonzero(~rel.any(axis=0))
        if len(lonely):
            raise ValueError(f"clip {int(lonely[0])} has no caption")
    return {
        "t2v": rank_metrics(retrieval_ranks(x, rel)),
        "v2t": rank_metrics(retrieval_ranks(x.T, None if rel is None else rel.T)),
    }


def temporal_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every window in ``a`` (N,2) with every window in ``b`` (M,2), as (N, M); (start, end)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    union = (a[:, None, 1] - a[:, None, 0]) + (b[None, :, 1] - b[None, :, 0]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC-style interpolated AP: area under the precision envelope at each recall step."""
    p = np.concatenate([[0.0], precision, [0.0]])
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[steps] - r[steps - 1]) * p[steps]))


def _query_ap(pred: np.ndarray, gt: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Detection AP of one query's ranked windows against its ground truth, per IoU threshold."""
    ap = np.zeros(len(thresholds))
    if len(pred) == 0:
        return ap
    iou = temporal_iou(pred[:, :2], gt)  # (preds, gts)
    for t, thr in enumerate(thresholds):
        taken = np.zeros(len(gt), dtype=bool)
        tp = np.zeros(len(pred))
        for i in range(len(pred)):
            for j in np.argsort(-iou[i], kind="stable"):  # best-overlapping free window first
                if iou[i, j] < thr:
                    break
                if not taken[j]:
                    taken[j], tp[i] = True, 1.0
                    break
        hits = np.cumsum(tp)
        ap[t] = _interpolated_ap(hits / np.arange(1, len(pred) + 1), hits / len(gt))
    return ap


def _windows(a: np.ndarray, cols: int, what: str, q: int) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    x = x.reshape(0, cols) if x.size == 0 else x
    if x.ndim != 2 or x.shape[1] != cols or not np.isfinite(x).all():
        raise ValueError(f"query {q}: {what} must be finite rows of {cols} numbers, got shape {x.shape}")
    if (x[:, 1] < x[:, 0]).any():
        raise ValueError(f"query {q}: a {what} window ends before it starts")
    return x


def moment_metrics(
    predictions: Sequence[np.ndarray], ground_truth: Sequence[np.ndarray], *, max_windows: int = 10
) -> dict[str, float]:
    """Moment-DETR's R1@0.5, R1@0.7 and mAP@[0.5:0.95] over queries (fractions in [0, 1]).

    ``predictions[q]`` holds query q's windows as rows (start, end, score); ``ground_truth[q]`` its
    relevant windows as rows (start, end), at least one per query.
    """
    if len(predictions) != len(ground_truth) or len(ground_truth) == 0:
        raise ValueError(f"{len(predictions)} prediction lists for {len(ground_truth)} queries")
    r1 = {0.5: [], 0.7: []}
    aps = []
    for q, (p_raw, g_raw) in enumerate(zip(predictions, ground_truth, strict=True)):
        gt = _windows(g_raw, 2, "ground-truth", q)
        if len(gt) == 0:
            raise ValueError(f"query {q}: no ground-truth window")
        pred = _windows(p_raw, 3, "predicted", q)
        pred = pred[np.argsort(-pred[:, 2], kind="stable")][:max_windows]
        top_iou = temporal_iou(pred[:1, :2], gt).max() if len(pred) else 0.0
        for thr in r1:
            r1[thr].append(top_iou >= thr)
        aps.append(_query_ap(pred, gt, MOMENT_IOU_THRESHOLDS))
    return {
        "r1_05": float(np.mean(r1[0.5])),
        "r1_07": float(np.mean(r1[0.7])),
        "map": float(np.mean(np.mean(aps, axis=0))),
    }
