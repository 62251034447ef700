"""Sky, light, fog, wet sheen, falling rain/snow and sensor noise.

Each weather and each lighting gets its own unmistakable signature, chosen so that they stack
without erasing one another: fog is a distance haze (near things stay crisp, the feature stays
visible), rain is bright streaks plus drops on the windscreen, snow is big round flakes plus white
verges, sunny is a blue sky with a sun (stars and a moon at night) and hard shadows; day, dusk and
night differ in overall level and tint, and night adds a headlight cone and lit street lamps.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]

# (top of the sky, horizon) per lighting and weather.
SKY: dict[str, dict[str, tuple[RGB, RGB]]] = {
    "day": {
        "sunny": ((40, 105, 215), (160, 198, 242)),
        "cloudy": ((138, 143, 152), (188, 191, 198)),
        "rain": ((62, 66, 76), (108, 112, 120)),
        "snow": ((178, 182, 192), (222, 224, 230)),
        "fog": ((206, 208, 210), (206, 208, 210)),
    },
    "dusk": {
        "sunny": ((52, 46, 118), (252, 140, 58)),
        "cloudy": ((88, 78, 98), (158, 122, 112)),
        "rain": ((44, 40, 54), (92, 76, 84)),
        "snow": ((122, 116, 138), (184, 168, 172)),
        "fog": ((160, 140, 142), (164, 144, 140)),
    },
    "night": {
        "sunny": ((3, 5, 22), (16, 24, 56)),
        "cloudy": ((30, 27, 30), (66, 56, 48)),
        "rain": ((12, 12, 16), (30, 30, 36)),
        "snow": ((42, 42, 52), (72, 72, 82)),
        "fog": ((54, 56, 62), (60, 62, 68)),
    },
}
# Light falling on the ground and on objects.
AMBIENT = {
    "day": (1.0, 1.0, 1.0),
    "dusk": (0.86, 0.56, 0.50),
    "night": (0.085, 0.095, 0.13),
}
WEATHER_LEVEL = {
    "day": {"sunny": 1.06, "cloudy": 0.86, "rain": 0.62, "snow": 0.92, "fog": 0.88},
    "dusk": {"sunny": 1.0, "cloudy": 0.76, "rain": 0.6, "snow": 0.86, "fog": 0.82},
    "night": {"sunny": 1.0, "cloudy": 1.25, "rain": 0.95, "snow": 1.45, "fog": 1.3},
}
HEADLIGHT = {"day": 0.0, "dusk": 0.35, "night": 1.0}
HEAD_COLOR = (1.0, 0.95, 0.82)
VISIBILITY = {"sunny": 1600.0, "cloudy": 520.0, "rain": 150.0, "snow": 120.0, "fog": 38.0}
NIGHT_FOG = (50, 52, 58)


@dataclass
class Look:
    sky: str
    ground: str
    light: str
    amb: tuple[float, float, float]
    head: float
    fog_col: tuple[float, float, float]
    vis: float
    top: RGB
    hor: RGB

    @property
    def wet(self) -> bool:
        return self.ground == "wet"

    @property
    def lamps_on(self) -> bool:
        return self.light != "day"

    @property
    def sun_shadows(self) -> bool:
        return self.sky == "sunny" and self.light != "night"

    def fog(self, z: float) -> float:
        return 1.0 - math.exp(-max(z, 0.0) / self.vis)

    def beam(self, x: float, z: float) -> float:
        """Headlight illumination of a point ``x`` metres off-axis at distance ``z``."""
        if z <= 0.8:
            return 0.0
        w = 1.2 + 0.2 * z
        a = abs(x)
        cone = 1.0 if a < w else max(0.0, 1.0 - (a - w) / 2.5)
        return min(0.8, 1.1 * math.exp(-z / 22.0)) * cone

    def shade(self, rgb: RGB, z: float, x: float = 0.0, refl: float = 1.0) -> RGB:
        """Colour of a surface of albedo ``rgb`` at (x, z): ambient + headlights, then fog."""
        hb = self.head * self.beam(x, z) * refl if self.head else 0.0
        f = 1.0 - math.exp(-z / self.vis) if z > 0 else 0.0
        g = 1.0 - f
        a, fc = self.amb, self.fog_col
        r = rgb[0] * (a[0] + hb) * g + fc[0] * f
        gg = rgb[1] * (a[1] + hb * 0.95) * g + fc[1] * f
        b = rgb[2] * (a[2] + hb * 0.82) * g + fc[2] * f
        return (int(r) if r < 255 else 255, int(gg) if gg < 255 else 255, int(b) if b < 255 else 255)

    def emit(self, rgb: RGB, z: float) -> RGB:
        """A light source seen through fog (not lit by anything, only hazed)."""
        f = self.fog(z) * 0.8
        fc = self.fog_col
        return (int(rgb[0] * (1 - f) + fc[0] * f), int(rgb[1] * (1 - f) + fc[1] * f), int(rgb[2] * (1 - f) + fc[2] * f))


def make_look(params: dict, rnd: random.Random) -> Look:
    sky, light = str(params.get("sky", "sunny")), str(params.get("light", "day"))
    top, hor = SKY[light][sky]
    lvl = WEATHER_LEVEL[light][sky] * rnd.uniform(0.94, 1.06)
    amb = tuple(a * lvl for a in AMBIENT[light])
    if sky == "sunny" and light == "day":
        amb = (amb[0] * 1.04, amb[1], amb[2] * 0.93)
    elif sky == "rain":
        amb = (amb[0] * 0.94, amb[1] * 0.97, amb[2] * 1.05)
    vis = VISIBILITY[sky] * (rnd.uniform(0.8, 1.25) if sky == "fog" else 1.0)
    fog_col = NIGHT_FOG if (light == "night" and sky == "fog") else hor
    jitter = rnd.uniform(-6, 6)
    top = tuple(int(max(0, min(255, c + jitter))) for c in top)
    return Look(sky, str(params.get("ground", "dry")), light, amb, HEADLIGHT[light],
                tuple(float(c) for c in fog_col), vis, top, hor)  # type: ignore[arg-type]


# ---- sky ----------------------------------------------------------------------------------
def paint_sky(width: int, height: int, yh: float, look: Look, rnd: random.Random) -> Image.Image:
    top = np.array(look.top, np.float32)
    hor = np.array(look.hor, np.float32)
    t = np.clip(np.arange(height, dtype=np.float32) / max(yh, 1.0), 0.0, 1.0) ** 0.7
    col = top[None, :] * (1.0 - t[:, None]) + hor[None, :] * t[:, None]
    arr = np.ascontiguousarray(np.broadcast_to(col.astype(np.uint8)[:, None, :], (height, width, 3)))
    if look.sky == "sunny" and look.light == "night":
        _stars(arr, yh, rnd)
    img = Image.fromarray(arr)
    d = ImageDraw.Draw(img)
    s = width / 320.0
    if look.sky == "sunny":
        if look.light == "night":
            x, y, r = rnd.uniform(0.1, 0.9) * width, rnd.uniform(0.15, 0.5) * yh, 7 * s
            d.ellipse((x - r * 2.2, y - r * 2.2, x + r * 2.2, y + r * 2.2), fill=(28, 34, 62))
            d.ellipse((x - r, y - r, x + r, y + r), fill=(236, 236, 214))
        else:
            dusk = look.light == "dusk"
            x = rnd.uniform(0.05, 0.95) * width
            y = yh - rnd.uniform(0.05, 0.2) * yh if dusk else rnd.uniform(0.12, 0.55) * yh
            r = 9 * s
            halo = (255, 190, 110) if dusk else (226, 236, 250)
            core = (255, 236, 170) if dusk else (255, 255, 244)
            d.ellipse((x - r * 2.6, y - r * 2.6, x + r * 2.6, y + r * 2.6), fill=halo)
            d.ellipse((x - r, y - r, x + r, y + r), fill=core)
    elif look.sky in ("cloudy", "rain", "snow"):
        _clouds(d, width, yh, look, rnd)
    return img


def _stars(arr: np.ndarray, yh: float, rnd: random.Random) -> None:
    h, w = arr.shape[:2]
    n = int(w * yh / 260)
    g = np.random.default_rng(rnd.getrandbits(32))
    ys = g.integers(0, max(2, int(yh * 0.85)), n)
    xs = g.integers(0, w - 1, n)
    v = g.integers(150, 255, n).astype(np.uint8)[:, None]
    arr[ys, xs] = v
    big = n // 4  # 2x2 stars so they survive downscaling
    arr[ys[:big] + 1, xs[:big]] = v[:big]
    arr[ys[:big], xs[:big] + 1] = v[:big]
    arr[ys[:big] + 1, xs[:big] + 1] = v[:big]


def _clouds(d: ImageDraw.ImageDraw, width: int, yh: float, look: Look, rnd: random.Random) -> None:
    top, hor = look.top, look.hor
    for _ in range(9):
        y = rnd.uniform(-0.1, 0.75) * yh
        x = rnd.uniform(-0.1, 1.1) * width
        rw, rh = rnd.uniform(0.12, 0.35) * width, rnd.uniform(0.06, 0.16) * yh
        k = y / max(yh, 1)
        base = [top[i] * (1 - k) + hor[i] * k for i in range(3)]
        delta = rnd.uniform(-22, 22)
        c = tuple(int(max(0, min(255, v + delta))) for v in base)
        d.ellipse((x - rw, y - rh, x + rw, y + rh), fill=c)


# ---- passes over pixels -------------------------------------------------------------------
def ground_pass(img: Image.Image, cv) -> Image.Image:  # noqa: ANN001 - Canvas (import cycle)
    """Light, shadows, wet sheen and fog on the ground rows, as one multiply-add where possible."""
    cam, lk = cv.cam, cv.look
    h, w = cam.height, cam.width
    y0 = min(h, int(math.ceil(cam.yh)))
    if y0 >= h:
        return img
    full = np.asarray(img)
    g = full[y0:].astype(np.float32)
    rows = np.arange(y0, h, dtype=np.float32) + 0.5 - cam.yh
    z = (cam.f * cam.h) / rows
    fog = (1.0 - np.exp(-z / lk.vis)) if lk.vis < 2000 else np.zeros_like(z)
    keep = (1.0 - fog)[:, None, None]
    amb = np.array(lk.amb, np.float32)
    lum = None
    if lk.head:
        xs = np.abs(np.arange(w, dtype=np.float32) - cam.cx)
        x = xs[None, :] * (z / cam.f)[:, None]
        cone = np.clip(1.0 - (x - (1.2 + 0.2 * z)[:, None]) * 0.4, 0.0, 1.0)
        lum = np.minimum(0.8, 1.1 * np.exp(-z / 22.0))[:, None] * cone * lk.head
    if cv.pool is not None:
        p = np.asarray(cv.pool)[y0:].astype(np.float32) * (1.0 / 255.0)
        lum = p if lum is None else lum + p
    if lum is None:
        mult = amb[None, None, :]
    else:
        mult = amb + lum[..., None] * np.array(HEAD_COLOR, np.float32)
    if cv.shade is not None:
        mult = mult * (1.0 - np.asarray(cv.shade)[y0:].astype(np.float32) * (0.58 / 255.0))[..., None]
    base = (fog[:, None] * np.array(lk.fog_col, np.float32))[:, None, :]
    if cv.wet is not None:
        out = g * mult
        src = np.clip((2.0 * cam.yh - np.arange(y0, h)).astype(np.int64), 0, h - 1)
        # Grazing angles mirror best: the sheen is strongest toward the horizon.
        k = (0.62 - 0.35 * np.clip(rows / (h - cam.yh), 0, 1)).astype(np.float32)
        wm = np.asarray(cv.wet)[y0:].astype(np.float32) * (1.0 / 255.0) * k[:, None]
        out += (full[src].astype(np.float32) * 0.95 - out) * wm[..., None]
        out = out * keep + base
    else:
        out = g * (mult * keep) + base
    np.clip(out, 0, 255, out=out)
    img.paste(Image.fromarray(out.astype(np.uint8)), (0, y0))
    return img


@lru_cache(maxsize=8)
def _bank(width: int, height: int, kind: str) -> np.ndarray:
    """Pre-rendered overlay 2x the frame, cropped at random per frame (drawing is the slow part)."""
    g = random.Random(f"{kind}-{width}x{height}")
    w2, h2 = width * 2, height * 2
    s = width / 320.0
    if kind == "noise":
        rng = np.random.default_rng(7)
        fine = rng.normal(0.0, 1.0, (h2, w2)).astype(np.float32)
        coarse = rng.normal(0.0, 1.0, (h2 // 8 + 1, w2 // 8 + 1)).astype(np.float32)
        coarse = np.asarray(
            Image.fromarray(((coarse + 4) * 32).clip(0, 255).astype(np.uint8)).resize((w2, h2), Image.BILINEAR),
            np.float32,
        ) / 32.0 - 4.0
        return fine + 0.7 * coarse
    img = Image.new("L", (w2, h2), 0)
    d = ImageDraw.Draw(img)
    if kind == "rain":
        for _ in range(int(520 * s * s)):
            x, y = g.uniform(0, w2), g.uniform(0, h2)
            ln = g.uniform(9, 26) * s
            dx = ln * 0.16
            d.line((x, y, x + dx, y + ln), fill=int(g.uniform(110, 230)), width=max(1, int(round(s))))
        for _ in range(int(60 * s * s)):  # drops on the windscreen
            x, y, r = g.uniform(0, w2), g.uniform(0, h2), g.uniform(1.5, 4.5) * s
            d.ellipse((x - r, y - r, x + r, y + r), fill=int(g.uniform(70, 130)))
            d.ellipse((x - r * 0.4, y - r * 0.6, x + r * 0.2, y - r * 0.1), fill=200)
    else:  # snow: flakes of every size, big ones near the lens
        for _ in range(int(900 * s * s)):
            x, y = g.uniform(0, w2), g.uniform(0, h2)
            r = (g.random() ** 3) * 3.2 * s + 0.9 * s
            d.ellipse((x - r, y - r, x + r, y + r), fill=int(g.uniform(170, 255)))
    return np.asarray(img, np.float32) * (1.0 / 255.0)


def _crop(bank: np.ndarray, width: int, height: int, rng: random.Random) -> np.ndarray:
    oy, ox = rng.randrange(height), rng.randrange(width)
    return bank[oy:oy + height, ox:ox + width]


def finish(img: Image.Image, cv, rng: random.Random) -> np.ndarray:  # noqa: ANN001 - Canvas
    """Lights' halos, falling rain or snow, and sensor noise; returns the final uint8 array."""
    cam, lk = cv.cam, cv.look
    w, h = cam.width, cam.height
    a = np.asarray(img).astype(np.float32)
    if cv.glows:
        gl = Image.new("RGB", (w, h), (0, 0, 0))
        d = ImageDraw.Draw(gl)
        boost = {"day": 0.25, "dusk": 0.7, "night": 1.0}[lk.light]
        fogboost = 1.4 if lk.sky == "fog" else 1.0
        cap = 0.025 * w
        for x, y, r, c, z in cv.glows:
            r = min(r, cap)
            rr = r * (2.2 if lk.sky == "fog" else 1.9)
            cc = tuple(int(v * 0.4 * boost * fogboost) for v in c)
            d.ellipse((x - rr, y - rr, x + rr, y + rr), fill=cc)
            c2 = tuple(int(v * 0.8 * boost) for v in c)
            d.ellipse((x - r, y - r, x + r, y + r), fill=c2)
            if lk.wet and z > 0.5:
                yg = cam.yh + cam.f * cam.h / z
                if yg > y:
                    c3 = tuple(int(v * 0.5 * boost) for v in c)
                    d.ellipse((x - r * 0.9, yg, x + r * 0.9, yg + (yg - y) * 1.1), fill=c3)
        a += np.asarray(gl, np.float32)
    if lk.light == "night" and lk.sky == "fog":
        a += _scatter(w, h, int(cam.yh), int(cam.cx))[..., None] * np.array((70, 68, 60), np.float32)
    if lk.sky == "rain":
        ov = _crop(_bank(w, h, "rain"), w, h, rng)
        lvl = {"day": 95.0, "dusk": 80.0, "night": 70.0}[lk.light]
        a += ov[..., None] * lvl
    elif lk.sky == "snow":
        ov = _crop(_bank(w, h, "snow"), w, h, rng)
        flake = {"day": 250.0, "dusk": 215.0, "night": 175.0}[lk.light]
        a += (flake - a) * ov[..., None]
    sigma = rng.uniform(2.5, 5.5) if lk.light != "night" else rng.uniform(2.0, 4.0)
    a += _crop(_bank(w, h, "noise"), w, h, rng)[..., None] * sigma
    return np.clip(a, 0, 255).astype(np.uint8)


@lru_cache(maxsize=64)
def _scatter(w: int, h: int, yh: int, cx: int) -> np.ndarray:
    """Headlight glow scattered by fog: a soft bright mound in front of the car."""
    ys = (np.arange(h, dtype=np.float32) - (yh + 0.45 * (h - yh))) / (0.55 * h)
    xs = (np.arange(w, dtype=np.float32) - cx) / (0.45 * w)
    return np.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2)).astype(np.float32)
