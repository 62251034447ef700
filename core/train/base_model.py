"""What fine-tuning needs to know about its starting model besides the weights: the open_clip
config to write the fine-tuned copy with, and the caption context it must fit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import open_clip
import torch


def model_config(name: str, clip: torch.nn.Module) -> tuple[dict, dict]:
    """(model_cfg, preprocess_cfg) of a registry model, for writing the fine-tuned copy."""
    from core.models.registry import BUNDLED

    folder = None
    if name in BUNDLED:
        folder = Path(BUNDLED[name])
    elif name.startswith("file:"):
        p = Path(name[5:]).expanduser()
        folder = p if p.is_dir() else p.parent
    if folder is not None and (folder / "open_clip_config.json").is_file():
        cfg = json.loads((folder / "open_clip_config.json").read_text())
        return cfg["model_cfg"], cfg.get("preprocess_cfg") or {}
    arch = name.split(":", 1)[-1].split("/", 1)[0]
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ValueError(f"cannot find the open_clip config of {name!r}")
    return cfg, dict(getattr(clip.visual, "preprocess_cfg", None) or {})


def caption_token_count(text: str) -> int:
    """Tokens a caption takes in CLIP's context, start and end tokens included."""
    from open_clip.tokenizer import _tokenizer

    return len(_tokenizer.encode(text)) + 2


def check_captions(captions: Sequence[str], context_length: int = 77) -> None:
    """Refuse captions CLIP's tokenizer would silently truncate."""
    for c in captions:
        n = caption_token_count(c)
        if n > context_length:
            raise ValueError(f"caption takes {n} tokens, more than the context of {context_length}: {c!r}")
