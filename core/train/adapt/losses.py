"""The adaptation's two granularities and its yardsticks: patch tokens beside the pooled
embedding, DANN's lambda schedule, embeddings, the domain probe and the source-task loss."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from core.train.grl import DomainClassifier
from core.train.loop import AttributeHeads, batch_positives, multi_positive_loss


def encode_with_tokens(visual: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pooled image embedding (B, D), patch tokens (B, T, W)) of an open_clip ViT in one pass."""
    if not hasattr(visual, "output_tokens"):
        raise ValueError(f"adaptation needs a ViT image tower with patch tokens, not {type(visual).__name__}")
    before = visual.output_tokens
    visual.output_tokens = True
    try:
        pooled, tokens = visual(x)
    finally:
        visual.output_tokens = before
    return pooled, tokens


class Adapting(torch.nn.Module):
    """Everything that trains, as one module: one optimizer, one resumable state."""

    def __init__(self, clip: torch.nn.Module, heads: AttributeHeads, embed_dim: int, token_dim: int) -> None:
        super().__init__()
        self.clip = clip
        self.heads = heads
        self.domain_pooled = DomainClassifier(embed_dim)
        self.domain_tokens = DomainClassifier(token_dim)


def dann_lambda(lam: float, progress: float, ramp: bool = True) -> float:
    """DANN's schedule (Ganin et al. 2016): 0 at the start, ``lam`` at the end, so the encoder
    is not pushed around by a classifier that has not learnt anything yet."""
    return lam * (2 / (1 + math.exp(-10 * progress)) - 1) if ramp else lam


@torch.no_grad()
def embed(clip: torch.nn.Module, pixels: torch.Tensor, batch_size: int = 128, device: str = "cpu") -> np.ndarray:
    """L2-normalised image embeddings (numpy) of preprocessed pixels."""
    was = clip.training
    clip.eval()
    out = [torch.nn.functional.normalize(clip.encode_image(pixels[i : i + batch_size].to(device, torch.float32))
                                         .float(), dim=-1).cpu() for i in range(0, len(pixels), batch_size)]
    clip.train(was)
    return torch.cat(out).numpy()


def domain_probe_accuracy(source: np.ndarray, target: np.ndarray, seed: int = 0) -> float:
    """How well a fresh linear classifier tells the two domains apart from the embeddings:
    5-fold cross-validated accuracy of a balanced logistic regression (scikit-learn). 0.5 is
    chance; the adversarial terms aim to bring it there."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x = np.concatenate([source, target])
    y = np.r_[np.zeros(len(source)), np.ones(len(target))]
    folds = StratifiedKFold(n_splits=min(5, len(source), len(target)), shuffle=True, random_state=seed)
    clf = LogisticRegression(max_iter=2000, class_weight="balanced")
    return float(cross_val_score(clf, x, y, cv=folds, scoring="balanced_accuracy").mean())


@torch.no_grad()
def source_task_loss(clip: torch.nn.Module, pixels: torch.Tensor, captions: list[str], mentions: torch.Tensor,
                     codes: torch.Tensor, tokenizer: Callable, batch_size: int = 32, device: str = "cpu") -> float:
    """The multi-positive contrastive loss on source frames (fixed captions, no augmentation), the
    batches in order: the yardstick of "the source task holds"."""
    was = clip.training
    clip.eval()
    losses = []
    for i in range(0, len(pixels) - 1, batch_size):
        j = slice(i, min(i + batch_size, len(pixels)))
        if j.stop - j.start < 2:
            break
        img = torch.nn.functional.normalize(clip.encode_image(pixels[j].to(device, torch.float32)).float(), dim=-1)
        txt = torch.nn.functional.normalize(clip.encode_text(tokenizer(captions[j]).to(device)).float(), dim=-1)
        losses.append(float(multi_positive_loss(img, txt, clip.logit_scale.exp(),
                                                batch_positives(codes[j], mentions[j]))))
    clip.train(was)
    return float(np.mean(losses))
