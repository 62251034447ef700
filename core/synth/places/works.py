"""Construction zones: cone taper, lane shift, barrels, arrow board, road-work signs."""

from __future__ import annotations

from core.synth import geom
from core.synth.camera import ZNEAR
from core.synth.canvas import Canvas
from core.synth.objects import BARREL, CONE, SIGN
from core.synth.places.common import BLACK, DIAMOND, ORANGE, WHITE, sign
from core.synth.props import dist
from core.synth.road import YELLOW_MARK, cast


class WorksMixin:
    """Drawing of one kind of place; mixed into ``Place`` (which holds the geometry)."""

    def _closed(self) -> tuple[float, float, int]:
        """(cone line u, outer u of the closed lane, side) next to the camera's lane."""
        road = self.road
        if not hasattr(self, "_cl"):
            sides = []
            if road.ego_lo > 0.5:
                sides.append(-1)
            if road.ego_hi < road.width - 0.5:
                sides.append(1)
            rr = self._rng("closed")
            side = rr.choice(sides) if sides else rr.choice((-1, 1))
            if side < 0:
                line, outer = road.ego_lo - 0.35, (road.ego_lo - road.lane_w if road.ego_lo > 0.5 else -1.5)
            else:
                line, outer = road.ego_hi + 0.35, (road.ego_hi + road.lane_w if road.ego_hi < road.width - 0.5
                                                   else road.width + 1.5)
            self._cl = (line, outer, side)
        return self._cl

    def _cone_u(self, z: float) -> float:
        line, outer, _ = self._closed()
        k = (z - self.z0) / 22.0
        return outer + (line - outer) * min(1.0, max(0.0, k))

    def _ground_construction(self, cv: Canvas, travel: float) -> None:
        cam = self.cam
        line, outer, side = self._closed()
        z0, ln = self.z0, self.length
        if cv.look.ground == "snow":
            return
        # Temporary yellow edge line hugging the cones: the lane shift.
        off = -side * 0.45
        pts = geom.band_fn(cam, lambda z: self._cone_u(z) + off - 0.12, lambda z: self._cone_u(z) + off + 0.12,
                           max(z0, ZNEAR), z0 + ln, 10)
        cv.ground(pts, YELLOW_MARK)
        del travel

    def _items_construction(self, cv: Canvas) -> None:
        r = self._rng("barrels")
        line, outer, side = self._closed()
        z0, ln = self.z0, self.length
        z = z0
        while z < z0 + ln and z < 160:
            if z > 1.5:
                self._cone(cv, self._cone_u(z), z)
            z += 3.0 if z < z0 + 22 else 4.2
        mid = (line + outer) / 2
        z = z0 + 26
        while z < z0 + ln and z < 120:
            off = r.uniform(-0.6, 0.6)
            if z > 1.5:
                self._barrel(cv, mid + off, z)
            z += r.uniform(7, 11)
        if z0 + 3 > 1.5:
            self._arrow_board(cv, (line + outer) / 2 + side * 0.3, z0 + 3, -side)
        edge = (-1.4 if side < 0 else self.road.width + 1.4)
        worker = [((0.0, 0.55), (0.0, -0.1), 0.22), ((0.0, -0.1), (-0.35, -0.6), 0.16),
                  ((0.0, -0.1), (0.3, -0.6), 0.16), ((-0.1, 0.25), (0.5, 0.0), 0.14)]
        r = self._rng("signs")
        for zs in (z0 - r.uniform(12, 17), z0 - r.uniform(34, 40)):
            sign(cv, edge, zs, 2.5, 1.0, DIAMOND, ORANGE, BLACK, worker, feature=True)
        if r.random() < 0.5:
            self._digger(cv, outer + side * 1.5, z0 + r.uniform(30, 45))

    def _cone(self, cv: Canvas, u: float, z: float) -> None:
        cam = cv.cam
        x = cam.X(u, z)
        o = cv.col(ORANGE, z, x, 2.2)
        w = cv.col(WHITE, z, x, 3.0)
        prims = [("p", geom.face(cam, u - 0.32, u + 0.32, 0.0, 0.06, z), cv.col((200, 80, 10), z, x)),
                 ("p", geom.quad(cam, [(u - 0.24, 0.05, z), (u + 0.24, 0.05, z), (u + 0.05, 0.95, z),
                                       (u - 0.05, 0.95, z)]), o),
                 ("p", geom.quad(cam, [(u - 0.17, 0.38, z), (u + 0.17, 0.38, z), (u + 0.12, 0.58, z),
                                       (u - 0.12, 0.58, z)]), w)]
        cv.item(dist(cv, u, z), prims, True, kind=CONE)
        cast(cv, u, z, 0.9, 0.2)

    def _barrel(self, cv: Canvas, u: float, z: float) -> None:
        cam = cv.cam
        x = cam.X(u, z)
        o = cv.col(ORANGE, z, x, 2.2)
        w = cv.col(WHITE, z, x, 3.0)
        prims = [("p", geom.face(cam, u - 0.32, u + 0.32, 0.0, 1.05, z), o)]
        for y in (0.25, 0.62):
            prims.append(("p", geom.face(cam, u - 0.32, u + 0.32, y, y + 0.17, z), w))
        cv.item(dist(cv, u, z), prims, True, kind=BARREL)
        cast(cv, u, z, 1.0, 0.3)

    def _arrow_board(self, cv: Canvas, u: float, z: float, point: int) -> None:
        cam = cv.cam
        x = cam.X(u, z)
        prims = [("p", geom.face(cam, u - 0.9, u + 0.9, 0.0, 0.8, z), cv.col((230, 180, 30), z, x)),
                 ("p", geom.face(cam, u - 0.1, u + 0.1, 0.8, 1.5, z), cv.col((60, 60, 60), z, x)),
                 ("p", geom.face(cam, u - 1.5, u + 1.5, 1.5, 3.2, z), cv.col((16, 16, 18), z, x))]
        amber = cv.look.emit((255, 190, 40), z)
        cx, cy = cam.pt(u, 2.35, z)
        s = cam.f / z * 1.15
        for k in (-0.7, -0.1, 0.5):
            tip = cx + point * (k + 0.45) * s
            prims.append(("l", [(cx + point * k * s, cy - 0.45 * s), (tip, cy), (cx + point * k * s, cy + 0.45 * s)],
                          amber, max(1, int(0.16 * s))))
        cv.glow(cx, cy, 1.1 * s, (255, 180, 40), z)
        cv.item(dist(cv, u, z), prims, True, kind=SIGN)

    def _digger(self, cv: Canvas, u: float, z: float) -> None:
        if z < 2:
            return
        cam = cv.cam
        x = cam.X(u, z)
        y = cv.col((232, 176, 24), z, x)
        prims = [("p", geom.face(cam, u - 1.4, u + 1.4, 0.0, 0.7, z), cv.col((40, 40, 40), z, x)),
                 ("p", geom.face(cam, u - 1.3, u + 1.3, 0.7, 2.0, z), y),
                 ("p", geom.face(cam, u - 0.5, u + 0.9, 2.0, 3.1, z), y),
                 ("l", [cam.pt(u - 0.8, 2.0, z), cam.pt(u - 2.6, 3.6, z), cam.pt(u - 3.4, 1.0, z)], y,
                  max(1, int(cam.f * 0.3 / z)))]
        cv.item(dist(cv, u, z), prims, True)
