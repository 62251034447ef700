"""Per-frame labels as timelines: runs of one value of one attribute over a clip's frames."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.schema import UNKNOWN, Schema


@dataclass(frozen=True)
class Segment:
    """A run of consecutive frames with one value of one attribute."""

    attribute: str
    value: str
    start_s: float
    end_s: float
    n_frames: int = 0


def _majority(values: Sequence[str], window: int) -> list[str]:
    """Sliding-window majority (window clipped at the ends); ties keep the frame's own value."""
    half = window // 2
    out = []
    for i, own in enumerate(values):
        counts = Counter(values[max(0, i - half) : i + half + 1])
        best = max(counts.values())
        out.append(own if counts[own] == best else next(v for v, c in counts.items() if c == best))
    return out


def timeline(
    times: Sequence[float], labels: Sequence[dict[str, str]], schema: Schema, smoothing: int = 1
) -> list[Segment]:
    """Per attribute (schema order), merge consecutive frames with the same value into segments.

    A segment ends one frame interval (the median spacing of ``times``) after its last frame,
    so adjacent segments touch. ``smoothing`` is an odd window: each frame's value is first
    replaced by the majority over that many frames, which removes one-frame flickers.
    Attributes missing from a frame's labels count as unknown.
    """
    if len(times) != len(labels):
        raise ValueError(f"{len(times)} times but {len(labels)} label sets")
    if smoothing < 1 or smoothing % 2 == 0:
        raise ValueError(f"smoothing must be an odd window of at least 1, got {smoothing}")
    if not len(times):
        return []
    t = np.asarray(times, dtype=float)
    if np.any(np.diff(t) < 0):
        raise ValueError("times must be in increasing order")
    interval = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    segments: list[Segment] = []
    for attr in schema:
        values = [str(lab.get(attr.name, UNKNOWN)) for lab in labels]
        if smoothing > 1:
            values = _majority(values, smoothing)
        start = 0
        for i in range(1, len(values) + 1):
            if i == len(values) or values[i] != values[start]:
                segments.append(
                    Segment(attr.name, values[start], float(t[start]), float(t[i - 1]) + interval, i - start)
                )
                start = i
    return segments


def describe(segment: Segment, schema: Schema) -> str:
    """A one-line human description: "<display value>, 2.0-4.5 s"."""
    value = schema.display(segment.attribute, segment.value)
    return f"{value}, {segment.start_s:.1f}-{segment.end_s:.1f} s"


__all__ = ["Segment", "describe", "timeline"]
