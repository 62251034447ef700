"""Numbers in words a person reads: counts with the right plural, durations without float noise,
time spans that never read "1.0-1.0 s". One place, so every page says them the same way."""

from __future__ import annotations

import math


def count(n: int | float, word: str, plural: str | None = None) -> str:
    """``1 frame``, ``2 frames``, ``1,204 frames`` (``plural`` for irregular words)."""
    n = int(n)
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def seconds(s: float | None, digits: int = 1) -> str:
    """A time in seconds, rounded to what a person reads: ``1.5 s`` (never ``1.4800000000000004 s``)."""
    if s is None or not math.isfinite(s):
        return "—"
    return f"{round(float(s), digits):.{digits}f} s"


def span(start: float, end: float, digits: int = 1) -> str:
    """A stretch of a clip: ``1.0–2.5 s``; a stretch that rounds to one instant reads ``at 1.0 s``."""
    a, b = round(float(start), digits), round(float(end), digits)
    if b <= a:
        return f"at {seconds(a, digits)}"
    return f"{a:.{digits}f}–{b:.{digits}f} s"


def duration(s: float | None) -> str:
    """A length of time at a sensible unit: ``45 s``, ``3.5 min``, ``2 h 5 min``."""
    if s is None or not math.isfinite(s):
        return "—"
    s = max(0.0, float(s))
    if s < 90:
        return f"{s:.0f} s" if s >= 10 else seconds(s)
    if s < 3600:
        return f"{s / 60:.1f} min"
    h, m = divmod(round(s / 60), 60)
    return f"{h} h {m} min" if m else f"{h} h"


def number(x: float, digits: int = 3) -> str:
    """A float with up to ``digits`` significant digits and no trailing noise: ``0.0005``, ``1.48``."""
    return f"{float(x):.{digits}g}"
