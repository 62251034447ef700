"""Embed a dataset with the index's parallel pipeline, without writing an index."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from core.data import Dataset
from core.index.build import encode, load_pixels, prefetch
from core.index.preprocess import fast_preprocess

if TYPE_CHECKING:
    from core.types import SceneModel


def embed_dataset(dataset: Dataset, model: SceneModel, batch_size: int = 64, workers: int = 2,
                  progress: bool = True, bf16: bool = False) -> np.ndarray:
    """(N, d) L2-normalised embeddings of every frame of ``dataset``, in manifest order."""
    n = len(dataset)
    if n == 0:
        return np.zeros((0, model.embed_dim), np.float32)
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    preprocess = fast_preprocess(model)
    batches = prefetch(list(range(len(bounds))), lambda i: load_pixels(dataset, preprocess, *bounds[i]), workers)
    out = []
    with contextlib.closing(batches), tqdm(total=n, unit="img", desc="embedding", disable=not progress) as bar:
        for _, pixels in batches:
            out.append(encode(model, pixels, bf16))
            bar.update(len(out[-1]))
    return np.concatenate(out)
