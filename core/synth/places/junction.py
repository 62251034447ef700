"""Intersections: crossing road, arms, signals or stop signs, cross traffic, the junction sign."""

from __future__ import annotations

from core.synth import geom
from core.synth.canvas import Canvas
from core.synth.objects import SIGNAL, VEHICLE
from core.synth.places.common import BLACK, DIAMOND, OCTAGON, WHITE, sign
from core.synth.props import CAR_COLORS, dist, pole
from core.synth.road import WHITE_MARK, YELLOW_MARK, cast


class JunctionMixin:
    """Drawing of one kind of place; mixed into ``Place`` (which holds the geometry)."""

    def _ground_intersection(self, cv: Canvas, travel: float) -> None:
        cam, road, z0, w = self.cam, self.road, self.z0, self.width
        col = road.colors
        far = 250.0
        lo = -far if self.left else 0.0
        hi = road.width + far if self.right else road.width
        if road.kerb:
            sw = 3.0
            for side, on in ((-1, self.left), (1, self.right)):
                if on:
                    a, b = (-far, -0.3) if side < 0 else (road.width + 0.3, road.width + far)
                    cv.ground(geom.band(cam, a, b, z0 - sw, z0 + w + sw), col["sidewalk"])
        # Crossing streets are paved apart from ours: darker asphalt, or grey slush in the snow.
        if cv.look.ground == "snow":
            cross = (176, 176, 182)
        else:
            cross = tuple(int(v * 0.72) for v in col["road"])
        cv.ground(geom.band(cam, lo, hi, z0, z0 + w), cross, road=True, feature=True)
        if self.diag:
            wd, ln = 12.0, 90.0
            for s, dz, a, b in ((self.diag, 1.0, z0 + w * 0.5, z0 + w + wd * 1.2),
                                (self.back, -1.0, z0 - wd * 1.3, z0 + w * 0.5)):
                ue = 0.0 if s < 0 else road.width
                du = s * ln * 0.6
                corners = [(ue, a), (ue, b), (ue + du, b + dz * ln), (ue + du, a + dz * ln)]
                cv.ground(geom.ground_poly(cam, corners), cross, road=True, feature=True)
                if cv.look.ground != "snow":
                    m = (a + b) / 2
                    line = [(ue, m - 0.25), (ue, m + 0.25), (ue + du, m + dz * ln + 0.25),
                            (ue + du, m + dz * ln - 0.25)]
                    cv.ground(geom.ground_poly(cam, line), YELLOW_MARK, feature=True)
        snowy = cv.look.ground == "snow"
        if snowy:  # tyre tracks of the crossing traffic, dark across the white road
            for zz in (z0 + w * 0.22, z0 + w * 0.36, z0 + w * 0.64, z0 + w * 0.78):
                cv.ground(geom.band(cam, lo, hi, zz - 0.3, zz + 0.3), col["track"], road=True, feature=True)
        # The crossing road has priority: its double centre line runs right across the junction
        # (a long horizontal line low in the frame is what says "in the junction" when passing),
        # edge lines along its arms; stop lines on our approach and the opposite one.
        zc = z0 + w / 2
        cv.ground(geom.band(cam, lo, hi, zc - 0.42, zc - 0.17), YELLOW_MARK, feature=True)
        cv.ground(geom.band(cam, lo, hi, zc + 0.17, zc + 0.42), YELLOW_MARK, feature=True)
        for side, on in ((-1, self.left), (1, self.right)):
            if on:
                a, b = (-far, -1.0) if side < 0 else (road.width + 1.0, road.width + far)
                for ze in (z0 + 0.4, z0 + w - 0.4):
                    cv.ground(geom.band(cam, a, b, ze - 0.12, ze + 0.12), WHITE_MARK, feature=True)
        if snowy:
            return
        cv.ground(geom.band(cam, road.same_dir_lo + 0.2, road.width - 0.2, z0 - 2.2, z0 - 1.6), WHITE_MARK)
        if road.two_way:
            cv.ground(geom.band(cam, 0.2, road.same_dir_lo - 0.2, z0 + w + 1.6, z0 + w + 2.2), WHITE_MARK)
        del travel

    def _items_intersection(self, cv: Canvas) -> None:
        road, z0, w = self.road, self.z0, self.width
        # A post (signal or stop sign) on both corners of every arm's mouth: a T has them on one
        # side only, a 5+ junction also at its diagonal arms.
        corners = []
        for side, on in ((-1, self.left), (1, self.right)):
            if on:
                u = -1.2 if side < 0 else road.width + 1.2
                corners += [(u, z0 - 1.0), (u, z0 + w + 1.0)]
        if self.diag:
            for sd, z in ((self.diag, z0 + w + 12.0 * 1.2 + 1.0), (self.back, z0 - 12.0 * 1.3 - 1.0)):
                corners.append((-1.2 if sd < 0 else road.width + 1.2, z))
        rr = self._rng("junction")
        lit = rr.choice(("red", "green"))
        mast = max(range(len(corners)), key=lambda i: (corners[i][1] > z0, corners[i][0]))
        for i, (u, z) in enumerate(corners):
            if self.signals:
                self._signal(cv, u, z, lit, mast=i == mast)
            else:
                sign(cv, u, z, 2.3, 0.5, OCTAGON, (196, 20, 26), WHITE)
        # Cross traffic on each arm: cars seen side-on mark where the crossing roads are.
        for side, on in ((-1, self.left), (1, self.right)):
            if on:
                for k in (0.25, 0.75):
                    more, off, color = rr.random(), rr.uniform(3.5, 9), rr.choice(CAR_COLORS)
                    if k == 0.25 or more < 0.5:
                        uc = -off if side < 0 else road.width + off
                        self._side_car(cv, uc, z0 + w * k, color)
        d, color = rr.uniform(8, 20), rr.choice(CAR_COLORS)
        if self.diag:
            ue = 0.0 if self.diag < 0 else road.width
            self._side_car(cv, ue + self.diag * (0.6 * d + 3), z0 + w + 7 + d, color)
            ue = 0.0 if self.back < 0 else road.width
            self._side_car(cv, ue + self.back * (0.6 * d + 3), z0 - 8 - d * 0.5, color)
        # Junction-ahead warning sign: the pictogram shows the arms.
        s = self.t_side
        marks = [((0.0, -0.62), (0.0, 0.62), 0.3)]
        if self.arms >= 4:
            marks.append(((-0.62, 0.05), (0.62, 0.05), 0.3))
        else:
            marks.append(((0.0, 0.05), (0.62 * s, 0.05), 0.3))
        if self.diag:
            marks.append(((0.0, 0.05), (0.5 * self.diag, 0.55), 0.28))
            marks.append(((0.0, 0.05), (0.5 * self.back, -0.45), 0.28))
        self._warning(cv, z0 - rr.uniform(5.0, 8.0), marks)

    def _warning(self, cv: Canvas, zs: float, marks: list, fill: tuple = (250, 204, 30),
                 feature: bool = False) -> None:
        """Advance warning diamond on the right shoulder, or the left one when the right is out of
        view (a wide road seen from its left lane)."""
        road, cam = self.road, self.cam
        u = road.width + 1.4
        if u - cam.u_cam > 7.0:
            u = (road.same_dir_lo - 0.9) if road.two_way else -1.4
        sign(cv, u, zs, 2.7, 1.1, DIAMOND, fill, BLACK, marks, feature=feature)

    def _signal(self, cv: Canvas, u: float, z: float, lit: str, mast: bool = False) -> None:
        """Signal post; the far-side one carries a mast arm with heads over the lanes."""
        if z < 1.0:
            return
        cam = cv.cam
        x = cam.X(u, z)
        height = 6.2 if mast else 4.6
        prims = pole(cv, u, z, height, (70, 72, 76), 0.24)
        heads = [u]
        if mast:
            reach = self.road.width - self.road.same_dir_lo
            a = u - reach - 0.5
            prims.append(("p", geom.face(cam, a, u, height - 0.25, height, z), cv.col((70, 72, 76), z, x)))
            heads = [u - reach * k for k in (0.35, 0.75)]
        for hu in heads:
            y0 = 3.2 if not mast else height - 1.6
            prims.append(("p", geom.face(cam, hu - 0.26, hu + 0.26, y0, y0 + 1.4, z), cv.col((26, 28, 30), z, x)))
            r = max(0.8, cam.f * 0.16 / z)
            for i, (name, c) in enumerate((("red", (255, 40, 30)), ("amber", (255, 170, 20)),
                                           ("green", (40, 255, 120)))):
                lx, ly = cam.pt(hu, y0 + 1.15 - i * 0.45, z)
                on = name == lit
                prims.append(("e", (lx - r, ly - r, lx + r, ly + r), cv.look.emit(c, z) if on else (40, 40, 40)))
                if on:
                    cv.glow(lx, ly, r * 2.2, c, z)
        cv.item(dist(cv, u, z), prims, kind=SIGNAL)
        cast(cv, u, z, height, 0.1)

    def _side_car(self, cv: Canvas, u: float, z: float, color: tuple) -> None:
        if z < 3.0:
            return
        cam = cv.cam
        x = cam.X(u, z)
        body = cv.col(color, z, x)
        glass = cv.col((40, 48, 60), z, x, 1.5)
        dark = cv.col((24, 24, 28), z, x)
        prims = [("p", geom.face(cam, u - 2.2, u + 2.2, 0.3, 1.0, z), body),
                 ("p", geom.face(cam, u - 1.3, u + 1.1, 1.0, 1.45, z), glass)]
        for wu in (u - 1.4, u + 1.4):
            wx, wy = cam.pt(wu, 0.32, z)
            r = cam.f * 0.33 / z
            prims.append(("e", (wx - r, wy - r, wx + r, wy + r), dark))
        if cv.look.lamps_on:
            hx, hy = cam.pt(u - 2.1, 0.75, z)
            cv.glow(hx, hy, max(1.5, cam.f * 0.3 / z), (255, 250, 225), z)
        cv.item(dist(cv, u, z), prims, kind=VEHICLE)
