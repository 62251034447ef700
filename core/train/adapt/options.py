"""The options of a domain-adaptation run (see :mod:`core.train.adapt`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

RUNTIME = ("device", "workers")  # options a resume may change


@dataclass
class AdaptOptions:
    epochs: int = 2
    lr: float = 1e-5  # the encoder's (a converged model: small steps, like fine-tuning's)
    head_lr: float = 1e-3  # the domain classifiers and attribute heads start from scratch
    weight_decay: float = 0.05
    batch_size: int = 32  # source frames per step; as many target frames join them
    warmup_fraction: float = 0.05
    # Gradient-reversal strength: how hard the encoder is pushed to hide the domain (0: the
    # classifiers still train and report their accuracy, the encoder ignores them).
    domain_lambda: float = 0.1
    ramp: bool = True  # DANN's schedule: lambda grows from 0 as 2/(1+exp(-10p))-1 over the run
    token_weight: float = 1.0  # weight of the patch-token classifier's loss beside the pooled one's
    distill_weight: float = 1.0  # cosine distance to the frozen source model on source frames
    attribute_loss: float = 1.0  # weight of the attribute heads' loss in the source task
    augment: bool = True  # renderer-matching augmentations on source frames
    randomize: bool = False  # also the renderer's domain randomization (camera, lens, texture) as augmentation
    max_target_frames: int = 1000
    target_fps: float = 2.0  # frames sampled per second of a target clip
    precision: str = "fp32"
    seed: int = 0
    device: str = "cpu"
    workers: int = 2

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AdaptOptions:
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown adaptation options {unknown}")
        return cls(**d)

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"epochs must be >= 1 and batch_size >= 2, got {self.epochs}, {self.batch_size}")
        if self.lr <= 0 or self.head_lr <= 0:
            raise ValueError(f"learning rates must be positive, got lr {self.lr}, head_lr {self.head_lr}")
        if self.domain_lambda < 0 or self.token_weight < 0 or self.distill_weight < 0 or self.attribute_loss < 0:
            raise ValueError("domain_lambda and the loss weights cannot be negative")
        if self.max_target_frames < 2:
            raise ValueError(f"max_target_frames must be at least 2, got {self.max_target_frames}")
        if self.precision not in ("bf16", "fp16", "fp32"):
            raise ValueError(f"precision must be bf16, fp16 or fp32, not {self.precision!r}")



def comparable(options: AdaptOptions) -> dict[str, Any]:
    """The options that must match for a state to be resumed (all but the runtime ones)."""
    return {k: v for k, v in asdict(options).items() if k not in RUNTIME}


# Each option in words, for the command line and the Train page.
OPTION_HELP = {
    "epochs": "Passes over the labelled source frames (each joined by as many target frames).",
    "lr": "Learning rate of the encoder: small steps, the model is already trained.",
    "head_lr": "Learning rate of the domain classifiers and attribute heads (they start from scratch).",
    "weight_decay": "AdamW weight decay of the encoder's matrices.",
    "batch_size": "Source frames per step; as many target frames join each step.",
    "warmup_fraction": "Share of the steps over which the learning rate warms up.",
    "domain_lambda": "Gradient-reversal strength: how hard the encoder is pushed to hide which domain a "
                     "frame comes from (0: no alignment, only the source task and distillation).",
    "ramp": "Grow the reversal strength from 0 over the run (DANN's schedule).",
    "token_weight": "Weight of the patch-token domain classifier beside the pooled-embedding one.",
    "distill_weight": "Weight of the pull towards the original model's embeddings on source frames.",
    "attribute_loss": "Weight of the attribute heads' loss in the labelled source task.",
    "augment": "Blur, noise, JPEG and colour augmentation of the source frames (like real cameras).",
    "randomize": "Also the renderer's domain randomization as augmentation: camera zoom and pitch, "
                 "vignetting and blotchy textures.",
    "max_target_frames": "At most this many target frames (images and sampled clip frames).",
    "target_fps": "Frames sampled per second of a target clip.",
    "precision": "Number format of training: fp32 exact; bf16/fp16 faster on chips that support them.",
    "seed": "Random seed: the same seed and inputs give the same model.",
    "device": "Where it trains: cpu, cuda or cuda:N.",
    "workers": "Frame-decoding workers.",
}

