"""Where the model's patch grid lies on an original frame.

The preprocess (open_clip's resize + centre crop, or a squash resize, depending on the model's
config) decides which frame pixels each patch sees. Rather than re-deriving each transform's
arithmetic, these helpers push probe images through the model's own preprocess, so they stay
right for any geometric preprocess.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from core.models import SceneModel
from core.tokens.features import vision_tower


def _calibration(model: SceneModel, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocessed all-black and all-white frames: undoes the Normalize step whatever it is."""
    black = model.preprocess(Image.new("RGB", size, (0, 0, 0)))
    white = model.preprocess(Image.new("RGB", size, (255, 255, 255)))
    return black, white


def preprocessed_unit(model: SceneModel, image: Image.Image) -> np.ndarray:
    """The model input for ``image`` as (3, H, W) values in [0, 1] (normalisation undone)."""
    black, white = _calibration(model, image.size)
    t = (model.preprocess(image.convert("RGB")) - black) / (white - black)
    return t.clamp(0, 1).numpy()


_BOXES: dict[tuple[int, int, int], tuple[object, tuple[float, float, float, float]]] = {}


def _probe_box(model: SceneModel, size: tuple[int, int]) -> tuple[float, float, float, float]:
    w, h = size
    xs = np.round(np.arange(w) * 255.0 / max(w - 1, 1))
    ys = np.round(np.arange(h) * 255.0 / max(h - 1, 1))
    probe = np.zeros((h, w, 3), np.uint8)
    probe[..., 0] = xs[None, :]
    probe[..., 1] = ys[:, None]
    unit = preprocessed_unit(model, Image.fromarray(probe))
    _, in_h, in_w = unit.shape

    def fit(profile: np.ndarray, extent: int, n_in: int) -> tuple[float, float]:
        # Frame coordinate (pixel centre = i + 0.5) seen at each input pixel centre; the edges are
        # skipped because interpolation there mixes in clamped border values.
        coord = profile * (extent - 1) + 0.5
        u = np.arange(n_in) + 0.5
        keep = slice(2, n_in - 2) if n_in > 8 else slice(None)
        a, b = np.polyfit(u[keep], coord[keep], 1)
        return float(b), float(a * n_in + b)

    x0, x1 = fit(unit[0].mean(axis=0), w, in_w)
    y0, y1 = fit(unit[1].mean(axis=1), h, in_h)
    return x0, y0, x1, y1


def input_box(model: SceneModel, frame_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) in frame pixels of the region the model input covers, for a frame
    of ``frame_size`` = (width, height). A squash resize gives the whole frame; a centre crop less."""
    key = (id(model.preprocess), int(frame_size[0]), int(frame_size[1]))
    hit = _BOXES.get(key)
    if hit is None or hit[0] is not model.preprocess:  # the id may belong to a collected preprocess
        if len(_BOXES) > 256:
            _BOXES.clear()
        hit = _BOXES[key] = (model.preprocess, _probe_box(model, (key[1], key[2])))
    return hit[1]


def patch_boxes(model: SceneModel, frame_size: tuple[int, int]) -> np.ndarray:
    """(N, 4) frame-pixel boxes (left, top, right, bottom) of the patches, row-major."""
    x0, y0, x1, y1 = input_box(model, frame_size)
    rows, cols = vision_tower(model).grid_size
    xs = np.linspace(x0, x1, cols + 1)
    ys = np.linspace(y0, y1, rows + 1)
    return np.array([(xs[c], ys[r], xs[c + 1], ys[r + 1]) for r in range(rows) for c in range(cols)])


def patch_coverage(model: SceneModel, mask: np.ndarray) -> np.ndarray:
    """Fraction (N,) of each patch's input pixels that fall on ``mask`` (H x W bool of the frame).

    The mask goes through the model's own preprocess, so a patch covers exactly what it sees.
    """
    img = Image.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8) * 255).convert("RGB")
    unit = preprocessed_unit(model, img)[0]
    rows, cols = vision_tower(model).grid_size
    ph, pw = unit.shape[0] // rows, unit.shape[1] // cols
    cells = unit[: rows * ph, : cols * pw].reshape(rows, ph, cols, pw)
    return cells.mean(axis=(1, 3)).reshape(-1).astype(np.float32)
