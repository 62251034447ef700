"""The DriveLM challenge's match score (tag 3) and its object filter, offline.

Follows ``challenge/evaluation.py`` of github.com/OpenDriveLab/DriveLM (read as a reference, not copied):

- match: every decimal number of a text, taken in pairs, is a point; each predicted point
  is matched greedily to the nearest unmatched ground-truth point by L1 distance (|dx| + |dy|) and
  counts as found below 16 px; F1 per question, averaged. Like the official code this ignores the
  camera name of ``<c1,CAM_FRONT,x,y>`` and integer coordinates, so write coordinates with a
  decimal point, as DriveLM does;
- the object filter: in each key frame the first question's answer fixes which ground-truth
  objects the model found; a later question that names an object (by its coordinates) is scored
  only if that object was found. It applies to ids of the challenge's form ``<scene>_<frame>_<i>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MATCH_RADIUS_PX = 16.0
_DECIMAL = re.compile(r"\d+\.\d+")
_CHALLENGE_ID = re.compile(r"^(.+)_(\d+)$")
_EPS = 1e-8  # the official F1's guard against empty sets; kept so an empty case scores 0 as there


def challenge_points(text: str) -> np.ndarray:
    """The (n, 2) points the challenge reads from a text: its decimal numbers in pairs (an odd last
    number is dropped)."""
    nums = [float(x) for x in _DECIMAL.findall(text)]
    if len(nums) % 2:
        nums = nums[:-1]
    return np.asarray(nums, dtype=np.float64).reshape(-1, 2)


def match_points(pred: np.ndarray, truth: np.ndarray, radius: float = MATCH_RADIUS_PX) -> tuple[float, np.ndarray]:
    """F1 of predicted against true points, and the true points found.

    Predictions in order each take the nearest still-unmatched true point (L1 distance, first on a
    tie) and count as a hit when it is nearer than ``radius``.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    left = np.asarray(truth, dtype=np.float64).reshape(-1, 2)
    n_true = len(left)
    found = []
    tp = fp = 0
    for p in pred:
        if len(left) == 0:
            fp += 1
            continue
        d = np.abs(left - p).sum(axis=1)
        j = int(np.argmin(d))
        if d[j] < radius:
            tp += 1
            found.append(left[j])
            left = np.delete(left, j, axis=0)
        else:
            fp += 1
    fn = n_true - tp
    precision = tp / (tp + fp + _EPS)
    recall = tp / (tp + fn + _EPS)
    f1 = 2 * precision * recall / (precision + recall + _EPS)
    return float(f1), np.asarray(found, dtype=np.float64).reshape(-1, 2)


def match_f1(answer: str, truth: str, radius: float = MATCH_RADIUS_PX) -> float:
    """The challenge's match F1 of one answer (see the module docstring)."""
    return match_points(challenge_points(answer), challenge_points(truth), radius)[0]


def object_filter(items: Sequence[Mapping[str, Any]]) -> list[bool]:
    """Which questions the challenge scores (see the module docstring): per key frame, question 0
    fixes the true points its answer found; a later question counts only if every point it names
    (decimal pairs of its text) is among them. Ids not of the form ``<scene>_<frame>_<i>``, and
    frames whose question 0 is absent, are kept whole."""
    found: dict[str, set[tuple[float, float]]] = {}
    keys: list[tuple[str, int] | None] = []
    for it in items:
        m = _CHALLENGE_ID.match(it["id"])
        keys.append((m.group(1), int(m.group(2))) if m else None)
        if m and int(m.group(2)) == 0:
            _, pts = match_points(challenge_points(it["answer"]), challenge_points(it["truth"]))
            found[m.group(1)] = {tuple(p) for p in pts.tolist()}
    keep = []
    for it, key in zip(items, keys, strict=True):
        if key is None or key[1] == 0 or key[0] not in found:
            keep.append(True)
            continue
        keep.append(all(tuple(p) in found[key[0]] for p in challenge_points(it["question"]).tolist()))
    return keep


__all__ = ["MATCH_RADIUS_PX", "challenge_points", "match_f1", "match_points", "object_filter"]
