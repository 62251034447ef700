"""Thread-friendly image preprocessing for the embedding pipeline.

CLIP preprocessing ends in ``ToTensor`` + ``Normalize``: two small torch ops per image. Run from
loader threads, each opens an OpenMP region that competes with the model's own threads; on a
loaded 2-core machine that made preprocessing 5-25x slower than the decode + resize before it.
When a model's transform has that standard shape we run the PIL steps as they are and do the last
two in numpy (single-threaded, GIL released), with the same float32 operations in the same order,
so the pixels are bit-identical to ``model.preprocess``. Anything else falls back to
``model.preprocess``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:
    from core.types import SceneModel

Preprocess = Callable[[Image.Image], np.ndarray | torch.Tensor]


def _split_standard(transform: Any) -> tuple[list[Callable], np.ndarray, np.ndarray] | None:
    """(PIL steps, mean, std) if ``transform`` is Compose([...PIL steps, ToTensor, Normalize])."""
    steps = list(getattr(transform, "transforms", None) or [])
    if len(steps) < 2:
        return None
    to_tensor, norm = steps[-2], steps[-1]
    # MaybeToTensor (open_clip) subclasses torchvision's ToTensor: same conversion.
    if type(to_tensor).__name__ not in ("ToTensor", "MaybeToTensor") or type(norm).__name__ != "Normalize":
        return None
    if getattr(norm, "inplace", False):
        return None
    pil_steps = steps[:-2]
    if any(type(s).__name__ in ("ToTensor", "MaybeToTensor", "Normalize", "PILToTensor", "ToImage")
           for s in pil_steps):
        return None
    mean = np.asarray(norm.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(norm.std, dtype=np.float32).reshape(-1, 1, 1)
    return pil_steps, mean, std


def fast_preprocess(model: SceneModel) -> Preprocess:
    """A per-image preprocess equal to ``model.preprocess`` that avoids torch ops where it can."""
    split = _split_standard(model.preprocess)
    if split is None:
        return model.preprocess
    pil_steps, mean, std = split

    def run(image: Image.Image) -> np.ndarray | torch.Tensor:
        im = image
        for step in pil_steps:
            im = step(im)
        if not isinstance(im, Image.Image) or im.mode != "RGB":  # unusual: let torchvision do it
            return model.preprocess(image)
        # torchvision: to_tensor = permute(HWC->CHW), float32, /255; normalize = (x - mean) / std
        x = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        return (x - mean) / std

    return run


def stack(pixels: list[np.ndarray | torch.Tensor]) -> torch.Tensor:
    """One (B,3,H,W) float tensor from per-image arrays or tensors."""
    if all(isinstance(p, np.ndarray) for p in pixels):
        return torch.from_numpy(np.stack(pixels))
    return torch.stack([torch.as_tensor(p) for p in pixels])
