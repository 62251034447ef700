"""Target footage for adaptation: unlabelled frames from images, clips and folders of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from core.schema import Schema


def target_frames(sources: Sequence[str | Path], fps: float = 2.0,
                  max_frames: int = 1000) -> tuple[list[Image.Image], list[str]]:
    """Unlabelled frames from images, clips and folders of them (a folder's entries by name), with
    each frame's source file name (a clip's frames all carry the clip's name).

    Images open through ``core.images.open_image`` and clips decode through
    ``core.video.sample_frames`` (their size, duration and frame limits apply); any other file
    in a folder is skipped, a named file of another type is refused.
    """
    from core.images import open_image
    from core.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, sample_frames

    out: list[Image.Image] = []
    names: list[str] = []

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
        names.extend([p.name] * (len(out) - len(names)))

    for source in sources:
        p = Path(source)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such target file or folder")
        for f in sorted(q for q in p.iterdir() if q.is_file()) if p.is_dir() else [p]:
            if len(out) >= max_frames:
                return out, names
            take(f, named=not p.is_dir())
    if len(out) < 2:
        raise ValueError(f"{', '.join(map(str, sources))}: {len(out)} target frames found; adaptation needs "
                         "at least 2 images or clip frames")
    return out[:max_frames], names[:max_frames]


def target_images(sources: Sequence[str | Path], fps: float = 2.0, max_frames: int = 1000) -> list[Image.Image]:
    """The frames of :func:`target_frames` without their names."""
    return target_frames(sources, fps, max_frames)[0]


def read_frame_labels(path: str | Path, schema: Schema) -> dict[str, dict[str, str]]:
    """Hand labels of real frames: a CSV with a ``file`` column (an image's or a clip's file name)
    and one column per schema attribute (empty: not judged); other columns (how each label was
    judged) are kept out. Returns file name -> {attribute: value}; a bad row fails naming it."""
    import csv

    path = Path(path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "file" not in rows[0]:
        raise ValueError(f"{path}: a labels table needs a 'file' column and one row per frame")
    out: dict[str, dict[str, str]] = {}
    for i, row in enumerate(rows, start=2):  # row 1 is the header
        labels = {a: (row.get(a) or "").strip() for a in schema.names if (row.get(a) or "").strip()}
        for a, v in labels.items():
            if v not in schema[a].value_names:
                raise ValueError(f"{path} row {i}: {a} {v!r} is not one of {schema[a].value_names}")
        if not row["file"].strip() or row["file"] in out:
            raise ValueError(f"{path} row {i}: file {row['file']!r} is empty or listed twice")
        out[row["file"].strip()] = labels
    return out


def preprocess_all(images: Sequence[Image.Image], preprocess: Callable) -> torch.Tensor:
    """Preprocessed pixels of ``images`` as one float16 tensor (half the memory of float32)."""
    return torch.stack([preprocess(im).to(torch.float16) for im in images])
