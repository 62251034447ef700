"""Encode an image from the class token plus a chosen subset of its patch tokens.

Selection happens where ``patch_dropout`` sits in ``VisionTransformer.forward`` (after the
positional embedding, before ``ln_pre``), so each kept token keeps its position; the transformer's
cost then falls roughly in proportion to the tokens dropped.

Its own module because both patch scoring (``select.occlusion_scores`` encodes with one patch left
out) and the pruned embedding (``pruned``, which picks patches with ``select``) need it: kept in
``pruned``, the two modules imported each other.
"""

from __future__ import annotations

import torch

from core.models import SceneModel
from core.tokens.features import pool_project, token_embeddings, vision_tower


def encode_kept(
    visual: torch.nn.Module, pixels: torch.Tensor, keep_indices: torch.Tensor, read_in: bool = False,
) -> torch.Tensor:
    """Differentiable core of :func:`encode_pruned` on a ViT tower: L2-normalised (B, D) embeddings
    from the class token + patches ``keep_indices`` (B, k). Training uses it to teach the tower
    to encode from a subset (``core.train.distill``).

    ``read_in`` lets the kept tokens attend to every patch token in the first block before the rest
    are dropped (keys and values from all tokens, queries and MLP only for the kept ones): the
    result equals running block 1 on all tokens and pruning after it, at a fraction of its cost.
    Dropped patches then still inform the embedding, the way LaVida Drive's token recovery lets
    kept tokens attend back to the full frame.
    """
    x = token_embeddings(visual, pixels)
    n = x.shape[1] - 1
    idx = torch.as_tensor(keep_indices, device=x.device).long()
    if idx.ndim != 2 or idx.shape[0] != x.shape[0]:
        raise ValueError(f"keep_indices must be (B={x.shape[0]}, k), got {tuple(idx.shape)}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValueError(f"keep_indices must lie in [0, {n})")
    x = visual.ln_pre(x)  # per token, so selecting after it equals selecting before it
    kept = torch.gather(x[:, 1:], 1, idx[..., None].expand(-1, -1, x.shape[-1]))
    tokens = torch.cat([x[:, :1], kept], dim=1)
    if not read_in:
        return pool_project(visual, visual.transformer(tokens))
    # Blocks take (L, B, D) when the transformer is not batch-first.
    layout = (lambda t: t) if getattr(visual.transformer, "batch_first", True) else (lambda t: t.transpose(0, 1))
    first, *rest = visual.transformer.resblocks
    h, context = layout(tokens), layout(first.ln_1(x))
    h = h + first.ls_1(first.attn(first.ln_1(h), context, context, need_weights=False)[0])
    h = h + first.ls_2(first.mlp(first.ln_2(h)))
    for block in rest:
        h = block(h)
    return pool_project(visual, layout(h))


@torch.no_grad()
def encode_pruned(
    model: SceneModel, pixels: torch.Tensor, keep_indices: torch.Tensor, read_in: bool = False,
) -> torch.Tensor:
    """L2-normalised image embeddings (B, D) from the class token + patches ``keep_indices`` (B, k).

    With every index kept, in order, this equals ``model.clip.encode_image(pixels, normalize=True)``.
    """
    return encode_kept(vision_tower(model), pixels.to(model.device), keep_indices, read_in)
