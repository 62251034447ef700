"""The adaptation loop: source task + domain-adversarial alignment + distillation, resumable
at epoch boundaries."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from core.data import Dataset
from core.train.adapt.losses import Adapting, dann_lambda, encode_with_tokens
from core.train.adapt.options import AdaptOptions, comparable
from core.train.checkpoint import load_state, save_state
from core.train.data import epoch_subset_captions, label_codes
from core.train.distill import teacher_embeddings
from core.train.loop import (
    AttributeHeads,
    batch_positives,
    cosine_with_warmup,
    mixed_precision,
    multi_positive_loss,
)

ProgressFn = Callable[[dict[str, Any]], None]


def adapt_model(
    clip: torch.nn.Module,
    tokenizer: Callable,
    source: Dataset,
    pixels: torch.Tensor,
    target: torch.Tensor,
    options: AdaptOptions,
    augment: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
    state_dir: str | Path | None = None,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[dict]:
    """Adapt ``clip`` in place to the ``target`` pixels; returns the per-epoch log (None-free dicts:
    ``loss``, ``task``, ``distill``, ``domain_acc_pooled``, ``domain_acc_tokens``, ``lambda``).

    ``source``/``pixels`` are the labelled frames and their preprocessed pixels. ``clip`` must be
    the source model, also when resuming: the distillation teacher is taken from it before a
    state is loaded. A state is saved in ``state_dir`` after every epoch and picked up from
    there; a stop request returns the log so far (the last epoch's state stays for a resume).
    """
    device, emit = options.device, on_progress or (lambda _info: None)
    schema = source.schema
    codes = label_codes(source, schema)
    teacher = teacher_embeddings(clip.visual, pixels, device=device)  # the frozen source model's view
    torch.manual_seed(options.seed)  # the new heads' initial weights
    with torch.no_grad():
        pooled, tokens = encode_with_tokens(clip.visual, pixels[:1].to(device, torch.float32))
    model = Adapting(clip, AttributeHeads.for_codes(pooled.shape[-1], codes), pooled.shape[-1], tokens.shape[-1])
    model.to(device)
    if device == "cpu":
        torch.set_flush_denormal(True)  # see train_contrastive
    heads = [p for n, p in model.named_parameters() if not n.startswith("clip.")]
    body = [p for p in clip.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([
        {"params": [p for p in body if p.ndim >= 2], "weight_decay": options.weight_decay},
        {"params": [p for p in body if p.ndim < 2], "weight_decay": 0.0},
        {"params": heads, "weight_decay": 0.0, "lr": options.head_lr},
    ], lr=options.lr)
    n, nt = len(pixels), len(target)
    bs = min(options.batch_size, n)
    bt = min(bs, nt)
    steps = max(1, n // bs)
    total = steps * options.epochs
    scheduler = cosine_with_warmup(optimizer, int(options.warmup_fraction * total), total)
    log: list[dict] = []
    start = 0
    if state_dir is not None:
        meta = load_state(state_dir, model, optimizer, scheduler)
        if meta is not None:
            start, log = meta["epoch"], meta.get("log", [])
    for epoch in range(start, options.epochs):
        model.train()
        gen = torch.Generator().manual_seed(options.seed * 1000 + epoch)
        order = torch.randperm(n, generator=gen)
        t_order = torch.cat([torch.randperm(nt, generator=gen) for _ in range(math.ceil(steps * bt / nt))])
        captions, mentions = epoch_subset_captions(source, schema, options.seed, epoch)
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        for step in range(steps):
            idx = order[step * bs : (step + 1) * bs]
            tidx = t_order[step * bt : (step + 1) * bt]
            xs = pixels[idx].float()
            if augment is not None:
                xs = augment(xs, options.seed * 1_000_003 + epoch * 10_007 + step)
            x = torch.cat([xs, target[tidx].float()]).to(device)
            domain = torch.cat([torch.zeros(len(idx)), torch.ones(len(tidx))])
            lam = dann_lambda(options.domain_lambda, (epoch * steps + step) / max(1, total - 1), options.ramp)
            with mixed_precision(device, options.precision):
                pooled, tokens = encode_with_tokens(clip.visual, x)
                img = torch.nn.functional.normalize(pooled.float(), dim=-1)
                src = img[: len(idx)]
                txt = clip.encode_text(tokenizer([captions[i] for i in idx.tolist()]).to(device), normalize=True)
                task = multi_positive_loss(src, txt, clip.logit_scale.exp(),
                                           batch_positives(codes[idx], mentions[idx]))
                if options.attribute_loss > 0:
                    task = task + options.attribute_loss * model.heads.loss(src, codes[idx].to(device))
                distill = (1 - (src * teacher[idx].to(device)).sum(-1)).mean()
                # Unit vectors have coordinates of about 1/sqrt(D); scaled to unit variance the
                # classifier's fresh layers learn at their usual pace.
                dom_p, acc_p = model.domain_pooled.loss(img * img.shape[-1] ** 0.5, domain, lam)
                dom_t, acc_t = model.domain_tokens.loss(tokens, domain, lam)
                loss = task + options.distill_weight * distill + dom_p + options.token_weight * dom_t
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(body, 1.0)
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                clip.logit_scale.clamp_(0, math.log(100))
            for key, v in (("loss", loss), ("task", task), ("distill", distill), ("domain_acc_pooled", acc_p),
                           ("domain_acc_tokens", acc_t)):
                sums[key] = sums.get(key, 0.0) + float(v.detach())
            if not math.isfinite(sums["loss"]):
                raise FloatingPointError(f"adaptation diverged in epoch {epoch + 1}, step {step + 1}")
            emit({"phase": "training", "epoch": epoch + 1, "epochs": options.epochs, "step": step + 1,
                  "steps_per_epoch": steps, "loss": float(loss.detach()), "lambda": lam})
            if should_stop is not None and should_stop():
                return log
        row = {"epoch": epoch + 1, **{k: v / steps for k, v in sums.items()}, "lambda": lam,
               "seconds": time.perf_counter() - t0}
        log.append(row)
        emit({"phase": "epoch_done", **row, "epochs": options.epochs})
        if state_dir is not None:
            save_state(state_dir, model, optimizer, scheduler, epoch + 1,
                       {"log": log, "options": comparable(options)})
    return log
