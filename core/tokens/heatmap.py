"""Heatmaps of patch scores over a frame, with kept tokens outlined (PIL only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.models import SceneModel
from core.models.scene_model import ImageLike, to_pil
from core.tokens.select import Selection, select_images

# Viridis anchor colours: perceptually ordered, readable for colour-blind viewers.
_VIRIDIS = np.array(
    [(68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142),
     (31, 158, 137), (53, 183, 121), (110, 206, 88), (181, 222, 43), (253, 231, 37)], dtype=np.float32
)
OUTLINE = (255, 255, 255)
BAR_WIDTH = 64  # colour bar margin added to the right of the frame


def colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to uint8 RGB (viridis)."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0, 1) * (len(_VIRIDIS) - 1)
    lo = np.floor(v).astype(int)
    hi = np.minimum(lo + 1, len(_VIRIDIS) - 1)
    t = (v - lo)[..., None]
    return (_VIRIDIS[lo] * (1 - t) + _VIRIDIS[hi] * t).round().astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has a single bitmap size
        return ImageFont.load_default()


def _colour_bar(height: int, vmin: float, vmax: float) -> Image.Image:
    bar = Image.new("RGB", (BAR_WIDTH, height), (255, 255, 255))
    top, bottom, x0, x1 = 8, max(height - 8, 9), 6, 20
    ramp = np.linspace(1, 0, bottom - top)[:, None].repeat(x1 - x0, axis=1)
    bar.paste(Image.fromarray(colormap(ramp)), (x0, top))
    draw = ImageDraw.Draw(bar)
    font = _font(10)
    for frac in (0.0, 0.5, 1.0):
        y = bottom - frac * (bottom - top - 1)
        draw.line([(x1, y), (x1 + 3, y)], fill=(0, 0, 0))
        draw.text((x1 + 8, y), f"{vmin + frac * (vmax - vmin):.2f}", fill=(0, 0, 0), font=font, anchor="lm")
    return bar


def heatmap_image(
    frame: ImageLike,
    selection: Selection,
    alpha: float = 0.5,
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
    grid_lines: bool = True,
    dim_pruned: float = 0.35,
    title: str | None = None,
) -> Image.Image:
    """The frame with the selection's scores (bilinear-upsampled) blended in as a colormap, the patch
    grid drawn faintly, pruned patches dimmed by ``dim_pruned`` and the kept region outlined.

    Size: the frame's (W, H), plus ``BAR_WIDTH`` columns on the right when ``colorbar``. The grid is
    placed on ``selection.box`` (the part of the frame the model saw), else over the whole frame.
    """
    base = to_pil(frame)
    w, h = base.size
    rows, cols = selection.grid
    x0, y0, x1, y1 = selection.box or (0.0, 0.0, float(w), float(h))
    scores = selection.score_map().astype(np.float32)
    lo = float(scores.min()) if vmin is None else vmin
    hi = float(scores.max()) if vmax is None else vmax
    norm = (scores - lo) / (hi - lo) if hi > lo else np.full_like(scores, 0.5)

    # Upsample on the grid's own box, then paste it at the box's place (crops stay aligned).
    bw, bh = max(1, round(x1 - x0)), max(1, round(y1 - y0))
    heat = np.asarray(Image.fromarray(norm.astype(np.float32), mode="F").resize((bw, bh), Image.BILINEAR))
    layer = np.zeros((h, w), np.float32)
    cover = np.zeros((h, w), bool)
    ox, oy = round(x0), round(y0)
    sx, sy = max(0, -ox), max(0, -oy)
    ex, ey = min(bw, w - ox), min(bh, h - oy)
    layer[oy + sy : oy + ey, ox + sx : ox + ex] = heat[sy:ey, sx:ex]
    cover[oy + sy : oy + ey, ox + sx : ox + ex] = True

    rgb = np.asarray(base, dtype=np.float32)
    blended = np.where(cover[..., None], (1 - alpha) * rgb + alpha * colormap(layer), rgb)

    xs = np.linspace(x0, x1, cols + 1)
    ys = np.linspace(y0, y1, rows + 1)
    kept = selection.mask_map()
    if dim_pruned > 0:
        for r in range(rows):
            for c in range(cols):
                if not kept[r, c]:
                    sl = (slice(max(0, round(ys[r])), round(ys[r + 1])), slice(max(0, round(xs[c])), round(xs[c + 1])))
                    blended[sl] *= 1 - dim_pruned
    out = Image.fromarray(blended.clip(0, 255).astype(np.uint8))

    draw = ImageDraw.Draw(out, "RGBA")
    if grid_lines:
        for x in xs:
            draw.line([(x, y0), (x, y1)], fill=(255, 255, 255, 60))
        for y in ys:
            draw.line([(x0, y), (x1, y)], fill=(255, 255, 255, 60))
    # Outline the kept region's boundary only: edges between two kept patches stay open.
    width = max(1, round(min(w, h) / 120))
    for r in range(rows):
        for c in range(cols):
            if not kept[r, c]:
                continue
            left, top, right, bottom = xs[c], ys[r], xs[c + 1] - 1, ys[r + 1] - 1
            if r == 0 or not kept[r - 1, c]:
                draw.line([(left, top), (right, top)], fill=OUTLINE, width=width)
            if r == rows - 1 or not kept[r + 1, c]:
                draw.line([(left, bottom), (right, bottom)], fill=OUTLINE, width=width)
            if c == 0 or not kept[r, c - 1]:
                draw.line([(left, top), (left, bottom)], fill=OUTLINE, width=width)
            if c == cols - 1 or not kept[r, c + 1]:
                draw.line([(right, top), (right, bottom)], fill=OUTLINE, width=width)
    if title:
        font = _font(12)
        draw.rectangle(draw.textbbox((4, 4), title, font=font), fill=(0, 0, 0, 160))
        draw.text((4, 4), title, fill=(255, 255, 255), font=font)

    if not colorbar:
        return out
    canvas = Image.new("RGB", (w + BAR_WIDTH, h), (255, 255, 255))
    canvas.paste(out, (0, 0))
    canvas.paste(_colour_bar(h, lo, hi), (w, 0))
    return canvas


def heatmap_frames(
    frames: Sequence[ImageLike],
    selections: Sequence[Selection],
    shared_scale: bool = True,
    **kwargs: object,
) -> list[Image.Image]:
    """Heatmaps for a clip's frames; ``shared_scale`` puts every frame on one colour scale so that
    scores compare across time."""
    if len(frames) != len(selections):
        raise ValueError(f"{len(frames)} frames but {len(selections)} selections")
    if shared_scale and selections:
        kwargs.setdefault("vmin", float(min(s.scores.min() for s in selections)))
        kwargs.setdefault("vmax", float(max(s.scores.max() for s in selections)))
    return [heatmap_image(f, s, **kwargs) for f, s in zip(frames, selections, strict=True)]


def clip_heatmaps(
    model: SceneModel,
    frames: Sequence[ImageLike],
    query: str | None = None,
    keep_ratio: float = 0.25,
    rule: str = "pooled",
    method: str = "raw",
    shared_scale: bool = True,
    **kwargs: object,
) -> list[Image.Image]:
    """Select tokens on every frame (query-aware, or query-free saliency without a query) and draw
    each frame's heatmap."""
    sels = select_images(model, frames, query, keep_ratio, rule=rule, method=method)
    return heatmap_frames(frames, sels, shared_scale, **kwargs)
