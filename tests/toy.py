"""Test helpers: a toy dataset and a toy model small enough for fine-tuning tests and job smoke runs.

The images encode two attributes (weather as the background colour, road type as a stripe) so a
few contrastive steps have something to learn; the model is an open_clip ViT a few layers deep.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image

from core.data import write_manifest
from core.schema import Schema, default_schema
from core.train.checkpoint import save_model_dir

TOY_MODEL_CFG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": [112, 192], "layers": 2, "width": 64, "head_width": 32,
                   "mlp_ratio": 2, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def write_toy_dataset(root: str | Path, n: int = 24, seed: int = 0, schema: Schema | None = None,
                      size: tuple[int, int] = (96, 56)) -> Path:
    """``n`` frames with valid random labels; splits cycle train, train, train, train, val, test."""
    schema = schema or default_schema()
    root = Path(root)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    attrs = schema.attributes
    colour_attr, stripe_attr = attrs[3 % len(attrs)], attrs[2 % len(attrs)]
    rows = []
    for i in range(n):
        labels = schema.sample(rng)
        c = colour_attr.index(labels[colour_attr.name]) / max(1, len(colour_attr.values) - 1)
        s = stripe_attr.index(labels[stripe_attr.name]) / max(1, len(stripe_attr.values) - 1)
        img = np.zeros((size[1], size[0], 3), np.uint8)
        img[...] = (int(255 * c), 80, int(255 * (1 - c)))
        band = int(s * (size[1] - 8))
        img[band : band + 8] = 255
        img = np.clip(img.astype(int) + np.random.default_rng(seed * 1000 + i).integers(-8, 9, img.shape),
                      0, 255).astype(np.uint8)
        rel = f"frames/{i:04d}.png"
        Image.fromarray(img).save(root / rel)
        split = ("train", "train", "train", "train", "val", "test")[i % 6]
        rows.append({"path": rel, "clip_id": f"c{i}", "split": split, **labels})
    write_manifest(root, rows, schema)
    return root


def write_toy_model(out: str | Path, seed: int = 0) -> Path:
    """A randomly initialised toy CLIP saved as a ``file:`` model folder."""
    import core.models  # noqa: F401  (registers the model configs folder with open_clip)

    torch.manual_seed(seed)
    clip = open_clip.CLIP(**TOY_MODEL_CFG)
    return save_model_dir(clip, TOY_MODEL_CFG, out, preprocess_cfg={"resize_mode": "squash"})
