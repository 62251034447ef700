"""Road signs: a shape on a pole with a pictogram, retro-reflective so headlights light it up."""

from __future__ import annotations

import math

from core.synth import geom
from core.synth.canvas import RGB, Canvas
from core.synth.objects import SIGN

DIAMOND = [(0.0, 1.0), (1.0, 0.0), (0.0, -1.0), (-1.0, 0.0)]
SQUARE = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)]
OCTAGON = [(math.cos(a), math.sin(a)) for a in (math.pi / 8 + i * math.pi / 4 for i in range(8))]
BLACK = (18, 18, 20)


def sign(cv: Canvas, u: float, z: float, y: float, size: float, outline: list[tuple[float, float]] | None,
         fill: RGB, border: RGB | None = None, marks: list | None = None, mark_color: RGB = BLACK,
         posts: tuple[float, ...] = (0.0,), feature: bool = False, rect: tuple[float, float] | None = None) -> list:
    """Queue a sign centred ``y`` metres up; ``outline`` None is a disc, ``rect`` a (w, h) board.

    ``marks`` are pictogram strokes in the unit square: ((x0, y0), (x1, y1), width).
    Returns the primitives (already queued) so callers can reuse the geometry.
    """
    if z < 1.0:
        return []
    cam = cv.cam
    x = cam.X(u, z)
    prims = []
    for p in posts:
        prims.append(("p", geom.face(cam, u + p - 0.05, u + p + 0.05, 0.0, y, z), cv.col((120, 120, 124), z, x)))
    cx, cy = cam.pt(u, y, z)
    s = cam.f * size / z
    c_fill = cv.col(fill, z, x, 2.8)
    c_border = cv.col(border, z, x, 2.8) if border else None
    if rect is not None:
        hw, hh = rect[0] / 2 * cam.f / z, rect[1] / 2 * cam.f / z
        if c_border:
            b = max(1.0, s * 0.08)
            prims.append(("p", [(cx - hw - b, cy - hh - b), (cx + hw + b, cy - hh - b), (cx + hw + b, cy + hh + b),
                                (cx - hw - b, cy + hh + b)], c_border))
        prims.append(("p", [(cx - hw, cy - hh), (cx + hw, cy - hh), (cx + hw, cy + hh), (cx - hw, cy + hh)], c_fill))
    elif outline is None:
        if c_border:
            prims.append(("e", (cx - s * 1.1, cy - s * 1.1, cx + s * 1.1, cy + s * 1.1), c_border))
        prims.append(("e", (cx - s, cy - s, cx + s, cy + s), c_fill))
    else:
        if c_border:
            prims.append(("p", [(cx + ox * s * 1.12, cy - oy * s * 1.12) for ox, oy in outline], c_border))
        prims.append(("p", [(cx + ox * s, cy - oy * s) for ox, oy in outline], c_fill))
    if marks:
        mc = cv.col(mark_color, z, x, 1.0)
        for (x0, y0), (x1, y1), wd in marks:
            prims.append(("l", [(cx + x0 * s, cy - y0 * s), (cx + x1 * s, cy - y1 * s)], mc, max(1, int(round(wd * s)))))
    cv.item(math.hypot(x, z), prims, feature, kind=SIGN)
    return prims
