"""Contrastive CLIP training (open_clip's ClipLoss): from scratch or fine-tuning.

Deterministic given the seed and resumable at epoch boundaries: all randomness of an epoch is
derived from (seed, epoch), so a killed run resumed from its last checkpoint ends where an
uninterrupted one would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import open_clip
import torch

from core.train.checkpoint import load_state, save_state


@dataclass
class TrainConfig:
    epochs: int = 8
    lr: float = 1e-5
    weight_decay: float = 0.1
    batch_size: int = 64
    warmup_fraction: float = 0.05
    precision: str = "bf16"  # bf16 | fp16 | fp32; autocast dtype on the training device
    seed: int = 0
    paraphrase: bool = True
    # Weight of the auxiliary per-attribute classification loss (0: contrastive loss only).
    attribute_loss: float = 0.0
    extra: dict = field(default_factory=dict)


@dataclass
class StepInfo:
    epoch: int
    step: int
    steps_per_epoch: int
    loss: float
    lr: float
    images_per_s: float


def cosine_with_warmup(optimizer: torch.optim.Optimizer, warmup: int, total: int):  # noqa: ANN201
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def multi_positive_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor,
                        positive: torch.Tensor) -> torch.Tensor:
    """Contrastive loss with several positives per row (UniCL-style soft targets).

    ``positive[i, j]`` says image i fits caption j. A caption that names only some attributes
    fits every image that agrees on those, so in-batch "negatives" that actually match are not
    pushed away, and captions naming a single attribute make each attribute count on its own.
    """
    logits = scale * img.float() @ txt.float().T
    pos = positive.to(logits.device).float()
    to_text = -(pos / pos.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    to_image = -(pos / pos.sum(0, keepdim=True) * logits.log_softmax(0)).sum(0).mean()
    return (to_text + to_image) / 2


class AttributeHeads(torch.nn.Module):
    """One cosine classifier per attribute on the image embedding (NormFace-style, fixed scale).

    Auxiliary to the contrastive loss when training from scratch. In-batch captions rarely hinge
    on the place alone, so the contrastive gradient for small objects (cones, crossing arms) is
    weak. Measured after 2 of the bundled recipe's epochs: k-NN place F1 0.29 with these heads,
    0.19 with plain linear heads instead. Classes are unit directions in the embedding space, so
    the loss shapes exactly the cosine geometry that k-NN voting reads.
    """

    def __init__(self, embed_dim: int, value_counts: list[int], scale: float = 16.0) -> None:
        super().__init__()
        self.prototypes = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(n, embed_dim) * embed_dim**-0.5) for n in value_counts])
        self.scale = scale
        self.weights: tuple[float, ...] | None = None  # per attribute, schema order; None: equal

    @classmethod
    def for_codes(cls, embed_dim: int, codes: torch.Tensor) -> AttributeHeads:
        """Heads sized by the label codes (N, A): one class per value index seen up to the largest."""
        return cls(embed_dim, [int(codes[:, a].max().clamp(min=0)) + 1 for a in range(codes.shape[1])])

    def loss(self, img: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Cross-entropy averaged over attributes (weighted by ``weights`` when set); negative codes
        (unknown labels) are ignored."""
        img = torch.nn.functional.normalize(img.float(), dim=-1)
        if self.weights is not None and len(self.weights) != len(self.prototypes):
            raise ValueError(f"{len(self.weights)} attribute loss weights for {len(self.prototypes)} attributes")
        losses, weights = [], []
        for a, protos in enumerate(self.prototypes):
            target = codes[:, a].masked_fill(codes[:, a] < 0, -100)
            if (target >= 0).any():
                logits = self.scale * img @ torch.nn.functional.normalize(protos, dim=-1).T
                losses.append(torch.nn.functional.cross_entropy(logits, target, ignore_index=-100))
                weights.append(1.0 if self.weights is None else float(self.weights[a]))
        if not losses:
            return img.new_zeros(())
        w = torch.tensor(weights, device=img.device)
        return (torch.stack(losses) * w).sum() / w.sum()


def batch_positives(codes: torch.Tensor, mentions: torch.Tensor) -> torch.Tensor:
    """(B,B) bool: image i agrees with caption j on every attribute caption j mentions."""
    agree = codes[:, None, :] == codes[None, :, :]
    return (agree | ~mentions[None, :, :]).all(-1)


def mixed_precision(device: str, precision: str) -> torch.autocast:
    if precision == "fp32":
        return torch.autocast(device_type=device.split(":")[0], enabled=False)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def train_contrastive(
    clip: torch.nn.Module,
    pixels: torch.Tensor,
    captions_for_epoch: Callable[[int], list[str] | tuple[list[str], torch.Tensor]],
    tokenizer: Callable,
    config: TrainConfig,
    state_dir: str | Path | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[int, dict], dict | None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    device: str = "cpu",
    on_epoch_start: Callable[[int], None] | None = None,
    label_codes: torch.Tensor | None = None,
    heads: AttributeHeads | None = None,
) -> list[dict]:
    """Train ``clip`` in place on (pixels[i], caption_i) pairs; returns the per-epoch log.

    ``on_epoch(epoch, log_row)`` may return extra metrics (e.g. validation F1) to log; a state is
    checkpointed after every epoch in ``state_dir`` and picked up from there when present.

    When ``captions_for_epoch`` returns ``(captions, mentions)`` (a (N, A) bool tensor of the
    attributes each caption names) and ``label_codes`` (N, A) is given, the loss is
    ``multi_positive_loss``; otherwise open_clip's ``ClipLoss``.

    ``config.attribute_loss`` > 0 (needs ``label_codes``) adds :class:`AttributeHeads`' loss;
    ``heads`` passes them in (to carry trained heads from one stage into the next), else they
    start fresh.

    ``on_epoch_start(epoch)`` (0-based) runs before each epoch, also the first one after a resume;
    gradual unfreezing toggles ``requires_grad`` there. The optimizer holds every parameter that
    is trainable when this is called, so a parameter frozen for some epochs keeps no gradient
    (AdamW skips it) and the optimizer state stays loadable whichever epoch a resume starts at.
    """
    if config.attribute_loss <= 0:
        heads = None
    else:
        if label_codes is None:
            raise ValueError("attribute_loss needs label_codes")
        if heads is None:
            heads = AttributeHeads.for_codes(int(clip.text_projection.shape[-1]), label_codes)
        # Attached for the run so the optimizer, checkpoints and resumes carry the heads; removed
        # before returning, so the model saved afterwards is a plain open_clip model.
        clip.add_module("attribute_heads", heads)
    try:
        clip.to(device)
        if device == "cpu":
            # Adam's moment estimates of tiny gradients go subnormal, and x86 arithmetic on subnormals
            # is ~20x slower: measured 4.8 s instead of 0.1 s per AdamW step on a weak start model.
            torch.set_flush_denormal(True)
        params = [p for p in clip.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr,
        )
        n = pixels.shape[0]
        steps_per_epoch = max(1, n // config.batch_size)
        total = steps_per_epoch * config.epochs
        scheduler = cosine_with_warmup(optimizer, int(config.warmup_fraction * total), total)
        loss_fn = open_clip.ClipLoss()
        # float16 gradients underflow without loss scaling; a disabled scaler is a pass-through.
        scaler = torch.amp.GradScaler(device.split(":")[0],
                                      enabled=config.precision == "fp16" and device.startswith("cuda"))

        log: list[dict] = []
        start_epoch = 0
        if state_dir is not None:
            meta = load_state(state_dir, clip, optimizer, scheduler)
            if meta is not None:
                start_epoch = meta["epoch"]
                log = meta.get("log", [])

        for epoch in range(start_epoch, config.epochs):
            if on_epoch_start is not None:
                on_epoch_start(epoch)
            clip.train()
            gen = torch.Generator().manual_seed(config.seed * 1000 + epoch)
            order = torch.randperm(n, generator=gen)
            got = captions_for_epoch(epoch)
            captions, mentions = got if isinstance(got, tuple) else (got, None)
            losses = []
            t0 = time.perf_counter()
            for step in range(steps_per_epoch):
                idx = order[step * config.batch_size : (step + 1) * config.batch_size]
                x = pixels[idx].to(device, torch.float32)
                tokens = tokenizer([captions[i] for i in idx.tolist()]).to(device)
                with mixed_precision(device, config.precision):
                    img, txt, scale = clip(x, tokens)[:3]
                    if mentions is not None and label_codes is not None:
                        loss = multi_positive_loss(img, txt, scale, batch_positives(label_codes[idx], mentions[idx]))
                    else:
                        loss = loss_fn(img, txt, scale)
                    if heads is not None:
                        loss = loss + config.attribute_loss * heads.loss(img, label_codes[idx].to(device))
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                with torch.no_grad():
                    clip.logit_scale.clamp_(0, math.log(100))
                losses.append(float(loss.detach()))
                if on_step is not None:
                    rate = (step + 1) * config.batch_size / (time.perf_counter() - t0)
                    on_step(StepInfo(epoch, step, steps_per_epoch, losses[-1], scheduler.get_last_lr()[0], rate))
                if should_stop is not None and should_stop():
                    return log
            row = {"epoch": epoch + 1, "loss": sum(losses) / len(losses), "seconds": time.perf_counter() - t0}
            if on_epoch is not None:
                row.update(on_epoch(epoch + 1, row) or {})
            log.append(row)
            if state_dir is not None:
                save_state(state_dir, clip, optimizer, scheduler, epoch + 1,
                           {"log": log, "config": asdict(config)})
        return log
    finally:
        if heads is not None:
            del clip.attribute_heads
