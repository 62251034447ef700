"""The places a scene can drive through, and where the stage puts them.

Stage is read from geometry alone: ``far`` puts the place's near edge a fifth of the way down
from the horizon (small, high up), ``near`` in the lower half (large), ``at`` around or beside
the camera (crossing road under the bottom edge, cones at the side edges, the bridge deck across
the top of the frame). Each place is drawn big and with a signature that survives 192x108:
junction arms and a junction sign, zebra bars and blue signs, tracks with a crossbuck and gate,
orange cones with barrels, an arrow board and a diamond sign, a portal-like bridge, and a white
chevron-hatched gore with an exit or merge sign.
"""

from __future__ import annotations

import random

from core.synth.camera import Camera
from core.synth.canvas import Canvas
from core.synth.places.bridge import BridgeMixin
from core.synth.places.crossings import CrossingMixin
from core.synth.places.gore import GoreMixin
from core.synth.places.junction import JunctionMixin
from core.synth.places.works import WorksMixin
from core.synth.road import Road

FAR_D = (0.19, 0.29)  # near edge of the place, as a fraction of the ground rows below the horizon
NEAR_D = (0.42, 0.62)


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


class Place(JunctionMixin, CrossingMixin, WorksMixin, BridgeMixin, GoreMixin):
    """One place feature: geometry drawn from ``frnd`` (fixed for a whole clip) and an anchor z."""

    def __init__(self, params: dict, road: Road, cam: Camera, frnd: random.Random) -> None:
        self.kind = str(params.get("feature", "none"))
        self.stage = str(params.get("distance", "none"))
        self.road = road
        self.cam = cam
        self.r = frnd
        # Per-part random streams for what is drawn each frame: a clip re-creates the place every
        # frame, and parts that leave the view must not shift the randomness of the others.
        self.seed = frnd.getrandbits(32)
        k = self.kind
        if k == "intersection":
            self.width = frnd.uniform(14.0, 18.0)
            arms = int(params.get("arms", 4))
            side = frnd.choice((-1, 1))
            self.left = arms >= 4 or side < 0
            self.right = arms >= 4 or side > 0
            # 5+ arms: one arm forks off diagonally ahead (seen when passing), another joins
            # diagonally from behind (a big wedge beside the road while approaching).
            self.diag = frnd.choice((-1, 1)) if arms >= 5 else 0
            self.back = frnd.choice((-1, 1)) if arms >= 5 else 0
            self.signals = frnd.random() < 0.6
            self.arms = arms
            self.t_side = side
        elif k == "zebra":
            self.width = frnd.uniform(5.0, 6.5)
        elif k == "rail":
            self.tracks = frnd.choice((1, 1, 2))
            self.width = 1.435 + (self.tracks - 1) * 4.5
            self.gate_down = frnd.random() < 0.5
        elif k == "construction":
            self.length = frnd.uniform(70, 130)
            self.width = self.length
        elif k == "bridge":
            self.width = frnd.uniform(16.0, 24.0)
            self.clear = frnd.uniform(4.6, 5.3)
            self.thick = frnd.uniform(1.2, 1.8)
        elif k == "gore":
            self.side = -1 if params.get("side") == "left" else 1
            self.merge = params.get("direction") == "merge"
            # Exits open up quickly so the hatched wedge reads as a wedge even from afar.
            self.length = frnd.uniform(26.0, 36.0) if self.merge else frnd.uniform(24.0, 34.0)
            self.gmax = frnd.uniform(4.2, 5.6)
            self.width = self.length

    def _rng(self, tag: str) -> random.Random:
        return random.Random(f"{self.seed}:{tag}")

    # ---- where ----------------------------------------------------------------------------
    def anchor(self, t: float) -> float:
        """Distance of the place's near edge for stage progress ``t`` (0 start, 1 end)."""
        cam, st, k = self.cam, self.stage, self.kind
        if k == "bridge":
            # The deck's underside is what a viewer sees: place it by its row above the horizon.
            rise = self.clear - cam.h
            if st == "far":
                return cam.f * rise / (_lerp(0.26, 0.4, t) * cam.yh)
            if st == "near":
                return cam.f * rise / (_lerp(0.72, 0.95, t) * cam.yh)
            # Under the deck, with its far edge far enough ahead to show the underside on top.
            return max(-_lerp(1.0, 5.0, t), 16.0 - self.width)
        if st == "far":
            if k == "gore":  # the thinnest feature: a little nearer still
                return cam.z_at(_lerp(0.22, 0.32, t))
            return cam.z_at(_lerp(*FAR_D, t))
        if st == "near":
            return cam.z_at(_lerp(*NEAR_D, t))
        zb = cam.z_bottom
        if k == "intersection":
            # In the box: the crossing road's centre line runs across the bottom of the frame.
            return zb * _lerp(1.4, 1.05, t) - self.width / 2
        if k == "rail":
            return zb * _lerp(1.2, 1.02, t)
        if k == "construction":
            return -_lerp(8.0, 30.0, t)
        if k == "gore":
            if self.merge:  # tip ahead, the wide end behind us: the hatch runs beside the camera
                return zb * _lerp(4.5, 3.0, t) - self.length
            return -_lerp(2.0, 14.0, t)
        return zb

    def place(self, z0: float, cv: Canvas) -> None:
        """Fix the anchor and tell the roadside where to leave room."""
        self.z0 = z0
        road, w = self.road, self.width
        k = self.kind
        if k == "intersection":
            for side, on in ((-1, self.left), (1, self.right)):
                if on:
                    cv.gaps.append((z0 - 4, z0 + w + 4, side))
            if self.diag:
                cv.gaps.append((z0 + w, z0 + w + 60, self.diag))
                cv.gaps.append((z0 - 60, z0 + w * 0.5 + 4, self.back))
            cv.clear.append((z0 - 4, z0 + w + 4))
        elif k == "rail":
            cv.gaps.append((z0 - 6, z0 + w + 6, 0))
            cv.clear.append((z0 - 6, z0 + w + 6))
        elif k == "bridge":
            cv.gaps.append((z0 - 3, z0 + w + 3, 0))
        elif k == "zebra":
            cv.clear.append((z0 - 6, z0 + w + 4))
        elif k == "construction":
            cv.clear.append((z0 - 20, z0 + w))
        elif k == "gore":
            lo, hi = (z0 - 70, z0 + self.length + 10) if self.merge else (z0 - 14, z0 + self.length + 70)
            cv.gaps.append((lo, hi, self.side))
            if self.side < 0 and road.two_way:
                cv.no_oncoming = True

    # ---- painting -------------------------------------------------------------------------
    def ground(self, cv: Canvas, travel: float) -> None:
        getattr(self, f"_ground_{self.kind}", lambda cv, travel: None)(cv, travel)

    def items(self, cv: Canvas) -> None:
        getattr(self, f"_items_{self.kind}", lambda cv: None)(cv)


def make_place(params: dict, road: Road, cam: Camera, frnd: random.Random) -> Place | None:
    if params.get("feature", "none") == "none" or params.get("distance", "none") == "none":
        return None
    return Place(params, road, cam, frnd)


__all__ = ["FAR_D", "NEAR_D", "Place", "make_place"]
