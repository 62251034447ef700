"""Token-pruned image encoding: pick the patches to keep (``select``'s scores) and run the ViT on the
class token plus only those (``encode``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from core.models import SceneModel
from core.models.scene_model import ImageLike
from core.tokens.encode import encode_kept, encode_pruned
from core.tokens.features import (
    block_forward,
    pool_project,
    project_tokens,
    text_features,
    token_embeddings,
    vision_tower,
)
from core.tokens.select import MODES, batch_scores, keep_count, random_scores, spread_scores

# encode_kept / encode_pruned live in ``encode``; named here too for their callers (fine-tuning's
# distillation imports encode_kept from this module).
__all__ = ["embed_pruned", "encode_early_pruned", "encode_kept", "encode_pruned", "keep_indices"]


def keep_indices(
    scores: np.ndarray, keep_ratio: float = 0.25, k: int | None = None, coverage: float = 0.0,
    grid: tuple[int, int] | None = None,
) -> torch.Tensor:
    """(B, k) indices of the patches to keep per row of ``scores`` (B, N), in ascending patch order
    (order does not change the result; ascending keeps runs reproducible).

    ``coverage`` in [0, 1] gives that share of the budget to evenly spread patches
    (:func:`spread_scores` over ``grid``) instead of the top scores: relevance-ranked tokens
    cluster, and scene-level attributes need the whole frame.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float32))
    n = scores.shape[1]
    n_keep = keep_count(n, keep_ratio, k)
    n_top = n_keep - int(round(n_keep * min(max(coverage, 0.0), 1.0)))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :n_top]
    if n_top < n_keep:
        spread = spread_scores(grid or (1, n))
        rest = np.tile(spread, (len(scores), 1))
        np.put_along_axis(rest, top, -np.inf, axis=1)  # already kept
        top = np.concatenate([top, np.argsort(-rest, axis=1, kind="stable")[:, : n_keep - n_top]], axis=1)
    return torch.from_numpy(np.sort(top, axis=1).astype(np.int64))


def embed_pruned(
    model: SceneModel,
    images: Sequence[ImageLike] | torch.Tensor,
    keep_ratio: float = 0.25,
    mode: str = "query",
    query: str | None = None,
    seed: int = 0,
    rule: str = "pooled",
    method: str = "raw",
    saliency: str = "cls",
    batch_size: int = 64,
    coverage: float = 0.0,
    background: np.ndarray | None = None,
    read_in: bool = True,
) -> np.ndarray:
    """(n, D) float32 embeddings of ``images`` (PIL/arrays, or preprocessed pixels (n,3,H,W))
    encoded from a ``keep_ratio`` share of their patch tokens, chosen by ``mode``:
    "query" (relevance to ``query``), "saliency" (query-free), "random" (seeded per image) or
    "spread" (evenly over the grid); ``coverage`` mixes in spread patches (see keep_indices);
    ``background`` turns on feature surgery for "query" (see score_patches, occlusion_scores).
    ``read_in`` (default; the bundled model is distilled for it) lets the kept tokens attend to
    every patch in block 1 (see encode_kept); off, the dropped patches are never seen.

    Note the "query" and "saliency" scores come from a full dense pass, so they pay off only when
    that pass is shared (e.g. a heatmap was computed) or scores come from elsewhere; "random" and
    "spread" are the modes that save encoder time end to end.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    n = len(images)
    out = []
    for i in range(0, n, batch_size):
        chunk = images[i : i + batch_size]
        pixels = chunk if isinstance(chunk, torch.Tensor) else model.preprocess_batch(chunk)
        if keep_ratio >= 1.0:
            rows, cols = vision_tower(model).grid_size
            idx = torch.arange(rows * cols).expand(pixels.shape[0], -1)
        else:
            scores = batch_scores(model, pixels, mode, query, rule, method, saliency, seed + i, background)
            idx = keep_indices(scores, keep_ratio, coverage=coverage, grid=tuple(vision_tower(model).grid_size))
        out.append(encode_pruned(model, pixels, idx, read_in).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.embed_dim), np.float32)


@torch.no_grad()
def encode_early_pruned(
    model: SceneModel,
    pixels: torch.Tensor,
    keep_ratio: float = 0.25,
    layer: int = 1,
    mode: str = "saliency",
    query: str | None = None,
    seed: int = 0,
    fuse: bool = True,
) -> torch.Tensor:
    """Prune inside the encoder (EViT, Liang et al. 2022): run the first ``layer`` blocks on every
    token, score patches there, and run the remaining blocks on the class token + the kept ones.

    Scoring at depth costs a fraction of a full pass, unlike :func:`embed_pruned`'s query / saliency
    modes. "saliency" scores by the class token's attention in block ``layer`` (heads averaged);
    "query" by cosine of the block's output tokens (through ``ln_post``/``proj``) to ``query``;
    "random" by a seeded draw. ``fuse`` appends one token, the attention-weighted mean of the pruned
    tokens, so their content is not lost outright (EViT's fusion).
    """
    visual = vision_tower(model)
    blocks = list(visual.transformer.resblocks)
    if not 1 <= layer <= len(blocks):
        raise ValueError(f"layer must be in [1, {len(blocks)}]")
    x = visual.ln_pre(token_embeddings(visual, pixels.to(model.device)))
    for blk in blocks[: layer - 1]:
        x = blk(x)
    x, weights = block_forward(blocks[layer - 1], x)
    cls_attn = weights[:, :, 0, 1:].mean(dim=1)  # (B, N)
    if mode == "saliency":
        scores = cls_attn
    elif mode == "query":
        if not query:
            raise ValueError("mode='query' needs a query")
        text = torch.from_numpy(text_features(model, query)[0]).to(x.device, x.dtype)
        scores = project_tokens(visual, x[:, 1:]) @ text
    elif mode == "random":
        scores = torch.from_numpy(np.stack([random_scores(x.shape[1] - 1, seed + i) for i in range(x.shape[0])]))
    else:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    n = x.shape[1] - 1
    k = keep_count(n, keep_ratio)
    if k < n:
        order = torch.argsort(scores.to(x.device), dim=1, descending=True, stable=True)
        keep, drop = order[:, :k], order[:, k:]
        patches = x[:, 1:]

        def gather(idx: torch.Tensor) -> torch.Tensor:
            return torch.gather(patches, 1, idx[..., None].expand(-1, -1, patches.shape[-1]))

        parts = [x[:, :1], gather(keep)]
        if fuse:
            w = torch.gather(cls_attn, 1, drop)
            w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)
            parts.append((gather(drop) * w[..., None]).sum(dim=1, keepdim=True))
        x = torch.cat(parts, dim=1)
    for blk in blocks[layer:]:
        x = blk(x)
    return pool_project(visual, x)
