"""The sample view's data: one indexed frame with its labels, its place in its clip, its neighbours,
and where the arrow keys take the view next. Drawn by ``app/sample_view.py``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from app import words
from core.schema import UNKNOWN

if TYPE_CHECKING:
    from core.predict import Vote
    from core.types import IndexStore

SIMILAR_MAX = 24  # "find similar" browses this many nearest scenes


@dataclass(frozen=True)
class SampleInfo:
    """One indexed frame as the sample view shows it (labels already in display names)."""

    row: int
    path: str
    split: str
    clip_id: str
    timestamp_s: float
    clip_position: int  # 1-based place among its clip's frames (time order); 1 for a still
    clip_frames: int  # frames of its clip in the index; 1 for a still
    labels: list[tuple[str, str]]  # (attribute display, value display), schema order

    @property
    def where(self) -> str:
        """Its split, clip and place in it, in words: ``train · clip c0003 · frame 4 of 12 · 1.5 s``."""
        if self.clip_frames <= 1:  # a still (its own one-frame clip, or none)
            return f"{self.split} · still image"
        return (f"{self.split} · clip {self.clip_id} · frame {self.clip_position:,} of {self.clip_frames:,} · "
                f"{words.seconds(self.timestamp_s)}")


def sample_info(store: IndexStore, row: int) -> SampleInfo:
    """What the sample view says about index row ``row``; IndexError names the row when it is not one."""
    row = int(row)
    if not 0 <= row < len(store):
        raise IndexError(f"row {row} is not in this index (it holds rows 0–{len(store) - 1})")
    meta = store.meta
    clip = str(meta["clip_id"].iat[row])
    position, frames = 1, 1
    if clip:
        mine = meta.index[meta["clip_id"].astype(str) == clip]
        order = mine[np.argsort(meta["timestamp_s"].to_numpy()[mine], kind="stable")]
        position, frames = int(np.flatnonzero(order == row)[0]) + 1, len(order)
    labels = store.labels(row)
    shown = [(a.display, a.display_of(labels.get(a.name, UNKNOWN))) for a in store.schema.attributes]
    return SampleInfo(row, str(meta["path"].iat[row]), str(meta["split"].iat[row]), clip,
                      float(meta["timestamp_s"].iat[row]), position, frames, shown)


def sample_neighbours(store: IndexStore, row: int, k: int = 5) -> Vote:
    """The frame's vote and its ``k`` voting neighbours, under the same leave-out rule as Triage
    and the Scene page (``core.scoring.vote_rows``: the one neighbour path)."""
    from core.scoring import vote_rows

    return vote_rows(store, [int(row)], k=int(k))[0]


def similar_rows(store: IndexStore, row: int, k: int = SIMILAR_MAX) -> list[int]:
    """The frame followed by its nearest neighbours (the list "find similar" browses)."""
    vote = sample_neighbours(store, row, k=k)
    return [int(row)] + [int(n.id) for n in vote.neighbors if int(n.id) != int(row)]


def sample_step(rows: Sequence[int], position: int, delta: int) -> int:
    """The position ``delta`` places on in a browsed list, stopping at its ends."""
    if not len(rows):
        return 0
    return int(min(max(position + delta, 0), len(rows) - 1))
