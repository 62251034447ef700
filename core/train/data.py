"""Training data: preprocessed pixels (cached in memory) paired with schema captions."""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from PIL import Image
from tqdm import tqdm

from core.data import Dataset
from core.images import open_image
from core.schema import UNKNOWN, Schema


def load_pixels(
    dataset: Dataset, preprocess: Callable[[Image.Image], torch.Tensor], workers: int = 2,
    progress: bool = True,
) -> torch.Tensor:
    """Decode and preprocess every frame once into a float16 tensor (N,3,H,W).

    Training revisits each frame every epoch; decoding once keeps the 2 CPU cores on the model.
    """
    paths = [dataset.abspath(p) for p in dataset.frames["path"]]

    def one(p):  # noqa: ANN001, ANN202
        return preprocess(open_image(p)).to(torch.float16)  # size-checked, one-line errors

    with ThreadPoolExecutor(max_workers=workers) as pool:
        items = list(tqdm(pool.map(one, paths), total=len(paths), desc="decode", disable=not progress))
    return torch.stack(items)


def label_codes(dataset: Dataset, schema: Schema) -> torch.Tensor:
    """(N, A) value indices per frame and attribute; -1 for unknown (never agrees with anything)."""
    codes = torch.full((len(dataset), len(schema.attributes)), -1, dtype=torch.long)
    for a, attr in enumerate(schema.attributes):
        index = {v: i for i, v in enumerate(attr.value_names)}
        for i, v in enumerate(dataset.frames[attr.name].astype(str)):
            codes[i, a] = index.get(v, -1)
    codes[codes < 0] = -2 - torch.arange(int((codes < 0).sum()))  # distinct: unknowns never match
    return codes


def epoch_subset_captions(dataset: Dataset, schema: Schema, seed: int, epoch: int) -> tuple[list[str], torch.Tensor]:
    """Captions that each name a random subset of the attributes, and which ones they name.

    A caption of one attribute uses that attribute's prompt templates, so zero-shot prompts are
    in-distribution; longer ones are the compressed comma form. Pure function of (seed, epoch).
    """
    rng = random.Random(f"subset:{seed}:{epoch}")
    attrs = schema.attributes
    mentions = torch.zeros((len(dataset), len(attrs)), dtype=torch.bool)
    captions = []
    for i in range(len(dataset)):
        labels = dataset.labels(i)
        known = [a for a in range(len(attrs)) if labels[attrs[a].name] != UNKNOWN]
        if not known:
            raise ValueError(f"{dataset.frames['path'].iloc[i]}: no known attribute to caption")
        chosen = rng.sample(known, rng.randint(1, len(known)))
        mentions[i, chosen] = True
        phrases = [rng.choice(attrs[a].value(labels[attrs[a].name]).phrases) for a in chosen]
        if len(chosen) == 1:
            captions.append(rng.choice(attrs[chosen[0]].templates).format(phrases[0]))
        else:
            captions.append(", ".join(phrases))
    return captions, mentions


def epoch_captions(dataset: Dataset, schema: Schema, seed: int, epoch: int, paraphrase: bool = True) -> list[str]:
    """One caption per frame for this epoch; a pure function of (seed, epoch) so resumes match."""
    rng = random.Random(f"{seed}:{epoch}")
    return [
        schema.caption(dataset.labels(i), rng if paraphrase else None) for i in range(len(dataset))
    ]
