"""Training data: preprocessed pixels (cached in memory) paired with schema captions."""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from PIL import Image
from tqdm import tqdm

from core.data import Dataset
from core.schema import Schema


def load_pixels(
    dataset: Dataset, preprocess: Callable[[Image.Image], torch.Tensor], workers: int = 2,
    progress: bool = True,
) -> torch.Tensor:
    """Decode and preprocess every frame once into a float16 tensor (N,3,H,W).

    Training revisits each frame every epoch; decoding once keeps the 2 CPU cores on the model.
    """
    paths = [dataset.abspath(p) for p in dataset.frames["path"]]

    def one(p):  # noqa: ANN001, ANN202
        with Image.open(p) as im:
            return preprocess(im.convert("RGB")).to(torch.float16)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        items = list(tqdm(pool.map(one, paths), total=len(paths), desc="decode", disable=not progress))
    return torch.stack(items)


def epoch_captions(dataset: Dataset, schema: Schema, seed: int, epoch: int, paraphrase: bool = True) -> list[str]:
    """One caption per frame for this epoch; a pure function of (seed, epoch) so resumes match."""
    rng = random.Random(f"{seed}:{epoch}")
    return [
        schema.caption(dataset.labels(i), rng if paraphrase else None) for i in range(len(dataset))
    ]
