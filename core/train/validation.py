"""Validation during training: the val split's k-NN vote macro F1, voted by the train split
embedded with the current weights and scored by the project's one scoring path
(``core.scoring.score_queries``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.data import Dataset
from core.schema import Schema


@torch.inference_mode()
def embed_pixels(clip: torch.nn.Module, pixels: torch.Tensor, batch_size: int = 128,
                 device: str = "cpu") -> np.ndarray:
    """L2-normalised image embeddings of preprocessed pixels, in float32 for stable votes."""
    was_training = clip.training
    clip.eval()
    out = []
    for i in range(0, pixels.shape[0], batch_size):
        x = pixels[i : i + batch_size].to(device, torch.float32)
        out.append(clip.encode_image(x, normalize=True).float().cpu().numpy())
    clip.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


@dataclass
class Validator:
    """k-NN vote macro F1 on the val split, with the index rebuilt from the current weights."""

    train: Dataset
    val: Dataset
    train_pixels: torch.Tensor
    val_pixels: torch.Tensor
    schema: Schema
    k: int = 5
    device: str = "cpu"

    def report(self, clip: torch.nn.Module, keep_ratio: float = 1.0) -> dict:
        """``keep_ratio`` < 1 encodes the val queries from that share of evenly spread patch tokens
        (the index keeps all tokens): the accuracy token-pruned encoding costs."""
        from core.index import IndexStore
        from core.scoring import score_queries
        from core.train.distill import embed_spread

        store = IndexStore.from_embeddings(
            embed_pixels(clip, self.train_pixels, device=self.device), self.train.frames,
            model="finetune-validation", dataset=self.train.root, split="train", schema=self.schema,
        )
        queries = (embed_pixels(clip, self.val_pixels, device=self.device) if keep_ratio >= 1
                   else embed_spread(clip, self.val_pixels, keep_ratio, device=self.device).numpy())
        truth = [self.val.labels(i) for i in range(len(self.val))]
        return score_queries(store, queries, truth, k=self.k, schema=self.schema)

    def f1(self, clip: torch.nn.Module) -> float:
        return float(self.report(clip)["macro_f1"])
