"""Which parameters train in which epoch: freezing (text tower, first N blocks), gradual
unfreezing and LoRA, all read from the parameter names of an open_clip model."""

from __future__ import annotations

import re

import torch

from core.train.options import FinetuneOptions

# Parameters that turn inputs into the first block's tokens: frozen together with block 0.
_EMBEDDING = re.compile(
    r"^(visual\.(conv1|class_embedding|positional_embedding|ln_pre|patch_embed)|token_embedding|"
    r"positional_embedding|text\.(token_embedding|positional_embedding|embeddings))"
)
_BLOCK = re.compile(r"resblocks\.(\d+)\.")
_HEADS = ("logit_scale", "logit_bias", "visual.proj", "text_projection", "text.text_projection")
_PEFT_PREFIX = "base_model.model."  # peft's wrapper prefixes every name with this


def _plain_name(name: str) -> str:
    return name[len(_PEFT_PREFIX):] if name.startswith(_PEFT_PREFIX) else name


def tower_of(name: str) -> str:
    """``vision``, ``text`` or ``head`` (the projections and the temperature) for a parameter."""
    name = _plain_name(name)
    if any(name == h or name.startswith(h + ".") for h in _HEADS):
        return "head"
    return "vision" if name.startswith("visual.") else "text"


def _in_first_blocks(name: str, n: int) -> bool:
    if n <= 0:
        return False
    name = _plain_name(name)
    if _EMBEDDING.match(name):
        return True
    m = _BLOCK.search(name)
    return m is not None and int(m.group(1)) < n


def trainable_at(name: str, epoch: int, options: FinetuneOptions) -> bool:
    """Whether parameter ``name`` trains during ``epoch`` (0-based) under ``options``."""
    if options.lora_rank > 0 and "lora_" not in name:
        return False
    tower = tower_of(name)
    text_side = tower == "text" or _plain_name(name) in ("text_projection", "text.text_projection")
    if options.freeze_text and text_side:
        return False
    if tower == "text" and options.unfreeze_text_at is not None and epoch + 1 < options.unfreeze_text_at:
        return False
    if tower == "vision" and options.unfreeze_vision_at is not None and epoch + 1 < options.unfreeze_vision_at:
        return False
    return not _in_first_blocks(name, options.freeze_blocks)


def set_trainable(model: torch.nn.Module, epoch: int | None, options: FinetuneOptions) -> list[str]:
    """Set ``requires_grad``; ``epoch=None`` marks every parameter that trains in any epoch.

    Returns the names of the trainable parameters.
    """
    epochs = range(options.epochs) if epoch is None else [epoch]
    names = []
    for name, p in model.named_parameters():
        p.requires_grad_(any(trainable_at(name, e, options) for e in epochs))
        if p.requires_grad:
            names.append(name)
    return names
