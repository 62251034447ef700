"""Pinhole camera over a flat road: world metres to pixels.

World frame: Z forward from the camera, X right, Y up from the road. The road follows a
constant-curvature centre line, so a lateral road coordinate ``u`` (metres from the left edge of
the carriageway) at distance ``Z`` sits at ``X = u - u_cam + curve * Z**2``. A constant-curvature
road looks the same from every point along it, which is what lets a clip move the camera by just
shifting Z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Clamping Z ranges to [ZNEAR, ZFAR] is all the clipping the renderer needs: every polygon is a
# band in (u, Z) or a wall along Z, and Z = ZNEAR already projects far below the frame.
ZNEAR = 0.4
ZFAR = 420.0


@dataclass
class Camera:
    width: int
    height: int
    f: float  # focal length in pixels
    h: float  # eye height above the road (m)
    cx: float  # vanishing-point column (yaw)
    yh: float  # horizon row (pitch)
    u_cam: float = 0.0
    curve: float = 0.0

    @property
    def ground_rows(self) -> float:
        return self.height - self.yh

    @property
    def z_bottom(self) -> float:
        """Distance of the ground seen at the bottom edge of the frame."""
        return self.f * self.h / self.ground_rows

    def z_at(self, d: float) -> float:
        """Ground distance seen ``d`` of the way from the horizon (0) to the bottom edge (1)."""
        return self.f * self.h / (d * self.ground_rows)

    def X(self, u: float, z: float) -> float:
        return u - self.u_cam + self.curve * z * z

    def pt(self, u: float, y: float, z: float) -> tuple[float, float]:
        """Pixel of road coordinate ``u`` at height ``y`` and distance ``z``."""
        x = u - self.u_cam + self.curve * z * z
        return (self.cx + self.f * x / z, self.yh + self.f * (self.h - y) / z)

    def scale(self, z: float) -> float:
        """Pixels per metre at distance ``z``."""
        return self.f / z


def zsteps(z1: float, z2: float, curved: bool) -> list[float]:
    """Distances at which to sample an edge: two suffice on a straight road."""
    z1 = max(z1, ZNEAR)
    z2 = min(z2, ZFAR)
    if z2 <= z1:
        return []
    ratio = z2 / z1
    n = min(12, round(math.log(ratio) / 0.58)) if curved else 0
    if n <= 1:
        return [z1, z2]
    r = ratio ** (1.0 / n)
    return [z1 * r**i for i in range(n + 1)]
