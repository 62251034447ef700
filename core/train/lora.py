"""LoRA adapters on an open_clip model through peft, merged back into plain weights for saving.

open_clip's attention is ``nn.MultiheadAttention``, whose ``in_proj`` is a bare parameter rather
than a Linear; peft wraps the whole module (target ``attn``), so LoRA reaches the query/key/value
projection as well as ``out_proj``. The MLP Linears are ``c_fc`` and ``c_proj``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from core.train.options import LORA_TARGETS as DEFAULT_TARGETS


def add_lora(
    clip: torch.nn.Module, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
    targets: Sequence[str] = DEFAULT_TARGETS,
) -> torch.nn.Module:
    """Wrap ``clip`` with LoRA adapters; only the adapters are left trainable.

    Returns a peft model that trains like the original (same forward signature); pass it to
    :func:`merge_lora` before saving.
    """
    from peft import LoraConfig, get_peft_model

    if rank <= 0:
        raise ValueError(f"LoRA rank must be positive, got {rank}")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets),
                        bias="none")
    return get_peft_model(clip, config)


def is_lora(model: torch.nn.Module) -> bool:
    return hasattr(model, "merge_and_unload") and hasattr(model, "peft_config")


def merge_lora(model: torch.nn.Module) -> torch.nn.Module:
    """Fold the adapters into the base weights; the result has open_clip's own state-dict keys."""
    return model.merge_and_unload() if is_lora(model) else model


def lora_parameter_names(model: torch.nn.Module) -> list[str]:
    return [n for n, _ in model.named_parameters() if "lora_" in n]
