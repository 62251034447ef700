"""Drawing surface of one frame: the RGB image plus the side layers the post-pass needs.

Ground polygons are drawn at once (they are painted back to front by construction); upright
objects are queued as items and painted far to near. Side layers are created only when the
scene needs them, so a plain daytime frame pays for none of them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from core.synth.atmosphere import Look
from core.synth.camera import Camera
from core.synth.objects import annotate

RGB = tuple[int, int, int]
Pts = list[tuple[float, float]]


@dataclass
class Canvas:
    cam: Camera
    look: Look
    rnd: random.Random
    params: dict
    want_mask: bool = False
    want_objects: bool = False  # an id layer of the tagged items (core.synth.objects)
    items: list = field(default_factory=list)
    glows: list = field(default_factory=list)
    # (z1, z2, side) stretches where roadside scenery must leave room (-1 left, 1 right, 0 both).
    gaps: list = field(default_factory=list)
    # (z1, z2) stretches of the carriageway that parked cars and traffic must leave clear.
    clear: list = field(default_factory=list)
    no_oncoming: bool = False  # a left ramp takes the place of the opposite lanes
    sun: tuple[float, float] | None = None  # ground shift of a shadow per metre of height

    def __post_init__(self) -> None:
        w, h = self.cam.width, self.cam.height
        self.img: Image.Image | None = None
        self.draw: ImageDraw.ImageDraw | None = None
        self.mask = Image.new("L", (w, h), 0) if self.want_mask else None
        self.mdraw = ImageDraw.Draw(self.mask) if self.mask is not None else None
        # 32-bit ids: a work zone can hold more tagged items than an 8-bit layer counts.
        self.ids = Image.new("I", (w, h), 0) if self.want_objects else None
        self.kinds: list[tuple[str, float]] = []  # (class, distance) of id 1, 2, ...
        self.wet = Image.new("L", (w, h), 0) if self.look.wet else None
        self.wdraw = ImageDraw.Draw(self.wet) if self.wet is not None else None
        self.shade: Image.Image | None = None
        self.sdraw: ImageDraw.ImageDraw | None = None
        self.pool: Image.Image | None = None
        self.pdraw: ImageDraw.ImageDraw | None = None
        self._seq = 0

    def start(self, img: Image.Image) -> None:
        self.img = img
        self.draw = ImageDraw.Draw(img)

    # ---- ground ---------------------------------------------------------------------------
    def ground(self, pts: Pts, color: RGB, road: bool = False, feature: bool = False) -> None:
        if len(pts) < 3:
            return
        self.draw.polygon(pts, fill=color)
        if self.wdraw is not None:
            self.wdraw.polygon(pts, fill=255 if road else 0)
        if self.mdraw is not None:
            self.mdraw.polygon(pts, fill=255 if feature else 0)

    def shadow(self, pts: Pts, v: int = 255) -> None:
        if len(pts) < 3:
            return
        if self.sdraw is None:
            self.shade = Image.new("L", (self.cam.width, self.cam.height), 0)
            self.sdraw = ImageDraw.Draw(self.shade)
        self.sdraw.polygon(pts, fill=v)

    def light_pool(self, pts: Pts, v: int) -> None:
        if len(pts) < 3:
            return
        if self.pdraw is None:
            self.pool = Image.new("L", (self.cam.width, self.cam.height), 0)
            self.pdraw = ImageDraw.Draw(self.pool)
        self.pdraw.polygon(pts, fill=v)

    # ---- upright objects ------------------------------------------------------------------
    def item(self, dist: float, prims: list, feature: bool = False, kind: str | None = None) -> None:
        """Queue primitives ('p' polygon, 'e' ellipse box, 'l' polyline+width) at a distance;
        ``kind``: the object class it is annotated as (core.synth.objects), None for scenery."""
        self._seq += 1
        self.items.append((-dist, self._seq, prims, feature, kind))

    def glow(self, x: float, y: float, r: float, color: RGB, z: float = 10.0) -> None:
        """A light source: a halo added after shading, and a streak on a wet road below it."""
        self.glows.append((x, y, r, color, z))

    def flush(self) -> None:
        d, md = self.draw, self.mdraw
        idraw = ImageDraw.Draw(self.ids) if self.ids is not None else None
        for neg, _, prims, feat, kind in sorted(self.items, key=lambda it: it[:2]):
            mv = 255 if feat else 0
            if idraw is not None:  # untagged items paint 0: they hide what is behind them
                if kind is not None:
                    self.kinds.append((kind, -neg))
                _paint(idraw, prims, len(self.kinds) if kind is not None else 0)
            for p in prims:
                k = p[0]
                if k == "p":
                    d.polygon(p[1], fill=p[2])
                    if md is not None:
                        md.polygon(p[1], fill=mv)
                elif k == "e":
                    d.ellipse(p[1], fill=p[2])
                    if md is not None:
                        md.ellipse(p[1], fill=mv)
                else:
                    d.line(p[1], fill=p[2], width=p[3])
                    if md is not None:
                        md.line(p[1], fill=mv, width=p[3])
        self.items.clear()

    def objects(self) -> list[dict]:
        """The annotations of the tagged items drawn so far (core.synth.objects.annotate)."""
        return annotate(np.asarray(self.ids, dtype=np.int64), self.kinds) if self.ids is not None else []

    def in_gap(self, z: float, side: int, margin: float = 0.0) -> bool:
        for z1, z2, s in self.gaps:
            if (s == 0 or s == side) and z1 - margin <= z <= z2 + margin:
                return True
        return False

    def kept_clear(self, z: float, margin: float = 6.0) -> bool:
        return any(z1 - margin <= z <= z2 + margin for z1, z2 in self.clear)

    def col(self, rgb: RGB, z: float, x: float = 0.0, refl: float = 1.0) -> RGB:
        return self.look.shade(rgb, z, x, refl)


def _paint(draw: ImageDraw.ImageDraw, prims: list, v: int) -> None:
    """Paint an item's primitives in one value (the id layer)."""
    for p in prims:
        if p[0] == "p":
            draw.polygon(p[1], fill=v)
        elif p[0] == "e":
            draw.ellipse(p[1], fill=v)
        else:
            draw.line(p[1], fill=v, width=p[3])
