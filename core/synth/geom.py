"""Screen polygons of the few world shapes the renderer uses (bands on the road, walls, boards)."""

from __future__ import annotations

from collections.abc import Callable

from core.synth.camera import ZFAR, ZNEAR, Camera, zsteps

Pts = list[tuple[float, float]]


def band(cam: Camera, u1: float, u2: float, z1: float, z2: float) -> Pts:
    """Flat strip of road coordinates [u1, u2] x [z1, z2] on the ground."""
    zs = zsteps(z1, z2, cam.curve != 0.0)
    if not zs:
        return []
    pt = cam.pt
    return [pt(u1, 0.0, z) for z in zs] + [pt(u2, 0.0, z) for z in reversed(zs)]


def band_fn(cam: Camera, left: Callable[[float], float], right: Callable[[float], float],
            z1: float, z2: float, n: int = 8) -> Pts:
    """Flat strip whose edges vary with distance (tapers, gores, lane shifts)."""
    z1, z2 = max(z1, ZNEAR), min(z2, ZFAR)
    if z2 <= z1:
        return []
    r = (z2 / z1) ** (1.0 / n)
    zs = [z1 * r**i for i in range(n + 1)]
    pt = cam.pt
    return [pt(left(z), 0.0, z) for z in zs] + [pt(right(z), 0.0, z) for z in reversed(zs)]


def wall(cam: Camera, u: float, y0: float, y1: float, z1: float, z2: float) -> Pts:
    """Upright wall along the road at lateral ``u`` from height y0 to y1."""
    zs = zsteps(z1, z2, cam.curve != 0.0)
    if not zs:
        return []
    pt = cam.pt
    return [pt(u, y1, z) for z in zs] + [pt(u, y0, z) for z in reversed(zs)]


def face(cam: Camera, u1: float, u2: float, y0: float, y1: float, z: float) -> Pts:
    """Upright rectangle facing the camera at distance ``z``."""
    if z < ZNEAR:
        return []
    pt = cam.pt
    return [pt(u1, y0, z), pt(u2, y0, z), pt(u2, y1, z), pt(u1, y1, z)]


def ceiling(cam: Camera, u1: float, u2: float, y: float, z1: float, z2: float) -> Pts:
    """Horizontal plane at height ``y`` (the underside of a bridge deck)."""
    zs = zsteps(z1, z2, cam.curve != 0.0)
    if not zs:
        return []
    pt = cam.pt
    return [pt(u1, y, z) for z in zs] + [pt(u2, y, z) for z in reversed(zs)]


def quad(cam: Camera, corners: list[tuple[float, float, float]]) -> Pts:
    """Any flat polygon given by (u, y, z) corners, all in front of the camera."""
    if any(c[2] < ZNEAR for c in corners):
        return []
    pt = cam.pt
    return [pt(u, y, z) for u, y, z in corners]


def shape(cam: Camera, u: float, y: float, z: float, outline: list[tuple[float, float]], size: float) -> Pts:
    """A flat sign shape (unit outline scaled to ``size`` metres) facing the camera."""
    x0, y0 = cam.pt(u, y, z)
    s = cam.f * size / z
    return [(x0 + ox * s, y0 - oy * s) for ox, oy in outline]


def ground_poly(cam: Camera, corners: list[tuple[float, float]]) -> Pts:
    """Flat polygon of (u, z) road points, clipped to the part in front of the camera."""
    out: list[tuple[float, float]] = []
    n = len(corners)
    for i in range(n):
        (u1, z1), (u2, z2) = corners[i], corners[(i + 1) % n]
        if z1 >= ZNEAR:
            out.append((u1, z1))
        if (z1 >= ZNEAR) != (z2 >= ZNEAR):
            t = (ZNEAR - z1) / (z2 - z1)
            out.append((u1 + (u2 - u1) * t, ZNEAR))
    return [cam.pt(u, 0.0, z) for u, z in out] if len(out) >= 3 else []
