"""Self-distillation for token-pruned encoding: teach the image tower to give, from a subset of its
patch tokens, the embedding it gives from all of them.

A ViT trained on every token loses accuracy when tokens are dropped at inference (LaVida Drive's
selection, FLIP's random drop): the index is built from full-token embeddings, and pruned queries
drift away from them. Here the teacher is the model itself before this stage (frozen, all tokens)
and the student learns two things at once: its full-token embedding stays on the teacher's (so
existing indexes and the text tower's zero-shot prompts stay valid), and its embedding from a
pruned subset (random per image, or the evenly spread pattern of ``spread_scores``) moves onto it.
Only the image tower trains.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from core.atomic import atomic_path
from core.tokens.pruned import encode_kept
from core.tokens.select import keep_count, spread_scores
from core.train.checkpoint import load_state, save_state
from core.train.loop import StepInfo, cosine_with_warmup, mixed_precision


@dataclass
class DistillConfig:
    epochs: int = 4
    lr: float = 1e-4
    weight_decay: float = 0.05
    batch_size: int = 128
    keep_ratios: tuple[float, ...] = (0.25,)  # one drawn per step
    spread_share: float = 1.0  # share of steps that keep the evenly spread pattern, the rest random
    read_in: bool = True  # kept tokens attend to all patches in block 1 (see encode_kept)
    warmup_fraction: float = 0.05
    precision: str = "bf16"
    seed: int = 0


def kept_indices(grid: tuple[int, int], batch: int, keep_ratio: float, spread: bool,
                 gen: torch.Generator) -> torch.Tensor:
    """(batch, k) patch indices, ascending: the spread pattern for every row, or a random subset per row."""
    n = grid[0] * grid[1]
    k = keep_count(n, keep_ratio)
    if spread:
        top = torch.from_numpy(spread_scores(grid)).argsort(descending=True, stable=True)[:k]
        return top.sort().values.expand(batch, -1)
    return torch.rand(batch, n, generator=gen).argsort(dim=1)[:, :k].sort(dim=1).values


@torch.no_grad()
def teacher_embeddings(visual: torch.nn.Module, pixels: torch.Tensor, batch_size: int = 256,
                       device: str = "cpu") -> torch.Tensor:
    was_training = visual.training
    visual.eval()
    out = [visual(pixels[i : i + batch_size].to(device, torch.float32)).float()
           for i in range(0, pixels.shape[0], batch_size)]
    visual.train(was_training)
    return torch.nn.functional.normalize(torch.cat(out), dim=-1).cpu()


def distill_pruned(
    clip: torch.nn.Module,
    pixels: torch.Tensor,
    config: DistillConfig,
    state_dir: str | Path | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[int, dict], dict | None] | None = None,
    device: str = "cpu",
) -> list[dict]:
    """Train ``clip.visual`` in place so pruned encodings match the starting full-token ones.

    Deterministic given the seed and resumable at epoch boundaries like ``train_contrastive``; the
    teacher's embeddings are stored in ``state_dir`` before the first step, so a resume distils
    towards the same targets although the weights they came from are gone.
    """
    visual = clip.visual
    grid = tuple(visual.grid_size)
    clip.to(device)
    if device == "cpu":
        torch.set_flush_denormal(True)  # see train_contrastive
    teacher_file = Path(state_dir) / "teacher.safetensors" if state_dir is not None else None
    if teacher_file is not None and teacher_file.is_file():
        teacher = load_file(teacher_file)["embeddings"]
        if teacher.shape[0] != pixels.shape[0]:
            raise ValueError(f"{teacher_file}: {teacher.shape[0]} teacher embeddings for {pixels.shape[0]} "
                             "images; discard the state folder to start over")
    else:
        teacher = teacher_embeddings(visual, pixels, device=device)
        if teacher_file is not None:
            teacher_file.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(teacher_file) as tmp:
                save_file({"embeddings": teacher.contiguous()}, tmp)

    frozen = {n: p.requires_grad for n, p in clip.named_parameters()}
    for n, p in clip.named_parameters():
        p.requires_grad_(n.startswith("visual."))
    try:
        params = [p for p in visual.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            [{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}], lr=config.lr)
        n = pixels.shape[0]
        steps_per_epoch = max(1, n // config.batch_size)
        total = steps_per_epoch * config.epochs
        scheduler = cosine_with_warmup(optimizer, int(config.warmup_fraction * total), total)
        log: list[dict] = []
        start = 0
        if state_dir is not None:
            meta = load_state(state_dir, clip, optimizer, scheduler)
            if meta is not None:
                start, log = meta["epoch"], meta.get("log", [])
        everything = torch.arange(grid[0] * grid[1])
        for epoch in range(start, config.epochs):
            visual.train()
            gen = torch.Generator().manual_seed(config.seed * 1000 + epoch)
            order = torch.randperm(n, generator=gen)
            losses, gaps = [], []
            t0 = time.perf_counter()
            for step in range(steps_per_epoch):
                idx = order[step * config.batch_size : (step + 1) * config.batch_size]
                ratio = config.keep_ratios[int(torch.randint(len(config.keep_ratios), (1,), generator=gen))]
                spread = bool(torch.rand((), generator=gen) < config.spread_share)
                kept = kept_indices(grid, len(idx), ratio, spread, gen)
                x = pixels[idx].to(device, torch.float32)
                target = teacher[idx].to(device)
                with mixed_precision(device, config.precision):
                    full = encode_kept(visual, x, everything.expand(len(idx), -1).to(device))
                    pruned = encode_kept(visual, x, kept.to(device), config.read_in)
                    # Cosine distance to the teacher, full-token anchor plus pruned target.
                    anchor = 1 - (full.float() * target).sum(-1).mean()
                    gap = 1 - (pruned.float() * target).sum(-1).mean()
                    loss = anchor + gap
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
                gaps.append(float(gap.detach()))
                if on_step is not None:
                    rate = (step + 1) * config.batch_size / (time.perf_counter() - t0)
                    on_step(StepInfo(epoch, step, steps_per_epoch, losses[-1], scheduler.get_last_lr()[0], rate))
            row = {"epoch": epoch + 1, "loss": sum(losses) / len(losses),
                   "pruned_cosine_gap": sum(gaps) / len(gaps), "seconds": time.perf_counter() - t0}
            if on_epoch is not None:
                row.update(on_epoch(epoch + 1, row) or {})
            if not math.isfinite(row["loss"]):
                raise FloatingPointError(f"distillation diverged in epoch {epoch + 1} (loss {row['loss']})")
            log.append(row)
            if state_dir is not None:
                save_state(state_dir, clip, optimizer, scheduler, epoch + 1, {"log": log, "config": asdict(config)})
        return log
    finally:
        for n, p in clip.named_parameters():
            p.requires_grad_(frozen[n])


@torch.inference_mode()
def embed_spread(clip: torch.nn.Module, pixels: torch.Tensor, keep_ratio: float, batch_size: int = 128,
                 device: str = "cpu", read_in: bool = True) -> torch.Tensor:
    """L2-normalised embeddings from the evenly spread ``keep_ratio`` share of the patch tokens."""
    visual = clip.visual
    was_training = visual.training
    visual.eval()
    kept = kept_indices(tuple(visual.grid_size), 1, keep_ratio, True, torch.Generator())
    out = [encode_kept(visual, pixels[i : i + batch_size].to(device, torch.float32),
                       kept.expand(min(batch_size, pixels.shape[0] - i), -1).to(device), read_in).float().cpu()
           for i in range(0, pixels.shape[0], batch_size)]
    visual.train(was_training)
    return torch.cat(out)
