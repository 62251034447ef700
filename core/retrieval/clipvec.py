"""Clip vectors from frame vectors, and the fine-grained teacher that scores captions against frames.

- ``meanp``: CLIP4Clip's mean pooling (meanP), the average of a clip's unit frame vectors.
- ``AFA``: TeachCLIP's Attentional Frame-Feature Aggregation, Linear -> ReLU -> Linear giving each
  frame a logit, softmax over the clip's frames giving its weight; the clip vector is the weighted
  average. The weights do not depend on the text, so a clip costs one vector, like meanP. The last
  layer starts at zero, so an untrained AFA is meanP exactly.
- ``teacher_scores``: X-CLIP-style fine-grained alignment, every caption against every frame of
  a clip, pooled by a softmax over the frames (temperature ``tau``) or by the maximum. Costs one
  dot product per frame per caption, which is what the student avoids.

Clips of different lengths travel padded: frames ``(C, F, d)`` with a boolean ``mask`` ``(C, F)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

TEACHER_POOLS = ("softmax", "max")


def pad_clips(vectors: np.ndarray, clip_ids: Sequence[str], frame_index: Sequence[int],
              order: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Frame vectors grouped by clip in ``order`` and sorted by frame index: (C, F, d) and mask (C, F)."""
    rows: dict[str, list[tuple[int, int]]] = {c: [] for c in order}
    for r, (c, i) in enumerate(zip(clip_ids, frame_index, strict=True)):
        if c in rows:
            rows[c].append((int(i), r))
    empty = [c for c, r in rows.items() if not r]
    if empty:
        raise ValueError(f"clip {empty[0]!r} has no frame vectors")
    f = max(len(r) for r in rows.values())
    out = np.zeros((len(order), f, vectors.shape[1]), np.float32)
    mask = np.zeros((len(order), f), bool)
    for k, c in enumerate(order):
        idx = [r for _, r in sorted(rows[c])]
        out[k, : len(idx)] = vectors[idx]
        mask[k, : len(idx)] = True
    return out, mask


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def meanp(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(C, d) unit clip vectors: the mean of each clip's frames (padding left out)."""
    m = mask.to(frames.dtype).unsqueeze(-1)
    return _unit((frames * m).sum(1) / m.sum(1).clamp_min(1.0))


class AFA(nn.Module):
    """Attentional Frame-Feature Aggregation: per-frame weights from Linear, ReLU, Linear, softmax."""

    def __init__(self, dim: int, hidden: int = 128):
        super().__init__()
        self.dim, self.hidden = int(dim), int(hidden)
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.score[2].weight)  # uniform weights at the start: meanP
        nn.init.zeros_(self.score[2].bias)

    def weights(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(C, F) frame weights, each clip's summing to 1 over its real frames (0 on padding)."""
        logits = self.score(frames).squeeze(-1).masked_fill(~mask, float("-inf"))
        return torch.softmax(logits, dim=1)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(C, d) unit clip vectors and their (C, F) frame weights."""
        w = self.weights(frames, mask)
        return _unit((w.unsqueeze(-1) * frames).sum(1)), w


def frame_text_sims(texts: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """(T, C, F) cosine similarity of every caption with every frame (unit vectors in)."""
    return torch.einsum("td,cfd->tcf", texts, frames)


def teacher_scores(texts: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor, pool: str = "softmax",
                   tau: float = 0.01) -> torch.Tensor:
    """(T, C) fine-grained caption-clip scores: frame-text similarities pooled over each clip's
    frames by a softmax at temperature ``tau`` (weights sum of s * softmax(s / tau)) or the max."""
    if pool not in TEACHER_POOLS:
        raise ValueError(f"teacher pool must be one of {TEACHER_POOLS}, got {pool!r}")
    s = frame_text_sims(texts, frames)
    m = mask.unsqueeze(0).expand_as(s)
    if pool == "max":
        return s.masked_fill(~m, float("-inf")).amax(-1)
    w = torch.softmax((s / tau).masked_fill(~m, float("-inf")), dim=-1)
    return (w * s.masked_fill(~m, 0.0)).sum(-1)


__all__ = ["AFA", "TEACHER_POOLS", "frame_text_sims", "meanp", "pad_clips", "teacher_scores"]
