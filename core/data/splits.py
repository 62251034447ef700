"""Clip-grouped train/val/test splits.

Frames of one clip (or drive) are near-duplicates of each other; letting them fall on both
sides of a split inflates every retrieval and k-NN metric, so whole groups are assigned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.data.manifest import SPLITS


class SplitError(ValueError):
    """A split assignment that lets one group (clip, drive) span several splits."""


def _normalise(fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=float)
    if f.shape != (len(SPLITS),) or np.any(f < 0) or not np.isfinite(f).all() or f.sum() <= 0:
        raise ValueError(
            f"fractions must be {len(SPLITS)} non-negative numbers for {SPLITS}, got {list(fractions)}"
        )
    return f / f.sum()


def assign_splits(
    frames: pd.DataFrame,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    group: str = "clip_id",
) -> pd.DataFrame:
    """Return a copy of ``frames`` with a ``split`` column, assigning whole ``group``s.

    Groups are shuffled deterministically (``seed``) and laid end to end by frame count; each
    group goes to the split its midpoint falls in, so fractions hold by frames, not by clips.
    The result depends only on the group keys and sizes, not on row order.
    """
    if group not in frames.columns:
        raise ValueError(f"cannot group splits by {group!r}: no such column (have {list(frames.columns)})")
    frac = _normalise(fractions)
    out = frames.copy()
    if out.empty:
        out["split"] = pd.Series(dtype=str)
        return out
    keys = out[group].astype(str)
    sizes = keys.value_counts().sort_index()
    order = np.random.default_rng(seed).permutation(len(sizes))
    names = sizes.index.to_numpy()[order]
    counts = sizes.to_numpy()[order].astype(float)
    mid = (np.cumsum(counts) - counts / 2) / counts.sum()
    bounds = np.cumsum(frac)
    which = np.minimum(np.searchsorted(bounds, mid, side="right"), len(SPLITS) - 1)
    which = _fill_empty(which, frac)
    mapping = dict(zip(names, [SPLITS[k] for k in which], strict=True))
    out["split"] = keys.map(mapping).to_numpy()
    return out


def _fill_empty(which: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Give every split with a non-zero fraction at least one group when there are enough groups.

    With a handful of clips the midpoint rule can leave val or test empty, which would make
    evaluation silently impossible; a group is borrowed from the split holding the most groups.
    """
    which = which.copy()
    wanted = [k for k in range(len(frac)) if frac[k] > 0]
    if len(which) < len(wanted):
        return which
    for k in wanted:
        if np.any(which == k):
            continue
        counts = np.bincount(which, minlength=len(frac))
        donor = int(np.argmax(counts))
        # The donor's last group in shuffled order: deterministic and as random as the shuffle.
        which[np.flatnonzero(which == donor)[-1]] = k
    return which


def check_grouped(frames: pd.DataFrame, group: str = "clip_id") -> None:
    """Raise SplitError naming the groups whose frames fall in more than one split."""
    for col in (group, "split"):
        if col not in frames.columns:
            raise ValueError(f"cannot check splits: no {col!r} column")
    per_group = frames.groupby(frames[group].astype(str))["split"].nunique()
    bad = per_group[per_group > 1].index.tolist()
    if bad:
        shown = ", ".join(repr(b) for b in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise SplitError(f"{len(bad)} {group} group(s) span several splits: {shown}")


__all__ = ["SplitError", "assign_splits", "check_grouped"]
