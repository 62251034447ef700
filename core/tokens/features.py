"""Dense patch features and per-token text features in CLIP's joint space.

A CLIP ViT is trained only through its class token, so the raw projections of its patch tokens
are noisy for dense text matching. The corrections here (MaskCLIP, SCLIP, value-value attention)
change only the last block's attention; that block is reimplemented from its weights so open_clip
itself stays untouched.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from core.models import SceneModel

Method = Literal["raw", "maskclip", "sclip", "vv"]
METHODS: tuple[str, ...] = ("raw", "maskclip", "sclip", "vv")
_ALIASES = {"csa": "sclip", "clip_surgery": "vv"}
# Last-block recipe per method: (attention kind, keep residual, keep MLP).
_LAST_BLOCK = {
    "raw": ("qk", True, True),
    # MaskCLIP (Zhou et al. 2022): value embeddings through out-proj, q-k attention skipped;
    # its ViT code keeps the residual and the FFN.
    "maskclip": ("identity", True, True),
    # SCLIP (Wang et al. 2023): correlative self-attention softmax(qq^T) + softmax(kk^T).
    "sclip": ("csa", True, True),
    # CLIP Surgery's value-value attention (Li et al. 2023), last block only, FFN skipped as in
    # its new path (no multi-layer dual path, no feature surgery).
    "vv": ("vv", True, False),
}


def canonical_method(method: str) -> str:
    m = _ALIASES.get(method, method)
    if m not in _LAST_BLOCK:
        raise ValueError(f"unknown dense-feature method {method!r}; expected one of {METHODS}")
    return m


def vision_tower(model: SceneModel) -> torch.nn.Module:
    """The ViT image tower; token methods need its patch grid."""
    v = model.clip.visual
    for part in ("conv1", "class_embedding", "positional_embedding", "transformer", "ln_post"):
        if not hasattr(v, part):
            raise TypeError(f"token features need an open_clip VisionTransformer (no {part!r})")
    return v


def token_embeddings(visual: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """(B, 1+N, width): class token + patch tokens with positional embedding, before ln_pre.

    Mirrors ``VisionTransformer._embeds`` up to the point where ``patch_dropout`` sits, so that
    callers can drop or select patch tokens there.
    """
    x = visual.conv1(pixels.to(visual.conv1.weight.dtype))
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1)
    return x + visual.positional_embedding.to(x.dtype)


def _split_heads(block: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    attn = block.attn
    if not isinstance(attn, torch.nn.MultiheadAttention) or attn.in_proj_weight is None:
        raise TypeError("dense corrections need nn.MultiheadAttention blocks with a packed in_proj_weight")
    b, n, c = x.shape
    h = attn.num_heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.reshape(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)  # each (B, heads, L, head_dim)
    return q, k, v


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kind: str) -> torch.Tensor:
    scale = q.shape[-1] ** -0.5
    if kind == "qk":
        return torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1)
    if kind == "csa":
        return torch.softmax(q @ q.transpose(-1, -2) * scale, dim=-1) + \
            torch.softmax(k @ k.transpose(-1, -2) * scale, dim=-1)
    if kind == "vv":
        return torch.softmax(v @ v.transpose(-1, -2) * scale, dim=-1)
    raise ValueError(kind)


def block_forward(
    block: torch.nn.Module,
    x: torch.Tensor,
    attention: str = "qk",
    residual: bool = True,
    mlp: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One open_clip ``ResidualAttentionBlock`` from its weights; also returns the attention
    weights (B, heads, L, L), or None for the identity attention."""
    q, k, v = _split_heads(block, block.ln_1(x))
    if attention == "identity":
        weights, out = None, v
    else:
        weights = _attention(q, k, v, attention)
        out = weights @ v
    out = out.transpose(1, 2).reshape(x.shape)
    out = block.ls_1(block.attn.out_proj(out))
    y = x + out if residual else out
    if mlp:
        y = y + block.ls_2(block.mlp(block.ln_2(y)))
    return y, weights


def project_tokens(visual: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Tokens (..., width) into the joint space: ``ln_post``, ``proj``, L2 norm."""
    x = visual.ln_post(x)
    if visual.proj is not None:
        x = x @ visual.proj
    return F.normalize(x, dim=-1)


def pool_project(visual: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``VisionTransformer._pool`` + ``proj`` + L2 norm for towers without attention pooling."""
    if getattr(visual, "attn_pool", None) is not None:
        raise TypeError("attention-pooled towers are not supported")
    if not getattr(visual, "final_ln_after_pool", False):
        x = visual.ln_post(x)
    pooled = x[:, 1:].mean(dim=1) if visual.pool_type == "avg" else x[:, 0]
    if getattr(visual, "final_ln_after_pool", False):
        pooled = visual.ln_post(pooled)
    if visual.proj is not None:
        pooled = pooled @ visual.proj
    return F.normalize(pooled, dim=-1)


@torch.no_grad()
def dense_forward(
    model: SceneModel, pixels: torch.Tensor, method: str = "raw", need_attention: bool = False
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """One pass giving the image embedding (B, D), patch features (B, N, D) and, on request, every
    block's attention weights (for rollout). The image embedding always comes from the unmodified
    last block: it is the vector that is indexed and searched."""
    visual = vision_tower(model)
    kind, residual, mlp = _LAST_BLOCK[canonical_method(method)]
    x = visual.ln_pre(token_embeddings(visual, pixels.to(model.device)))
    blocks = list(visual.transformer.resblocks)
    attn: list[torch.Tensor] = []
    for blk in blocks[:-1]:
        if need_attention:
            x, w = block_forward(blk, x)
            attn.append(w)
        else:
            x = blk(x)
    last = blocks[-1]
    if need_attention:
        full, w = block_forward(last, x)
        attn.append(w)
    else:
        full = last(x)
    dense = full if kind == "qk" else block_forward(last, x, kind, residual, mlp)[0]
    return pool_project(visual, full), project_tokens(visual, dense[:, 1:]), attn


def patch_features(
    model: SceneModel, pixels: torch.Tensor, method: str = "raw"
) -> tuple[np.ndarray, tuple[int, int]]:
    """Patch tokens after ``ln_post`` and ``visual.proj``, L2-normalised: ((B, N, D), (rows, cols)).

    ``method``: "raw", "maskclip", "sclip" (alias "csa") or "vv" (alias "clip_surgery").
    """
    _, patches, _ = dense_forward(model, pixels, method)
    return patches.float().cpu().numpy(), tuple(vision_tower(model).grid_size)


def _word_span(model: SceneModel, ids: torch.Tensor) -> tuple[int, int]:
    """[start, end) of the word tokens: after SOT, before EOT (padding lies beyond EOT)."""
    ids = ids.tolist()
    eot = getattr(model.tokenizer, "eot_token_id", None)
    end = ids.index(eot) if eot in ids else int(np.argmax(ids))
    sot = getattr(model.tokenizer, "sot_token_id", None)
    start = 1 if sot is None or ids[0] == sot else 0
    return start, end


@torch.no_grad()
def text_features(model: SceneModel, query: str) -> tuple[np.ndarray, np.ndarray]:
    """(pooled (D,), tokens (T, D)): the query embedding as ``encode_text`` gives it, and each word
    token's ``ln_final`` output projected by ``text_projection``; both L2-normalised.

    T counts BPE tokens (a long word may give several); T is 0 for an empty query.
    """
    clip = model.clip
    ids = model.tokenizer([query]).to(model.device)
    start, end = _word_span(model, ids[0])
    # A causal tower pooled at EOT ("argmax") gives the same outputs up to EOT whatever padding follows,
    # so one pass over [SOT words EOT] serves both the word tokens and encode_text's pooled vector:
    # about 3x cheaper than the 77-token context twice (the Tokens page and every VLM question pay it).
    short = clip.attn_mask is not None and getattr(clip, "text_pool_type", "argmax") == "argmax" \
        and int(ids[0].argmax()) == end
    n = end + 1 if short else ids.shape[1]
    cast = clip.transformer.get_cast_dtype()
    x = clip.token_embedding(ids[:, :n]).to(cast) + clip.positional_embedding[:n].to(cast)
    mask = clip.attn_mask[:n, :n] if clip.attn_mask is not None else None
    x = clip.ln_final(clip.transformer(x, attn_mask=mask))[0]  # (n, width)
    proj = clip.text_projection
    project = proj if isinstance(proj, torch.nn.Linear) else (lambda t: t @ proj)
    pooled = project(x[end]) if short else clip.encode_text(ids)[0]
    tokens = F.normalize(project(x[start:end]), dim=-1)
    return F.normalize(pooled, dim=-1).float().cpu().numpy(), tokens.float().cpu().numpy()


def query_words(model: SceneModel, query: str) -> list[str]:
    """The BPE pieces behind the rows of ``text_features(...)[1]`` (for labelling)."""
    ids = model.tokenizer([query])[0]
    start, end = _word_span(model, ids)
    decode = getattr(model.tokenizer, "decode", None)
    pieces = ids[start:end].tolist()
    return [decode([t]).strip() if decode else str(t) for t in pieces]
