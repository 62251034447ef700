"""Zebra and rail crossings."""

from __future__ import annotations

from core.synth import geom
from core.synth.camera import ZNEAR
from core.synth.canvas import Canvas
from core.synth.objects import GATE, PEDESTRIAN, SIGNAL
from core.synth.places.common import BLACK, SQUARE, WHITE, sign
from core.synth.props import dist, pole
from core.synth.road import WHITE_MARK, cast


class CrossingMixin:
    """Drawing of one kind of place; mixed into ``Place`` (which holds the geometry)."""

    def _ground_zebra(self, cv: Canvas, travel: float) -> None:
        cam, road, z0, w = self.cam, self.road, self.z0, self.width
        if cv.look.ground == "snow":  # trodden slush shows the crossing on a white road
            cv.ground(geom.band(cam, 0.0, road.width, z0 - 0.4, z0 + w + 0.4), (96, 96, 100), road=True)
        u = 0.3
        c = WHITE if not cv.look.wet else (200, 200, 198)
        while u + 0.5 < road.width:
            cv.ground(geom.band(cam, u, u + 0.55, z0, z0 + w), c, feature=True)
            u += 1.1
        cv.ground(geom.band(cam, road.same_dir_lo + 0.2, road.width - 0.2, z0 - 1.6, z0 - 1.2), WHITE_MARK)
        del travel

    def _items_zebra(self, cv: Canvas) -> None:
        road, z0, w = self.road, self.z0, self.width
        ped = [((0.0, 0.55), (0.0, 0.1), 0.2), ((0.0, 0.1), (-0.3, -0.55), 0.16), ((0.0, 0.1), (0.3, -0.55), 0.16),
               ((-0.35, 0.3), (0.35, 0.3), 0.14)]
        lo_u = (road.same_dir_lo - 0.9) if road.two_way else -0.9
        for u, z in ((road.width + 0.9, z0 - 0.6), (lo_u, z0 - 0.6), (-0.9, z0 + w + 0.6)):
            sign(cv, u, z, 2.7, 0.55, SQUARE, (20, 86, 200), WHITE, ped, WHITE)
            self._beacon(cv, u + (0.6 if u > road.width / 2 else -0.6), z + 0.4)
        rr = self._rng("walkers")
        for _ in range(rr.choice((0, 1, 1, 2))):
            u, k, coat = rr.uniform(0.5, road.width - 0.5), rr.uniform(0.3, 0.7), rr.randrange(4)
            self._walker(cv, u, z0 + w * k, coat)

    def _beacon(self, cv: Canvas, u: float, z: float) -> None:
        if z < 1.0:
            return
        cam = cv.cam
        prims = []
        for i in range(5):
            c = (20, 20, 20) if i % 2 else (235, 235, 230)
            prims.append(("p", geom.face(cam, u - 0.07, u + 0.07, i * 0.55, (i + 1) * 0.55, z), cv.col(c, z)))
        gx, gy = cam.pt(u, 3.0, z)
        r = max(1.0, cam.f * 0.22 / z)
        prims.append(("e", (gx - r, gy - r, gx + r, gy + r), cv.look.emit((255, 160, 30), z)))
        cv.glow(gx, gy, r * 1.8, (255, 150, 30), z)
        cv.item(dist(cv, u, z), prims, kind=SIGNAL)

    def _walker(self, cv: Canvas, u: float, z: float, coat_i: int) -> None:
        if z < 1.5:
            return
        cam = cv.cam
        x = cam.X(u, z)
        coat = cv.col(((160, 30, 40), (40, 60, 120), (50, 50, 55), (200, 190, 170))[coat_i], z, x)
        prims = [("p", geom.face(cam, u - 0.22, u + 0.22, 0.8, 1.5, z), coat),
                 ("p", geom.face(cam, u - 0.18, u - 0.02, 0.0, 0.85, z), cv.col((40, 40, 50), z, x)),
                 ("p", geom.face(cam, u + 0.02, u + 0.18, 0.0, 0.85, z), cv.col((40, 40, 50), z, x))]
        hx, hy = cam.pt(u, 1.65, z)
        hr = cam.f * 0.13 / z
        prims.append(("e", (hx - hr, hy - hr, hx + hr, hy + hr), cv.col((200, 160, 130), z, x)))
        cv.item(dist(cv, u, z) - 0.5, prims, kind=PEDESTRIAN)

    # rail ----------------------------------------------------------------------------------
    def _ground_rail(self, cv: Canvas, travel: float) -> None:
        cam, road, z0, w = self.cam, self.road, self.z0, self.width
        far = 250.0
        ballast = (112, 100, 90) if cv.look.sky != "snow" else (170, 168, 170)
        a, b = z0 - 1.3, z0 + w + 1.3
        cv.ground(geom.band(cam, -far, road.width + far, a, b), ballast, feature=True)
        cv.ground(geom.band(cam, -0.5, road.width + 0.5, a, b), (150, 146, 138), road=True, feature=True)
        tie = (70, 52, 40)
        for t in range(self.tracks):
            zt = z0 + t * 4.5
            u = -0.6
            while u > -26:
                cv.ground(geom.band(cam, u - 0.25, u, zt - 0.45, zt + 1.9), tie, feature=True)
                u -= 1.0
            u = road.width + 0.6
            while u < road.width + 26:
                cv.ground(geom.band(cam, u, u + 0.25, zt - 0.45, zt + 1.9), tie, feature=True)
                u += 1.0
        # Painted X ahead of the crossing.
        if cv.look.ground != "snow":
            lo, hi = road.ego_lo + 0.4, road.ego_hi - 0.4
            za, zb = z0 - 16, z0 - 9
            if za > ZNEAR:
                for (u1, z1), (u2, z2) in (((lo, za), (hi, zb)), ((hi, za), (lo, zb))):
                    pts = [cam.pt(u1 - 0.3, 0, z1), cam.pt(u1 + 0.3, 0, z1), cam.pt(u2 + 0.3, 0, z2),
                           cam.pt(u2 - 0.3, 0, z2)]
                    cv.ground(pts, WHITE_MARK)
        del travel

    def _items_rail(self, cv: Canvas) -> None:
        cam, road, z0, w = self.cam, self.road, self.z0, self.width
        # Rails: steel lines right across the frame, drawn as items so they stay crisp.
        for t in range(self.tracks):
            for zr in (z0 + t * 4.5, z0 + t * 4.5 + 1.435):
                if zr > ZNEAR:
                    y = cam.pt(0, 0.15, zr)[1]
                    wpx = max(2, int(round(cam.f * 0.14 / zr)))
                    x1 = cam.pt(-300, 0.15, zr)[0]
                    x2 = cam.pt(road.width + 300, 0.15, zr)[0]
                    c = cv.col((190, 190, 196), zr, 0.0, 2.0)
                    cv.item(zr + 50, [("l", [(x1, y + wpx), (x2, y + wpx)], cv.col((40, 36, 34), zr), wpx + 1),
                                      ("l", [(x1, y), (x2, y)], c, wpx)], True)
        # Crossbucks on both sides of our lanes, before and after the tracks; gates on our side.
        lo_u = (road.same_dir_lo - 0.8) if road.two_way else -1.3
        hi_u = road.width + 1.3
        rr = self._rng("flashers")
        for u in (lo_u, hi_u):
            self._crossbuck(cv, u, z0 - 2.6, rr.choice((-1, 1)))
            self._crossbuck(cv, u, z0 + w + 2.6, rr.choice((-1, 1)))
        down = self.gate_down and self.stage != "at"
        reach = max(2.5, road.width - road.same_dir_lo - 0.6) if road.two_way else road.width - 0.6
        self._gate(cv, road.width + 0.8, z0 - 3.6, -1, down=down, reach=reach)
        xs = [((-0.7, -0.7), (0.7, 0.7), 0.16), ((-0.7, 0.7), (0.7, -0.7), 0.16)]
        sign(cv, road.width + 1.5, z0 - 22, 2.4, 0.7, None, (250, 204, 30), BLACK, xs)

    def _crossbuck(self, cv: Canvas, u: float, z: float, lit: int) -> None:
        if z < 1.0:
            return
        cam = cv.cam
        x = cam.X(u, z)
        prims = pole(cv, u, z, 4.0, (220, 220, 220), 0.16)
        cx, cy = cam.pt(u, 3.5, z)
        s = cam.f / z
        white = cv.col(WHITE, z, x, 3.0)
        red = cv.col((200, 20, 24), z, x, 3.0)
        for dx in (1, -1):
            arm = [(cx - 0.75 * s, cy + dx * 0.75 * s), (cx + 0.75 * s, cy - dx * 0.75 * s)]
            prims.append(("l", arm, red, max(1, int(0.32 * s))))
            prims.append(("l", arm, white, max(1, int(0.22 * s))))
        # Twin red flashers under the crossbuck, one lit.
        bx, by = cam.pt(u, 2.5, z)
        prims.append(("l", [(bx - 0.6 * s, by), (bx + 0.6 * s, by)], cv.col((30, 30, 30), z, x), max(1, int(0.1 * s))))
        for d in (-1, 1):
            lx = bx + d * 0.5 * s
            r = max(1.0, 0.2 * s)
            c = cv.look.emit((255, 36, 26), z) if d == lit else cv.col((70, 20, 20), z, x)
            prims.append(("e", (lx - r, by - r, lx + r, by + r), c))
            if d == lit:
                cv.glow(lx, by, r * 2.5, (255, 40, 30), z)
        cv.item(dist(cv, u, z), prims, True, kind=SIGNAL)
        cast(cv, u, z, 4.0, 0.1)

    def _gate(self, cv: Canvas, u: float, z: float, toward: int, down: bool, reach: float) -> None:
        if z < 1.0:
            return
        cam = cv.cam
        x = cam.X(u, z)
        prims = [("p", geom.face(cam, u - 0.2, u + 0.2, 0.0, 1.3, z), cv.col((220, 220, 220), z, x))]
        n = 7
        for i in range(n):
            c = cv.col((210, 20, 24) if i % 2 else WHITE, z, x, 3.0)
            if down:
                a, b = u + toward * reach * i / n, u + toward * reach * (i + 1) / n
                prims.append(("p", geom.face(cam, min(a, b), max(a, b), 1.0, 1.2, z), c))
            else:
                ln = max(reach, 4.0)
                prims.append(("p", geom.face(cam, u - 0.1, u + 0.1, 1.3 + ln * i / n, 1.3 + ln * (i + 1) / n, z), c))
        cv.item(dist(cv, u, z), prims, True, kind=GATE)
