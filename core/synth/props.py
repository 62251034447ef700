"""Upright things that stand by or on the road: trees, poles, lamps, cars, walls, buildings.

Each helper queues one painter item with its colours already lit and fogged for its distance.
Walls along the road are cut into short pieces sorted by their far end, which keeps objects on
the road in front of them and objects beyond them behind.
"""

from __future__ import annotations

import math
import random

from core.synth import geom
from core.synth.camera import ZNEAR
from core.synth.canvas import RGB, Canvas
from core.synth.objects import VEHICLE
from core.synth.road import cast, wall_shadow

CAR_COLORS: tuple[RGB, ...] = (
    (178, 22, 28), (30, 40, 92), (196, 198, 204), (26, 26, 30), (232, 232, 232), (58, 88, 60),
    (92, 92, 98), (118, 24, 34), (40, 88, 158), (150, 150, 158),
)
TAIL = (255, 40, 30)
HEAD = (255, 250, 225)


def dist(cv: Canvas, u: float, z: float) -> float:
    return math.hypot(cv.cam.X(u, z), z)


def wall_run(cv: Canvas, u: float, y0: float, y1: float, z1: float, z2: float, color: RGB,
             side: int, refl: float = 1.0, top: RGB | None = None) -> None:
    """A long low wall (barrier, guardrail, fence) in pieces, skipping the scene's gaps."""
    z = max(z1, ZNEAR)
    while z < z2:
        zn = min(z2, z * 1.3 + 3.0)
        if not cv.in_gap((z + zn) / 2, side, margin=(zn - z) / 2):
            pts = geom.wall(cv.cam, u, y0, y1, z, zn)
            c = cv.col(color, (z + zn) / 2, cv.cam.X(u, z), refl)
            prims = [("p", pts, c)]
            if top is not None:
                prims.append(("p", geom.wall(cv.cam, u, y1 - (y1 - y0) * 0.25, y1, z, zn),
                              cv.col(top, (z + zn) / 2, cv.cam.X(u, z), refl)))
            cv.item(dist(cv, u, zn), prims)
        z = zn


def posts(cv: Canvas, u: float, height: float, z1: float, z2: float, step: float, color: RGB,
          width: float = 0.15, side: int = 0, zmax: float = 60.0) -> None:
    z = z1
    while z < min(z2, zmax):
        if z > 1.0 and not cv.in_gap(z, side):
            pts = geom.face(cv.cam, u - width / 2, u + width / 2, 0.0, height, z)
            cv.item(dist(cv, u, z), [("p", pts, cv.col(color, z, cv.cam.X(u, z)))])
        z += step


def tree(cv: Canvas, u: float, z: float, size: float, conifer: bool = False) -> None:
    if z < 4.0:  # a crown filling half the frame would hide the scene
        return
    cam = cv.cam
    x = cam.X(u, z)
    trunk = cv.col((88, 66, 46), z, x)
    green = cv.col((46 + int(size * 3), 92, 42) if not conifer else (34, 72, 44), z, x)
    prims = [("p", geom.face(cam, u - 0.06 * size, u + 0.06 * size, 0.0, size * 0.55, z), trunk)]
    if conifer:
        prims.append(("p", geom.quad(cam, [(u - size * 0.45, size * 0.25, z), (u + size * 0.45, size * 0.25, z),
                                           (u, size * 1.35, z)]), green))
    else:
        cxy = cam.pt(u, size * 0.85, z)
        r = cam.f * size * 0.42 / z
        prims.append(("e", (cxy[0] - r, cxy[1] - r * 1.05, cxy[0] + r, cxy[1] + r * 1.05), green))
    cv.item(dist(cv, u, z), prims)
    cast(cv, u, z, size, size * 0.4)


def pole(cv: Canvas, u: float, z: float, height: float, color: RGB = (110, 110, 115), width: float = 0.14,
         y0: float = 0.0) -> list:
    return [("p", geom.face(cv.cam, u - width / 2, u + width / 2, y0, height, z),
             cv.col(color, z, cv.cam.X(u, z)))]


def lamp(cv: Canvas, u: float, z: float, reach: float, height: float = 8.0) -> None:
    """Street lamp: pole with an arm reaching ``reach`` metres over the road; lit after dusk."""
    if z < 6.0:
        return
    cam = cv.cam
    grey = cv.col((120, 122, 128), z, cam.X(u, z))
    prims = pole(cv, u, z, height, width=0.2)
    head_u = u + reach
    prims.append(("l", [cam.pt(u, height, z), cam.pt(head_u, height, z)], grey, max(1, int(cam.f * 0.16 / z))))
    hx, hy = cam.pt(head_u, height - 0.2, z)
    r = max(1.0, cam.f * 0.35 / z)
    if cv.look.lamps_on:
        prims.append(("e", (hx - r, hy - r * 0.6, hx + r, hy + r * 0.6), cv.look.emit((255, 226, 160), z)))
        cv.glow(hx, hy, r * 2.4, (255, 205, 130), z)
        # Pool of light on the road under the lamp, as an ellipse of ground points.
        pts = [cam.pt(head_u + 5.5 * math.cos(a), 0.0, z + 6.0 * math.sin(a)) for a in _ANGLES]
        if min(z + 6.0 * math.sin(a) for a in _ANGLES) > ZNEAR:
            cv.light_pool(pts, 150 if cv.look.light == "night" else 45)
    else:
        prims.append(("e", (hx - r, hy - r * 0.5, hx + r, hy + r * 0.5), cv.col((90, 90, 96), z)))
    cv.item(dist(cv, u, z), prims)
    cast(cv, u, z, height, 0.1)


_ANGLES = [i * math.pi / 5 for i in range(10)]


def car(cv: Canvas, u: float, z: float, color: RGB, facing: int = 1, length: float = 4.4,
        parked: bool = False) -> None:
    """A car seen from behind (facing=1, same way as us) or from the front (facing=-1)."""
    if z < 5.5:
        return
    cam = cv.cam
    x = cam.X(u, z)
    w, hw = 1.8, 0.9
    body = cv.col(color, z, x)
    dark = cv.col((28, 30, 36), z, x)
    glass = cv.col((40, 48, 60), z, x, 1.5)
    prims = []
    sh = geom.band(cam, u - hw - 0.1, u + hw + 0.1, z, z + length)
    if sh:
        prims.append(("p", sh, cv.col((20, 20, 22), z, x)))
    # Side of the car, visible when it is off to one side of the camera.
    if abs(x) > 1.2 and z + length > ZNEAR:
        su = u - hw if x > 0 else u + hw
        side = geom.wall(cam, su, 0.25, 1.0, z, z + length)
        prims.append(("p", side, cv.col(tuple(int(v * 0.8) for v in color), z, x)))
    prims.append(("p", geom.face(cam, u - hw, u + hw, 0.3, 1.0, z), body))
    prims.append(("p", geom.face(cam, u - hw * 0.8, u + hw * 0.8, 1.0, 1.45, z + 0.6), glass))
    prims.append(("p", geom.face(cam, u - hw, u - hw + 0.35, 0.0, 0.35, z), dark))
    prims.append(("p", geom.face(cam, u + hw - 0.35, u + hw, 0.0, 0.35, z), dark))
    lit = cv.look.lamps_on and not parked
    lc = TAIL if facing > 0 else HEAD
    for lu in (u - hw + 0.22, u + hw - 0.22):
        lx, ly = cam.pt(lu, 0.8, z)
        r = max(0.8, cam.f * 0.13 / z)
        c = cv.look.emit(lc, z) if lit else cv.col((180, 30, 25) if facing > 0 else (220, 220, 210), z, x, 2.0)
        prims.append(("e", (lx - r * 1.4, ly - r, lx + r * 1.4, ly + r), c))
        if lit:
            cv.glow(lx, ly, r * (2.2 if facing > 0 else 3.2), lc, z)
    cv.item(dist(cv, u, z) + 0.01, prims, kind=VEHICLE)
    del w


def building(cv: Canvas, u: float, side: int, z1: float, z2: float, height: float, color: RGB,
             depth: float, front: bool, wseed: int = 0) -> None:
    """City block face along the road (floors as window bands), with its front end if exposed."""
    if z2 < ZNEAR:
        return
    cam = cv.cam
    zm = max(z1, ZNEAR)
    x = cam.X(u, (zm + z2) / 2)
    zc = (zm + z2) / 2
    prims = [("p", geom.wall(cam, u, 0.0, height, zm, z2), cv.col(color, zc, x))]
    glass = cv.col((48, 58, 74), zc, x, 1.3)
    shop = cv.col((36, 40, 46), zc, x)
    prims.append(("p", geom.wall(cam, u, 0.2, 2.8, zm, z2), shop))
    floors = min(int((height - 3.6) / 3.3), 11)
    lit = cv.look.light != "day"
    rnd = random.Random(wseed)  # the same windows are lit in every frame of a clip
    for i in range(floors):
        y = 3.6 + i * 3.3 + 0.9
        prims.append(("p", geom.wall(cam, u, y, y + 1.4, zm, z2), glass))
        if lit and rnd.random() < 0.5:
            a = rnd.uniform(zm, z2)
            b = min(z2, a + rnd.uniform(2, 6))
            prims.append(("p", geom.wall(cam, u, y + 0.1, y + 1.3, a, b), cv.look.emit((236, 200, 120), a)))
    if front and z1 > ZNEAR:
        u2 = u + side * depth
        prims.insert(0, ("p", geom.face(cam, min(u, u2), max(u, u2), 0.0, height, z1),
                         cv.col(tuple(int(v * 0.72) for v in color), z1, x)))
    cv.item(dist(cv, u, z2), prims)
    wall_shadow(cv, u, zm, z2, height)


def house(cv: Canvas, u: float, side: int, z1: float, z2: float, wall_h: float, roof_h: float,
          depth: float, color: RGB, roof: RGB) -> None:
    """Detached house: the long wall facing the street, its roof slope and gable end."""
    if z2 < ZNEAR:
        return
    cam = cv.cam
    zm = max(z1, ZNEAR)
    zc = (zm + z2) / 2
    x = cam.X(u, zc)
    ridge_u = u + side * depth / 2
    prims = []
    if z1 > ZNEAR:
        gable = geom.quad(cam, [(u, 0.0, z1), (u + side * depth, 0.0, z1), (u + side * depth, wall_h, z1),
                                (ridge_u, wall_h + roof_h, z1), (u, wall_h, z1)])
        prims.append(("p", gable, cv.col(tuple(int(v * 0.8) for v in color), z1, x)))
    prims.append(("p", geom.wall(cam, u, 0.0, wall_h, zm, z2), cv.col(color, zc, x)))
    zs = [zm, z2]
    top = [cam.pt(u, wall_h, z) for z in zs] + [cam.pt(ridge_u, wall_h + roof_h, z) for z in reversed(zs)]
    prims.append(("p", top, cv.col(roof, zc, x)))
    win = cv.col((44, 52, 66), zc, x, 1.4)
    lit = cv.look.light != "day"
    n = 3
    for i in range(n):
        a = z1 + (z2 - z1) * (i + 0.3) / n
        b = a + (z2 - z1) * 0.35 / n
        if a > ZNEAR:
            c = cv.look.emit((240, 196, 110), a) if (lit and (i + int(z1)) % 2 == 0) else win
            prims.append(("p", geom.wall(cam, u, wall_h * 0.35, wall_h * 0.75, a, b), c))
    cv.item(dist(cv, u, z2), prims)
    wall_shadow(cv, u, zm, z2, wall_h + roof_h * 0.5)
