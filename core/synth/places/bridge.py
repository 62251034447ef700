"""Overhead bridges: a portal of girder, parapet, embankments and side walls."""

from __future__ import annotations

from core.synth import geom
from core.synth.camera import ZNEAR
from core.synth.canvas import Canvas
from core.synth.props import dist


class BridgeMixin:
    """Drawing of one kind of place; mixed into ``Place`` (which holds the geometry)."""

    def _bridge_span(self) -> tuple[float, float]:
        road = self.road
        n = 6 if road.kind == "highway" else 2  # a highway bridge spans both carriageways
        lw = -sum(b[0] for b in road.left[:n]) - 0.6
        rw = road.width + sum(b[0] for b in road.right[:min(n, 2)]) + 0.6
        if road.kind == "highway":
            rw = road.width + road.right[0][0] + 1.2
        return lw, rw

    def _ground_bridge(self, cv: Canvas, travel: float) -> None:
        lo, hi = self._bridge_span()
        pts = geom.band(self.cam, lo, hi, self.z0, self.z0 + self.width)
        cv.shadow(pts, 255 if cv.look.sun_shadows else 150)
        del travel

    def _items_bridge(self, cv: Canvas) -> None:
        cam, r = self.cam, self._rng("bridge")
        z0, dz = self.z0, self.width
        yc, t = self.clear, self.thick
        lo, hi = self._bridge_span()
        span = 300.0
        conc = (168, 164, 156)
        girder = r.choice(((186, 182, 174), (92, 118, 140), (120, 130, 110), (176, 160, 130)))
        zn = max(z0, ZNEAR)
        xm = 0.0
        # Walls under the deck at both sides, running along the road: a portal to drive through.
        for u in (lo, hi):
            pts = geom.wall(cam, u, 0.0, yc, zn, z0 + dz)
            cv.item(dist(cv, u, z0 + dz) + 1.0, [("p", pts, cv.col(tuple(int(v * 0.7) for v in conc), zn, cam.X(u, zn)))],
                    True)
        under = geom.ceiling(cam, lo - 0.5, hi + 0.5, yc, zn, z0 + dz)
        prims = [("p", under, cv.col((64, 64, 68), (zn + z0 + dz) / 2, xm))]
        if z0 > ZNEAR:
            # Embankment faces beside the opening, then the girder and parapet across the frame.
            prims.append(("p", geom.face(cam, lo - span, lo, 0.0, yc, z0), cv.col(conc, z0, cam.X(lo - 5, z0))))
            prims.append(("p", geom.face(cam, hi, hi + span, 0.0, yc, z0), cv.col(conc, z0, cam.X(hi + 5, z0))))
            prims.append(("p", geom.face(cam, lo - span, hi + span, yc, yc + t, z0), cv.col(girder, z0, xm, 1.3)))
            prims.append(("p", geom.face(cam, lo - span, hi + span, yc + t, yc + t + 0.25, z0),
                          cv.col((206, 204, 198), z0, xm, 1.3)))
            rail = cv.col((96, 98, 104), z0, xm)
            prims.append(("p", geom.face(cam, lo - span, hi + span, yc + t + 0.95, yc + t + 1.1, z0), rail))
            u = lo - 40
            while u < hi + 40:
                prims.append(("p", geom.face(cam, u, u + 0.12, yc + t + 0.25, yc + t + 1.0, z0), rail))
                u += 2.0
            if r.random() < 0.6:
                cu = r.uniform(lo, hi)
                prims.append(("p", geom.face(cam, cu, cu + 4.2, yc + t + 0.25, yc + t + 1.6, z0 + 1),
                              cv.col(r.choice(((178, 22, 28), (40, 88, 158), (232, 232, 232))), z0, xm)))
        cv.item(max(z0, ZNEAR), prims, True)
        if cv.look.lamps_on:
            # Rows of lamps under the deck: a lit ceiling when passing under it at night.
            zl = z0 + 1.5
            while zl < z0 + dz:
                if zl > 1.0:
                    u = lo + 1.5
                    while u < hi:
                        lx, ly = cam.pt(u, yc - 0.1, zl)
                        cv.glow(lx, ly, max(1.5, cam.f * 0.3 / zl), (255, 214, 150), zl)
                        u += 5.0
                zl += 6.0
        if self.road.kind == "highway" and z0 + dz / 2 > 1:
            # Central pier in the median.
            pu = -self.road.left[0][0] - 0.6
            zp = z0 + dz / 2
            cv.item(dist(cv, pu, zp), [("p", geom.face(cam, pu - 0.6, pu + 0.6, 0.0, yc, zp),
                                        cv.col(conc, zp, cam.X(pu, zp)))], True)
