"""The options of a fine-tuning run and what each does. A plain dataclass without torch, so the
command line and the Train page can build and check options before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

# LoRA wraps these modules of open_clip's transformer blocks (see core.train.lora for why "attn").
LORA_TARGETS = ("c_fc", "c_proj", "attn")

# What each option does and when to change it: shown by the Train page and `scenescope finetune -h`.
OPTION_HELP: dict[str, str] = {
    "epochs": "Passes over the train split (the CLIP scene paper: 8).",
    "lr": ("Peak AdamW learning rate. Unset: the starting model's default: for openclip: models the "
           "CLIP scene paper's 1e-5 (for adapting a converged pretrained CLIP); for scenescope-tiny and "
           "file: models the value in their finetune_defaults.json (else 1e-5)."),
    "weight_decay": "AdamW weight decay on matrices (biases, norms and the logit scale have none).",
    "batch_size": ("0: as memory allows, the largest power of two up to 128 on CPU (256 on CUDA) that "
                   "fits and leaves at least 4 steps per epoch."),
    "warmup_fraction": "Share of the steps with a linear warmup before the cosine decay.",
    "precision": "auto: bf16 autocast on a CPU that computes bf16 natively (else fp32), bf16 or fp16 (loss-scaled) on CUDA.",
    "freeze_text": "Lock the whole text tower (LiT-style): prompts and captions keep their embeddings.",
    "freeze_blocks": "Freeze the embeddings and the first N transformer blocks of both towers.",
    "unfreeze_text_at": "Gradual unfreezing: the text tower body trains from this epoch (1-based).",
    "unfreeze_vision_at": "Gradual unfreezing: the vision tower body trains from this epoch (1-based).",
    "lora_rank": "> 0: train LoRA adapters (peft) only; they are merged into the weights at the end.",
    "wise_ft": "WiSE-FT: blend the result with the start weights, the blend chosen on the val split.",
    "val_k": "Neighbours in the per-epoch validation k-NN vote.",
}


@dataclass
class FinetuneOptions:
    """Hyper-parameters of a fine-tuning run (the defaults are the recipe's)."""

    epochs: int = 8
    lr: float | None = None  # None: the starting model's default (core.train.model_defaults)
    weight_decay: float = 0.1
    batch_size: int = 0  # 0: as memory allows (auto_batch_size)
    warmup_fraction: float = 0.05
    precision: str = "auto"  # auto (bf16 on a CPU with native bf16, else fp32; bf16/fp16 on CUDA) | bf16 | fp16 | fp32
    seed: int = 0
    paraphrase: bool = True
    freeze_text: bool = False  # lock the whole text tower, projection included (LiT-style)
    freeze_blocks: int = 0  # freeze the embeddings and the first N blocks of both towers
    unfreeze_text_at: int | None = None  # gradual unfreezing: text tower body trains from this epoch (1-based)
    unfreeze_vision_at: int | None = None  # same for the vision tower body
    lora_rank: int = 0  # > 0: train LoRA adapters only, merged into the weights at the end
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = LORA_TARGETS
    wise_ft: bool = False  # interpolate with the start weights, alpha chosen on val
    wise_alphas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    val_k: int = 5
    validate: bool = True
    device: str = "cpu"
    workers: int = 2
    save_dtype: str = "float32"  # fine-tuning deltas at lr 1e-5 are near float16's resolution

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinetuneOptions:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown fine-tuning options {unknown}; known: {sorted(names)}")
        d = dict(d)
        for key in ("lora_targets", "wise_alphas"):
            if key in d and d[key] is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    def check(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"lr must be positive (or unset for the model's default), got {self.lr}")
        if self.batch_size < 0 or self.freeze_blocks < 0 or self.lora_rank < 0:
            raise ValueError("batch_size, freeze_blocks and lora_rank cannot be negative")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise ValueError(f"precision must be auto, bf16, fp16 or fp32, not {self.precision!r}")
        if any(not 0.0 <= a <= 1.0 for a in self.wise_alphas):
            raise ValueError(f"WiSE-FT alphas must lie in [0, 1], got {self.wise_alphas}")
        if self.save_dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"save_dtype must be float32, float16 or bfloat16, not {self.save_dtype!r}")
