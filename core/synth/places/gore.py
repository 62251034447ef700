"""Merge and branch gores: a chevron-hatched triangle between the road and a ramp lane."""

from __future__ import annotations

from core.synth import geom
from core.synth.camera import ZNEAR
from core.synth.canvas import Canvas
from core.synth.places.common import BLACK, DIAMOND, WHITE, sign
from core.synth.props import dist
from core.synth.road import WHITE_MARK, paint_marks


class GoreMixin:
    """Drawing of one kind of place; mixed into ``Place`` (which holds the geometry)."""

    def _edge(self) -> float:
        """Lateral u of the main road's edge on the gore side (a left ramp joins at the median)."""
        road = self.road
        if self.side > 0:
            return road.width
        return road.same_dir_lo if road.two_way else 0.0

    def _gap_at(self, z: float) -> float:
        """Width of the hatched gore at distance z (0 where the lanes touch)."""
        z0, ln, g = self.z0, self.length, self.gmax
        if self.merge:
            if z < z0:
                return g + 0.05 * (z0 - z) ** 2
            return max(0.0, g * (z0 + ln - z) / ln)
        if z > z0 + ln:
            return g + 0.05 * (z - z0 - ln) ** 2
        return max(0.0, g * (z - z0) / ln)

    def _ground_gore(self, cv: Canvas, travel: float) -> None:
        cam, road = self.cam, self.road
        s = self.side
        ue = self._edge()
        wr = 3.8
        col = road.colors
        z0, ln = self.z0, self.length
        lo, hi = (z0 - 70, z0 + ln + 70) if self.merge else (z0 - 70, z0 + ln + 70)

        def inner(z: float) -> float:
            return ue + s * self._gap_at(z)

        def outer(z: float) -> float:
            return ue + s * (self._gap_at(z) + wr)

        def edge(z: float) -> float:
            return ue + s * (self._gap_at(z) + wr + 1.0)

        # Shoulder, then the ramp lane, then the hatched gore between it and the main road.
        a, b = (inner, edge) if s > 0 else (edge, inner)
        cv.ground(geom.band_fn(cam, a, b, lo, hi, 16), col["shoulder"], road=True)
        hz1, hz2 = z0, z0 + ln
        if self.merge:
            grass_lo, grass_hi = lo, z0
        else:
            grass_lo, grass_hi = z0 + ln, hi
        a, b = (lambda z: ue, inner) if s > 0 else (inner, lambda z: ue)
        cv.ground(geom.band_fn(cam, a, b, grass_lo, grass_hi, 12), col["grass"])
        a, b = (inner, outer) if s > 0 else (outer, inner)
        cv.ground(geom.band_fn(cam, a, b, lo, hi, 16), col["road"], road=True)
        # The hatched triangle: white border lines and bold chevrons.
        hatch = WHITE if cv.look.ground != "snow" else (250, 250, 252)
        fill = col["road"] if cv.look.ground != "snow" else (108, 108, 112)
        a, b = (lambda z: ue, inner) if s > 0 else (inner, lambda z: ue)
        cv.ground(geom.band_fn(cam, a, b, hz1, hz2, 10), fill, road=True, feature=True)
        for fn in (lambda z: ue, inner):
            cv.ground(geom.band_fn(cam, lambda z, f=fn: f(z) - 0.25, lambda z, f=fn: f(z) + 0.25, hz1, hz2, 10),
                      hatch, feature=True)
        z = hz1 + 0.5
        slant = 3.5 if self.merge else -3.5
        while z < hz2 - 1.0:
            za, zb = z, z + slant
            g_a, g_b = self._gap_at(za), self._gap_at(zb)
            if min(za, zb) > ZNEAR and hz1 <= zb <= hz2:
                pts = [cam.pt(ue, 0, za), cam.pt(ue, 0, za + 1.6), cam.pt(ue + s * g_b, 0, zb + 1.6),
                       cam.pt(ue + s * g_b, 0, zb)]
                cv.ground(pts, hatch, feature=True)
            del g_a
            z += 2.5
        # Lane lines: the ramp's outer edge, and a dashed line where the lanes run side by side.
        if cv.look.ground != "snow":
            cv.ground(geom.band_fn(cam, lambda z: outer(z) - s * 0.3 - 0.1, lambda z: outer(z) - s * 0.3 + 0.1,
                                   lo, hi, 16), WHITE_MARK)
            run = (hz2, hi) if self.merge else (lo, hz1)
            paint_marks(cv, road, [(ue + s * 0.15 * 0, "dashed_white")], run[0], run[1], travel)

    def _items_gore(self, cv: Canvas) -> None:
        s = self.side
        ue = self._edge()
        z0, ln = self.z0, self.length
        if self.merge:
            zs = z0 + ln * 0.15
            u = ue + s * (self._gap_at(zs) * 0.5)
            marks = [((0.1, -0.65), (0.1, 0.65), 0.2), ((0.1 + 0.55 * s, -0.6), (0.15, 0.2), 0.2)]
            sign(cv, u, zs, 2.3, 0.95, DIAMOND, (250, 204, 30), BLACK, marks)
        else:
            zn = z0 + ln + 1.0
            u = ue + s * (self._gap_at(zn) * 0.5)
            arrow = [((-0.35 * s, -0.3), (0.45 * s, 0.45), 0.16), ((0.45 * s, 0.45), (0.05 * s, 0.45), 0.16),
                     ((0.45 * s, 0.45), (0.45 * s, 0.05), 0.16)]
            sign(cv, u, zn, 2.8, 0.6, None, (0, 112, 64), WHITE, arrow, WHITE, posts=(-1.0, 1.0),
                 rect=(3.2, 1.9))
            # Advance exit sign beside the exit lane, before the hatching starts.
            za = z0 - 6.0
            ua = ue + s * (self._gap_at(za) + 3.8 + 1.8)
            sign(cv, ua, za, 3.0, 0.7, None, (0, 112, 64), WHITE, arrow, WHITE, posts=(-1.2, 1.2),
                 rect=(3.6, 2.1))
            if zn > 1.0:
                cam = cv.cam
                prims = []
                for i in range(4):
                    c = (250, 204, 30) if i % 2 == 0 else BLACK
                    prims.append(("p", geom.face(cam, u - 0.45, u + 0.45, i * 0.25, (i + 1) * 0.25, zn - 1.2),
                                  cv.col(c, zn, cam.X(u, zn), 2.5)))
                cv.item(dist(cv, u, zn - 1.2), prims)
