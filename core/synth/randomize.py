"""Domain randomization (issue 20): vary what a real camera varies, so a model trained on the
synthetic world sees more than one camera's look (Tobin et al. 2017, sim-to-real).

Off by default: a frame rendered without it is bit-identical to the renderer's usual output,
so existing datasets, caches and the bundled assets stay valid. On, it draws from its own random
stream (seeded by the frame's seed), so the scene's layout and labels are unchanged and a
randomized frame is still a pure function of (params, seed, travel):

- camera intrinsics and pitch: focal length, eye height, horizon row and yaw (``jitter_camera``);
- distractor objects: vehicles ahead and roadside clutter that the labels do not depend on;
- textures: low-frequency multiplicative blotches (road patches, stains) and fine grain;
- photometric noise: exposure, contrast, saturation, white balance, gamma, sensor noise;
- lens effects: barrel distortion, vignetting, chromatic aberration;
- blur (defocus or motion) and JPEG artefacts at a random quality.
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from core.synth.camera import Camera

STREAM = 0xD0_5A17  # offsets the randomization stream from the renderer's own streams


def stream(seed: int, travel: float = 0.0, per_frame: bool = False) -> random.Random:
    """The randomization's random stream: per scene (the camera of a clip stays put), or per
    frame (``per_frame``: noise and compression change from frame to frame)."""
    base = (int(seed) & 0xFFFFFFFF) * 104_729 + STREAM
    return random.Random(base + (int(round(travel * 100)) + 1 if per_frame else 0))


def jitter_camera(cam: Camera, rnd: random.Random) -> None:
    """Wider camera intrinsics and mounting than the renderer's usual dashcam."""
    cam.f *= rnd.uniform(0.75, 1.35)  # wide-angle to narrow lenses
    cam.h *= rnd.uniform(0.85, 1.25)  # low cars to vans
    cam.yh += cam.height * rnd.uniform(-0.09, 0.08)  # pitch: horizon higher or lower
    cam.cx += cam.width * rnd.uniform(-0.05, 0.05)  # yaw


def distractors(img: np.ndarray, cam: Camera, rnd: random.Random) -> np.ndarray:
    """Vehicles ahead and roadside boxes on the ground below the horizon, sized by perspective."""
    out = Image.fromarray(img)
    d = ImageDraw.Draw(out)
    h, w = img.shape[:2]
    for _ in range(rnd.randint(0, 4)):
        y = rnd.uniform(cam.yh + 3, min(h - 1, cam.yh + 0.55 * (h - cam.yh)))  # the bottom edge, on the ground
        size = max(3.0, (y - cam.yh) * rnd.uniform(0.9, 1.6))  # nearer (lower) objects are bigger
        x = rnd.uniform(0, w)
        tone = rnd.choice([(30, 30, 34), (200, 200, 205), (150, 20, 20), (40, 60, 120), (110, 110, 105)])
        tone = tuple(int(np.clip(c + rnd.uniform(-25, 25), 0, 255)) for c in tone)
        body = (x - size * 0.6, y - size * 0.75, x + size * 0.6, y)
        d.rectangle(body, fill=tone)
        d.rectangle((body[0] + size * 0.12, body[1] + size * 0.08, body[2] - size * 0.12, body[1] + size * 0.3),
                    fill=tuple(int(c * 0.45) for c in tone))  # a rear window
        if rnd.random() < 0.7:  # tail lights
            r = max(1.0, size * 0.07)
            for lx in (body[0] + size * 0.12, body[2] - size * 0.12):
                d.ellipse((lx - r, y - size * 0.35 - r, lx + r, y - size * 0.35 + r), fill=(220, 30, 30))
    return np.asarray(out)


def _smooth_field(h: int, w: int, cells: int, rnd: random.Random) -> np.ndarray:
    """A smooth random field in [-1, 1]: coarse noise upsampled bilinearly."""
    gen = np.random.default_rng(rnd.getrandbits(32))
    coarse = gen.uniform(-1, 1, (max(2, cells * h // w), cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.BILINEAR))


def texture(a: np.ndarray, rnd: random.Random) -> np.ndarray:
    """Blotchy multiplicative texture (patches, stains, uneven light) plus fine grain."""
    h, w = a.shape[:2]
    gen = np.random.default_rng(rnd.getrandbits(32))
    blotch = 1 + rnd.uniform(0.04, 0.18) * _smooth_field(h, w, rnd.randint(6, 24), rnd)
    grain = 1 + rnd.uniform(0.0, 0.06) * gen.standard_normal((h, w)).astype(np.float32)
    return a * (blotch * grain)[..., None]


def photometric(a: np.ndarray, rnd: random.Random) -> np.ndarray:
    """Exposure, contrast, saturation, white balance and gamma of another camera, then its noise."""
    gen = np.random.default_rng(rnd.getrandbits(32))
    a = a * rnd.uniform(0.75, 1.25)
    mean = a.mean()
    a = (a - mean) * rnd.uniform(0.7, 1.3) + mean
    grey = a.mean(axis=2, keepdims=True)
    a = (a - grey) * rnd.uniform(0.5, 1.4) + grey
    a = a * np.array([rnd.uniform(0.88, 1.12) for _ in range(3)], np.float32)
    a = 255 * (np.clip(a, 0, 255) / 255) ** rnd.uniform(0.8, 1.25)
    return a + gen.normal(0, rnd.uniform(1, 10), a.shape).astype(np.float32)


def lens(a: np.ndarray, rnd: random.Random) -> np.ndarray:
    """Barrel distortion, vignetting and chromatic aberration."""
    h, w = a.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    nx, ny = (xs - w / 2) / (w / 2), (ys - h / 2) / (w / 2)
    r2 = nx * nx + ny * ny
    k = rnd.uniform(-0.03, 0.12)  # mostly barrel, sometimes a little pincushion
    out = np.empty_like(a)
    shift = rnd.uniform(0.0, 0.004)  # red and blue scaled apart: colour fringes at the edges
    for c, s in enumerate((1 + shift, 1.0, 1 - shift)):
        scale = (1 + k * r2) * s
        sx = np.clip(np.rint(w / 2 + nx * scale * (w / 2)), 0, w - 1).astype(int)
        sy = np.clip(np.rint(h / 2 + ny * scale * (w / 2)), 0, h - 1).astype(int)
        out[..., c] = a[sy, sx, c]
    vignette = 1 - rnd.uniform(0.0, 0.45) * np.clip(r2 / 1.3, 0, 1)
    return out * vignette[..., None]


def blur_and_compress(img: Image.Image, rnd: random.Random) -> Image.Image:
    """Defocus or motion blur, then JPEG at a random quality."""
    kind = rnd.random()
    if kind < 0.35:
        img = img.filter(ImageFilter.GaussianBlur(rnd.uniform(0.3, 1.6)))
    elif kind < 0.55:  # horizontal motion blur: the average of a few shifted copies
        n = rnd.randint(2, 5)
        a = np.asarray(img, np.float32)
        img = Image.fromarray(np.mean([np.roll(a, i, axis=1) for i in range(n)], axis=0).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=rnd.randint(20, 90))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def randomize_frame(img: np.ndarray, cam: Camera, scene: random.Random, frame: random.Random) -> np.ndarray:
    """Everything after the camera: distractors, texture, photometry and lens from the ``scene``
    stream (a clip keeps them), blur and JPEG from the ``frame`` stream."""
    a = distractors(img, cam, scene).astype(np.float32)
    a = texture(a, scene)
    a = photometric(a, scene)
    a = lens(a, scene)
    out = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    return np.asarray(blur_and_compress(out, frame))
