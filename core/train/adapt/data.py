"""Target footage for adaptation: unlabelled frames from images, clips and folders of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image


def target_images(sources: Sequence[str | Path], fps: float = 2.0, max_frames: int = 1000) -> list[Image.Image]:
    """Unlabelled frames from images, clips and folders of them (a folder's entries by name).

    Images open through ``core.images.open_image`` and clips decode through
    ``core.video.sample_frames`` (their size, duration and frame limits apply); any other file
    in a folder is skipped, a named file of another type is refused.
    """
    from core.images import open_image
    from core.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, sample_frames

    out: list[Image.Image] = []

    def take(p: Path, named: bool) -> None:
        suffix = p.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            out.append(open_image(p))
        elif suffix in VIDEO_SUFFIXES:
            for _, frame in sample_frames(p, fps=fps, max_frames=max_frames - len(out)):
                out.append(Image.fromarray(frame))
        elif named:
            raise ValueError(f"{p}: not an image ({', '.join(IMAGE_SUFFIXES)}) or a clip "
                             f"({', '.join(VIDEO_SUFFIXES)})")

    for source in sources:
        p = Path(source)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such target file or folder")
        for f in sorted(q for q in p.iterdir() if q.is_file()) if p.is_dir() else [p]:
            if len(out) >= max_frames:
                return out
            take(f, named=not p.is_dir())
    if len(out) < 2:
        raise ValueError(f"{', '.join(map(str, sources))}: {len(out)} target frames found; adaptation needs "
                         "at least 2 images or clip frames")
    return out[:max_frames]


def preprocess_all(images: Sequence[Image.Image], preprocess: Callable) -> torch.Tensor:
    """Preprocessed pixels of ``images`` as one float16 tensor (half the memory of float32)."""
    return torch.stack([preprocess(im).to(torch.float16) for im in images])
