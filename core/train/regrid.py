"""Move a trained open_clip ViT to another input size (a finer or coarser patch grid)."""

from __future__ import annotations

from collections.abc import Callable

import open_clip
import torch
from timm.layers import resample_abs_pos_embed


def regrid(clip: torch.nn.Module, arch: str, image_size: tuple[int, int]) -> tuple[torch.nn.Module, Callable]:
    """A copy of ``clip`` (an open_clip ``arch`` model) for ``image_size`` (height, width), with its
    preprocess transform.

    The patch embedding is size-free; only the positional embedding is tied to the grid. It is
    resampled bicubically from the old grid to the new one (timm's ``resample_abs_pos_embed``: the
    grids here are not square, which open_clip's own resize assumes), class token kept, so the grown
    model starts close to the trained one and a few epochs adapt it.
    """
    old = tuple(clip.visual.grid_size)
    device = next(clip.parameters()).device
    grown, _, preprocess = open_clip.create_model_and_transforms(arch, image_resize_mode="squash",
                                                                 force_image_size=tuple(image_size))
    state = {k: v for k, v in clip.state_dict().items() if not k.startswith("attribute_heads")}
    pos = state["visual.positional_embedding"]
    new = list(grown.visual.grid_size)
    state["visual.positional_embedding"] = resample_abs_pos_embed(
        pos[None].float(), new_size=new, old_size=list(old), num_prefix_tokens=1).to(pos.dtype)[0]
    grown.load_state_dict(state)
    return grown.to(device), preprocess


__all__ = ["regrid"]
