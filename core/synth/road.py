"""Road layouts per road type, and everything painted flat on the ground.

Road types differ in what a viewer reads at a glance: lane count and marking colours, what lines
the carriageway (barriers, guardrails, kerbs and sidewalks, gravel and fields, lawns), and how much
the road curves (only ramps curve hard, so mild nuisance curvature never looks like a ramp).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from core.synth import geom
from core.synth.camera import ZFAR, ZNEAR
from core.synth.canvas import RGB, Canvas

WHITE_MARK = (236, 236, 230)
YELLOW_MARK = (232, 188, 38)
SNOW = (234, 237, 242)


@dataclass
class Road:
    kind: str
    width: float  # carriageway (travel + parking) width; u runs 0..width left to right
    lane_w: float
    lanes: list[float]  # lane boundaries u, left to right
    ego_lo: float  # the lane the camera drives in
    ego_hi: float
    two_way: bool
    marks: list[tuple[float, str]]
    left: list[tuple[float, str]] = field(default_factory=list)  # (width, surface) outward
    right: list[tuple[float, str]] = field(default_factory=list)
    kerb: bool = False
    colors: dict[str, RGB] = field(default_factory=dict)

    @property
    def same_dir_lo(self) -> float:
        """Left edge of the lanes that run the camera's way."""
        return self.lanes[len(self.lanes) // 2] if self.two_way else 0.0

    def move_ego(self, side: int) -> float:
        """Put the camera in the outermost lane running our way on ``side``; returns the shift."""
        lanes = [i for i in range(len(self.lanes) - 1) if self.lanes[i] >= self.same_dir_lo - 0.01]
        if self.kind == "local":
            lanes = [2]
        i = lanes[0] if side < 0 else lanes[-1]
        old = (self.ego_lo + self.ego_hi) / 2
        self.ego_lo, self.ego_hi = self.lanes[i], self.lanes[i + 1]
        return (self.ego_lo + self.ego_hi) / 2 - old

    def side_edge(self, side: int) -> float:
        """Lateral u of the outer edge of the roadside bands on ``side``."""
        if side < 0:
            return -sum(w for w, _ in self.left)
        return self.width + sum(w for w, _ in self.right)


def _jit(c: RGB, rnd: random.Random, k: float = 10.0) -> RGB:
    d = rnd.uniform(-k, k)
    return (int(max(0, min(255, c[0] + d + rnd.uniform(-3, 3)))),
            int(max(0, min(255, c[1] + d + rnd.uniform(-3, 3)))),
            int(max(0, min(255, c[2] + d + rnd.uniform(-3, 3)))))


def _palette(params: dict, rnd: random.Random) -> dict[str, RGB]:
    surf = params.get("ground", "dry")
    asphalt = {"dry": (96, 96, 99), "wet": (50, 52, 57), "snow": (226, 229, 235)}[surf]
    snowy = params.get("sky") == "snow"
    fields = [(92, 138, 52), (176, 158, 78), (124, 98, 62), (112, 150, 60)]
    c = {
        "road": _jit(asphalt, rnd, 8),
        "shoulder": _jit(tuple(min(255, int(v * 1.1)) for v in asphalt), rnd, 6),
        "track": _jit((150, 150, 156), rnd, 10) if surf == "snow" else asphalt,
        "grass": _jit((88, 126, 56), rnd),
        "gravel": _jit((150, 136, 112), rnd),
        "field": _jit(rnd.choice(fields), rnd),
        "sidewalk": _jit((168, 164, 156), rnd),
        "kerb": _jit((196, 194, 188), rnd, 5),
        "lawn": _jit((84, 140, 62), rnd),
        "concrete": _jit((176, 173, 166), rnd, 6),
    }
    c["field2"] = tuple(max(0, v - 28) for v in c["field"])
    if snowy:  # snowfall whitens everything off the carriageway, whatever the road surface
        for k in ("grass", "gravel", "field", "lawn", "sidewalk", "kerb"):
            c[k] = _jit(SNOW, rnd, 5)
        c["field2"] = (205, 208, 214)
    return c


def build_road(params: dict, rnd: random.Random) -> tuple[Road, float, float]:
    """Layout of the road type; returns (road, camera lateral u, curvature)."""
    kind = str(params.get("road", "urban"))
    col = _palette(params, rnd)
    curve = rnd.uniform(-0.0012, 0.0012)
    if kind == "highway":
        n = rnd.choice((3, 3, 4))
        lw = rnd.uniform(3.5, 3.9)
        w = n * lw
        lanes = [i * lw for i in range(n + 1)]
        ego = rnd.randrange(n)
        marks = [(0.3, "solid_yellow"), (w - 0.3, "solid_white")]
        marks += [(lanes[i], "dashed_white") for i in range(1, n)]
        # A grass median keeps the opposite carriageway apart, so a junction arm on the left
        # shows as a dark band through the grass instead of melting into more asphalt.
        left = [(rnd.uniform(1.2, 2.2), "shoulder"), (1.2, "concrete"), (rnd.uniform(5.0, 10.0), "grass"),
                (1.2, "shoulder"),
                (n * lw, "road"), (3.0, "shoulder"), (60.0, "grass")]
        right = [(rnd.uniform(2.6, 3.6), "shoulder"), (60.0, "grass")]
        road = Road(kind, w, lw, lanes, lanes[ego], lanes[ego + 1], False, marks, left, right)
    elif kind == "ramp":
        lw = rnd.uniform(4.3, 5.0)
        marks = [(0.25, "solid_yellow"), (lw - 0.25, "solid_white")]
        left = [(rnd.uniform(0.8, 1.4), "shoulder"), (60.0, "grass")]
        right = [(rnd.uniform(1.4, 2.4), "shoulder"), (60.0, "grass")]
        road = Road(kind, lw, lw, [0.0, lw], 0.0, lw, False, marks, left, right)
        curve = rnd.choice((-1, 1)) * rnd.uniform(0.0065, 0.011)
    elif kind == "rural":
        lw = rnd.uniform(3.1, 3.6)
        w = 2 * lw
        marks = [(lw, rnd.choice(("dashed_yellow", "double_yellow")))]
        if rnd.random() < 0.6:
            marks += [(0.2, "solid_white"), (w - 0.2, "solid_white")]
        left = [(rnd.uniform(0.5, 1.4), "gravel"), (rnd.uniform(1.0, 3.0), "grass"), (80.0, "field")]
        right = [(rnd.uniform(0.5, 1.4), "gravel"), (rnd.uniform(1.0, 3.0), "grass"), (80.0, "field")]
        road = Road(kind, w, lw, [0.0, lw, w], lw, w, True, marks, left, right)
        curve = rnd.uniform(-0.0016, 0.0016)
    elif kind == "local":
        lw = rnd.uniform(2.9, 3.2)
        park = rnd.uniform(1.9, 2.3)
        w = 2 * lw + 2 * park
        lanes = [0.0, park, park + lw, park + 2 * lw, w]
        side = [(0.3, "kerb"), (rnd.uniform(1.0, 2.0), "lawn"), (1.5, "sidewalk"), (60.0, "lawn")]
        road = Road(kind, w, lw, lanes, park + lw, park + 2 * lw, True, [], list(side), list(side), kerb=True)
    else:  # urban
        n = rnd.choice((2, 4, 4))
        lw = rnd.uniform(3.1, 3.5)
        w = n * lw
        lanes = [i * lw for i in range(n + 1)]
        if n == 2:
            marks = [(lw, "dashed_yellow")]
        else:
            marks = [(2 * lw, "double_yellow"), (lw, "dashed_white"), (3 * lw, "dashed_white")]
        ego = n - 1 if rnd.random() < 0.6 or n == 2 else n - 2
        sw = rnd.uniform(3.0, 5.0)
        side = [(0.3, "kerb"), (sw, "sidewalk"), (60.0, "sidewalk")]
        road = Road(kind, w, lw, lanes, lanes[ego], lanes[ego + 1], True, marks, list(side), list(side),
                    kerb=True)
    road.colors = col
    u_cam = (road.ego_lo + road.ego_hi) / 2 + rnd.uniform(-0.3, 0.3)
    return road, u_cam, curve


# ---- painting -----------------------------------------------------------------------------
def paint_ground(cv: Canvas, road: Road, travel: float) -> None:
    cam, col = cv.cam, road.colors
    base = col["field"] if road.kind == "rural" else col["grass"] if road.kind != "urban" else col["sidewalk"]
    cv.ground([(0, cam.yh), (cam.width, cam.yh), (cam.width, cam.height + 1), (0, cam.height + 1)], base)
    for side, bands in ((-1, road.left), (1, road.right)):
        u = 0.0 if side < 0 else road.width
        for w, surf in bands:
            u2 = u + side * w
            lo, hi = min(u, u2), max(u, u2)
            cv.ground(geom.band(cam, lo, hi, ZNEAR, ZFAR), col[surf], road=surf in ("road", "shoulder"))
            if surf == "field":
                _furrows(cv, lo, hi, col["field2"])
            u = u2
    cv.ground(geom.band(cam, 0.0, road.width, ZNEAR, ZFAR), col["road"], road=True)
    if cv.look.ground == "snow":
        _tyre_tracks(cv, road)
    else:
        paint_marks(cv, road, road.marks, 0.0, ZFAR, travel)


def _furrows(cv: Canvas, lo: float, hi: float, c: RGB) -> None:
    step = cv.rnd.uniform(1.6, 2.6)
    u = lo + step * 0.5
    while u < hi and u - lo < 40:
        cv.ground(geom.band(cv.cam, u, u + step * 0.45, ZNEAR, ZFAR), c)
        u += step


def _tyre_tracks(cv: Canvas, road: Road) -> None:
    """Two grey wheel ruts in our lane (and sometimes a neighbour's) on the white road."""
    c = road.colors["track"]
    lanes = [(road.ego_lo + road.ego_hi) / 2]
    others = [(road.lanes[i] + road.lanes[i + 1]) / 2 for i in range(len(road.lanes) - 1)]
    others = [m for m in others if abs(m - lanes[0]) > 0.5]
    if others and cv.rnd.random() < 0.5:
        lanes.append(cv.rnd.choice(others))
    for mid in lanes:
        for off in (-0.8, 0.8):
            o = off + cv.rnd.uniform(-0.1, 0.1)
            cv.ground(geom.band(cv.cam, mid + o - 0.2, mid + o + 0.2, ZNEAR, ZFAR), c, road=True)


def paint_marks(cv: Canvas, road: Road, marks: list[tuple[float, str]], z1: float, z2: float,
                travel: float) -> None:
    """Lane lines between z1 and z2; dashes keep their place on the road as the camera moves."""
    cam = cv.cam
    dim = 0.8 if cv.look.wet else 1.0
    white = tuple(int(v * dim) for v in WHITE_MARK)
    yellow = tuple(int(v * dim) for v in YELLOW_MARK)
    for u, style in marks:
        c = yellow if "yellow" in style else white
        hw = 0.11
        if style.startswith("solid"):
            cv.ground(geom.band(cam, u - hw, u + hw, z1, z2), c)
        elif style == "double_yellow":
            cv.ground(geom.band(cam, u - 0.3, u - 0.1, z1, z2), c)
            cv.ground(geom.band(cam, u + 0.1, u + 0.3, z1, z2), c)
        else:
            period, dash = (12.0, 3.0) if road.kind == "highway" else (9.0, 3.0)
            z = -(travel % period)
            zmax = min(z2, 160.0)
            while z < zmax:
                a, b = max(z, z1), min(z + dash, z2)
                if b > a and b > ZNEAR:
                    cv.ground(geom.band(cam, u - hw, u + hw, a, b), c)
                z += period


def paint_far(cv: Canvas, road: Road) -> None:
    """Scenery at the horizon: hills for the country, a skyline for the city, trees elsewhere."""
    cam, rnd = cv.cam, cv.rnd
    w, yh = cam.width, cam.yh
    s = cam.height / 180.0
    kind = road.kind
    if kind == "rural":
        c = cv.col(_jit((78, 108, 92), rnd), 330.0)
        pts = [(0.0, yh + 1)]
        a1, a2, p1, p2 = rnd.uniform(6, 16), rnd.uniform(3, 8), rnd.uniform(0, 6), rnd.uniform(0, 6)
        for i in range(17):
            x = w * i / 16
            pts.append((x, yh - s * (a1 * (1 + math.sin(x / w * 3.0 + p1)) / 2 + a2 * (1 + math.sin(x / w * 9 + p2)) / 2 + 2)))
        pts.append((w, yh + 1))
        cv.draw.polygon(pts, fill=c)
    elif kind == "urban":
        x = -rnd.uniform(0, 20)
        c0 = _jit((120, 126, 140), rnd)
        while x < w:
            bw = rnd.uniform(8, 26) * s
            bh = rnd.uniform(8, 40) * s
            c = cv.col(_jit(c0, rnd, 12), 300.0)
            cv.draw.rectangle((x, yh - bh, x + bw, yh + 1), fill=c)
            x += bw + rnd.uniform(-3, 3) * s
    else:
        c = cv.col(_jit((54, 84, 50), rnd, 8), 300.0)
        x = -5.0
        while x < w:
            r = rnd.uniform(3, 8) * s
            cv.draw.ellipse((x - r, yh - r * 1.3, x + r, yh + r * 0.3), fill=c)
            x += r * rnd.uniform(0.9, 1.6)


def shadow_offset(cv: Canvas) -> tuple[float, float]:
    """Ground shift of a shadow per metre of height (long at dusk); fixed per scene."""
    if cv.sun is None:
        k = 1.7 if cv.look.light == "dusk" else 0.9
        side = cv.rnd.choice((-1, 1))
        cv.sun = (side * k * cv.rnd.uniform(0.8, 1.2), -k * cv.rnd.uniform(0.05, 0.3))
    return cv.sun


def cast(cv: Canvas, u: float, z: float, height: float, half: float) -> None:
    """Hard shadow of an upright object standing at (u, z) on the ground (sunny only)."""
    if not cv.look.sun_shadows or z < ZNEAR:
        return
    sx, sz = shadow_offset(cv)
    tu, tz = u + sx * height, z + sz * height
    corners = [(u - half, z), (u + half, z), (tu + half, tz), (tu - half, tz)]
    if min(c[1] for c in corners) < ZNEAR:
        return
    cv.shadow([cv.cam.pt(a, 0.0, b) for a, b in corners])



def wall_shadow(cv: Canvas, u: float, z1: float, z2: float, height: float) -> None:
    """Shadow of a long wall along the road (a building row, a house)."""
    if not cv.look.sun_shadows:
        return
    sx, sz = shadow_offset(cv)
    z1 = max(z1, ZNEAR)
    za, zb = z2 + sz * height, z1 + sz * height
    if min(za, zb) <= ZNEAR or z2 <= z1:
        return
    tu = u + sx * height
    pt = cv.cam.pt
    cv.shadow([pt(u, 0.0, z1), pt(u, 0.0, z2), pt(tu, 0.0, za), pt(tu, 0.0, zb)])
