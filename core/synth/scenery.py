"""Roadside population per road type, and other traffic.

Objects are laid out along the road from a random stream of their own, at fixed road positions
``s``; a frame shows them at ``z = s - travel``. The layout therefore stays put while a clip's
camera moves, and does not depend on what else the frame draws.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from core.synth import props, signs
from core.synth.canvas import Canvas
from core.synth.road import Road

BUILDING_COLORS = ((150, 82, 62), (172, 166, 156), (192, 172, 132), (112, 130, 150), (84, 84, 92),
                   (210, 206, 198), (128, 96, 80))
WALL_COLORS = ((222, 212, 186), (200, 184, 158), (172, 190, 206), (226, 222, 212), (192, 150, 120),
               (214, 204, 152))
ROOF_COLORS = ((92, 60, 50), (70, 70, 76), (140, 70, 52), (60, 66, 82))
S0, S_END = -40.0, 230.0  # roadside is laid out from s0; drawn up to S_END ahead of the camera


def _line(road: Road, side: int, n: int) -> float:
    """Lateral u at the outer edge of the first ``n`` roadside bands of ``side``."""
    bands = road.left if side < 0 else road.right
    w = sum(b[0] for b in bands[:n])
    return -w if side < 0 else road.width + w


Stream = Callable[[str], random.Random]


def populate(cv: Canvas, road: Road, srnd: random.Random, travel: float, busy: bool) -> None:
    """Queue the roadside of ``road`` and the traffic on it."""
    base = srnd.getrandbits(32)

    # One stream per row of objects, and every object draws the same numbers whether it is drawn
    # or not, so what is ahead never depends on how far the camera has travelled.
    def stream(tag: str) -> random.Random:
        return random.Random(f"{base}:{tag}")

    {"highway": _highway, "ramp": _ramp, "rural": _rural, "local": _local, "urban": _urban}[road.kind](
        cv, road, stream, travel)
    _traffic(cv, road, stream("traffic"), busy)
    _signs(cv, road, stream("signs"), travel)


def _each(r: random.Random, travel: float, lo: float, hi: float):  # noqa: ANN202
    """Yield road positions as distances from the camera, spaced by uniform(lo, hi)."""
    s = S0 + r.uniform(0, hi)
    while s - travel < S_END:
        yield s - travel
        s += r.uniform(lo, hi)


def _highway(cv: Canvas, road: Road, stream: Stream, travel: float) -> None:
    ub = _line(road, -1, 1) - 0.6
    props.wall_run(cv, ub, 0.0, 0.9, 0.5, 300.0, (178, 175, 168), -1, top=(200, 198, 192))
    ug = _line(road, 1, 1) + 0.4
    props.wall_run(cv, ug, 0.45, 0.8, 0.5, 300.0, (168, 174, 180), 1, refl=1.6)
    props.posts(cv, ug, 0.6, 2.0 - travel % 4.0, 300.0, 4.0, (120, 120, 126), side=1)
    r = stream("layout")
    lamps, wall, wall_u = r.random() < 0.7, r.random() < 0.3, ug + r.uniform(6, 12)
    if wall:
        props.wall_run(cv, wall_u, 0.0, 4.0, 0.5, 300.0, (150, 146, 138), 1)
    r = stream("lamps")
    for z in _each(r, travel, 36.0, 60.0):
        if lamps and not cv.in_gap(z, -1, 3.0):
            props.lamp(cv, ub + 0.3, z, 2.2, 9.0)
    r = stream("trees")
    for z in _each(r, travel, 12.0, 40.0):
        u, size, conifer = ug + r.uniform(4, 22), r.uniform(5, 9), r.random() < 0.4
        if not wall and not cv.in_gap(z, 1, 4.0):
            props.tree(cv, u, z, size, conifer)
    # Oncoming carriageway beyond the median.
    opp = _line(road, -1, 4) - road.lane_w * 0.5
    r = stream("oncoming")
    for z in _each(r, travel, 25.0, 90.0):
        u, color = opp - r.uniform(0, road.lane_w), r.choice(props.CAR_COLORS)
        if 8.0 < z < 120 and not cv.in_gap(z, -1, 4.0):
            props.car(cv, u, z, color, facing=-1)


def _ramp(cv: Canvas, road: Road, stream: Stream, travel: float) -> None:
    for side in (-1, 1):
        u = _line(road, side, 1) + side * 0.3
        props.wall_run(cv, u, 0.45, 0.8, 0.5, 300.0, (168, 174, 180), side, refl=1.6)
        props.posts(cv, u, 0.6, 2.0 - travel % 4.0, 300.0, 4.0, (120, 120, 126), side=side)
    r = stream("trees")
    for z in _each(r, travel, 10.0, 35.0):
        side, off, size, conifer = r.choice((-1, 1)), r.uniform(5, 20), r.uniform(4, 8), r.random() < 0.5
        if not cv.in_gap(z, side, 4.0):
            props.tree(cv, _line(road, side, 1) + side * off, z, size, conifer)


def _rural(cv: Canvas, road: Road, stream: Stream, travel: float) -> None:
    r = stream("layout")
    fence_side, pole_side = r.choice((-1, 1, 0)), r.choice((-1, 1))
    for side in (-1, 1):
        edge = _line(road, side, 2)
        if fence_side in (0, side):
            props.posts(cv, edge + side * 0.3, 1.1, 1.0 - travel % 3.5, 300.0, 3.5, (110, 84, 60), side=side)
            props.wall_run(cv, edge + side * 0.3, 0.85, 0.95, 0.5, 60.0, (96, 80, 62), side)
    r = stream("poles")
    u = _line(road, pole_side, 1) + pole_side * 1.2
    for z in _each(r, travel, 34.0, 42.0):
        if not cv.in_gap(z, pole_side, 2.0) and z > 1.0:
            cv.item(props.dist(cv, u, z), props.pole(cv, u, z, 9.0, (104, 84, 64), 0.28)
                    + props.pole(cv, u - 1.0, z, 8.6, (104, 84, 64), 0.2, 8.4))
    r = stream("trees")
    for z in _each(r, travel, 6.0, 28.0):
        side, off, size, conifer = r.choice((-1, 1)), r.uniform(1.5, 14), r.uniform(5, 10), r.random() < 0.25
        if not cv.in_gap(z, side, 5.0):
            props.tree(cv, _line(road, side, 2) + side * off, z, size, conifer)


def _local(cv: Canvas, road: Road, stream: Stream, travel: float) -> None:
    for side in (-1, 1):
        r = stream(f"layout{side}")
        setback = _line(road, side, 3) + side * r.uniform(4, 9)
        strip = _line(road, side, 1) + side * 0.8
        r = stream(f"trees{side}")
        for z in _each(r, travel, 14.0, 30.0):
            size = r.uniform(5, 8)
            if not cv.in_gap(z, side, 3.0):
                props.tree(cv, strip, z, size)
        r = stream(f"houses{side}")
        for z in _each(r, travel, 16.0, 26.0):
            ln = r.uniform(9, 14)
            wall_h, roof_h, depth = r.uniform(3.0, 5.8), r.uniform(1.8, 3.2), r.uniform(8, 11)
            col, roof = r.choice(WALL_COLORS), r.choice(ROOF_COLORS)
            if not cv.in_gap(z, side, 4.0) and not cv.in_gap(z + ln, side, 4.0):
                props.house(cv, setback, side, z, z + ln, wall_h, roof_h, depth, col, roof)
        park_u = 1.0 if side < 0 else road.width - 1.0
        r = stream(f"parked{side}")
        for z in _each(r, travel, 6.5, 22.0):
            color, there, facing = r.choice(props.CAR_COLORS), r.random() < 0.6, r.choice((1, -1))
            if z > 8.0 and there and not cv.in_gap(z, side, 6.0) and not cv.kept_clear(z):
                props.car(cv, park_u, z, color, facing=1 if side > 0 else facing, parked=True)
    r = stream("lamps")
    lit, side = r.random() < 0.5, r.choice((-1, 1))
    if lit:
        for z in _each(r, travel, 30.0, 45.0):
            if not cv.in_gap(z, side, 3.0):
                props.lamp(cv, _line(road, side, 1) + side * 0.5, z, -side * 1.6, 7.0)


def _urban(cv: Canvas, road: Road, stream: Stream, travel: float) -> None:
    for side in (-1, 1):
        line = _line(road, side, 2)
        r = stream(f"blocks{side}")
        s = S0
        prev_gap = True
        while s - travel < S_END:
            ln, height, color = r.uniform(10, 28), r.uniform(9, 38), r.choice(BUILDING_COLORS)
            wide, gap_s, gap_w = r.random() < 0.2, r.uniform(0, 2.5), r.uniform(5, 10)
            wseed = r.getrandbits(32)
            gap = gap_w if wide else gap_s
            z1, z2 = s - travel, s + ln - travel
            if z2 > 0.4 and not any(cv.in_gap(z, side) for z in (z1, (z1 + z2) / 2, z2)):
                props.building(cv, line, side, z1, z2, height, color, 14.0, prev_gap, wseed)
                prev_gap = gap > 1.0
            else:
                prev_gap = True
            s += ln + gap
        curb = _line(road, side, 1) + side * 0.6
        r = stream(f"lamps{side}")
        for z in _each(r, travel, 24.0, 36.0):
            if not cv.in_gap(z, side, 3.0):
                props.lamp(cv, curb, z, -side * 2.0, 8.0)
        r = stream(f"trees{side}")
        trees = r.random() < 0.5
        for z in _each(r, travel, 10.0, 24.0):
            size = r.uniform(4.5, 7)
            if trees and not cv.in_gap(z, side, 3.0):
                props.tree(cv, curb + side * 0.6, z, size)
    r = stream("parked")
    parked = r.random() < 0.4
    for z in _each(r, travel, 7.0, 30.0):
        color = r.choice(props.CAR_COLORS)
        if parked and z > 8.0 and not cv.in_gap(z, 1, 6.0) and not cv.kept_clear(z):
            props.car(cv, road.width - 1.0, z, color, parked=True)


def _traffic(cv: Canvas, road: Road, r: random.Random, busy: bool) -> None:
    """Cars ahead; kept out of the camera's lane near a place so they never hide it."""
    lanes = road.lanes
    same = [i for i in range(len(lanes) - 1) if lanes[i] >= road.same_dir_lo - 0.01]
    if road.kind == "local":  # its outer "lanes" are parking strips
        same = [2]
    for _ in range(r.choice((0, 1, 1, 2, 3))):
        i, z, du, color = r.choice(same), r.uniform(14, 80), r.uniform(-0.3, 0.3), r.choice(props.CAR_COLORS)
        u = (lanes[i] + lanes[i + 1]) / 2
        ego = abs(u - (road.ego_lo + road.ego_hi) / 2) < 0.1
        if busy and ego and z < 60:
            z += 40
        props.car(cv, u + du, z, color)
    if road.two_way and r.random() < 0.7 and not cv.no_oncoming:
        opp = [1] if road.kind == "local" else [i for i in range(len(lanes) - 1) if i not in same]
        for _ in range(r.choice((1, 2))):
            i, z, color = r.choice(opp), r.uniform(12, 90), r.choice(props.CAR_COLORS)
            props.car(cv, (lanes[i] + lanes[i + 1]) / 2, z, color, facing=-1)


def _signs(cv: Canvas, road: Road, r: random.Random, travel: float) -> None:
    """Ordinary rectangular signs (speed limits, directions): nuisance that mimics no place sign."""
    u = road.width + (road.right[0][0] + 1.0 if road.kind in ("highway", "ramp") else 1.2)
    for z in _each(r, travel, 60.0, 160.0):
        white = r.random() < 0.5
        if cv.in_gap(z, 1, 4.0) or z < 2.0:
            continue
        if white:
            signs.sign(cv, u, z, 2.4, 0.4, None, (246, 246, 244), (20, 20, 20),
                       [((-0.35, 0.25), (0.35, 0.25), 0.12), ((-0.3, -0.2), (0.3, -0.2), 0.3)], rect=(0.75, 1.0))
        else:
            # Brown, not blue or green: those colours belong to crossing and exit signs.
            signs.sign(cv, u, z, 2.6, 0.5, None, (112, 72, 40), (240, 240, 240),
                       [((-0.5, 0.1), (0.5, 0.1), 0.15)], (240, 240, 240), rect=(1.4, 0.8))
