"""The VLM's epoch loop over its training stages, resumable from per-epoch checkpoints.

``core.vqa.train_vlm`` builds the stages (text warm-up, align, qa); this module runs them. Each
finished epoch writes the weights and the stage's optimizer moments through
``core.train.checkpoint.save_state`` (atomic, the pair named in ``state.json`` only once both are
written), so a run stopped by ``should_stop``, SIGTERM or kill -9 resumes from its last finished
epoch. The shuffle of each epoch and the captions' paraphrases are seeded by (seed, stage, epoch),
not by a generator carried along, so a resumed run sees the same batches as one that never
stopped: same thread count, same bits.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from core.train.checkpoint import save_state

if TYPE_CHECKING:
    from core.vqa.train_data import Example, FeatureCache
    from core.vqa.vlm import VLM

Progress = Callable[[str], None]  # a line for the CLI
Emit = Callable[[dict[str, Any]], None]  # a status update for the jobs worker
LINE_EVERY = 100  # steps between progress lines


@dataclass
class Stage:
    name: str  # "text", "align" or "qa": the key of its losses in the report
    label: str  # shown in progress
    epochs: int
    groups: list[dict[str, Any]]  # optimizer parameter groups, each with its lr
    examples: Sequence[Example]
    visual: bool = True

    def steps(self, batch_size: int) -> int:
        return math.ceil(len(self.examples) / batch_size) if self.epochs > 0 else 0


class Stopped(Exception):
    """``should_stop`` asked the loop to stop; the last finished epoch is checkpointed."""


def _constant(_: int) -> float:
    return 1.0


def _checkpoint(state_dir: Path | None, vlm: VLM, opt: torch.optim.Optimizer, unit: int, meta: dict[str, Any]) -> None:
    if state_dir is not None:
        save_state(state_dir, vlm, opt, torch.optim.lr_scheduler.LambdaLR(opt, _constant), unit, meta)


def read_state(state_dir: Path | None, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The last checkpoint's metadata, or None; refuses one a different run wrote."""
    if state_dir is None or not (state_dir / "state.json").is_file():
        return None
    meta = json.loads((state_dir / "state.json").read_text())
    if meta.get("fingerprint") != fingerprint:
        raise ValueError(f"{state_dir}: the checkpoint is of a training run with other options or data; "
                         "discard the state folder to start over")
    return meta


def load_weights(state_dir: Path, meta: dict[str, Any], vlm: VLM) -> None:
    from safetensors.torch import load_file

    vlm.load_state_dict(load_file(state_dir / meta["weights"]))


def run_stages(vlm: VLM, cache: FeatureCache, stages: Sequence[Stage], *, batch_size: int, seed: int,
               batch_loss: Callable[..., torch.Tensor], state_dir: Path | None = None,
               fingerprint: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
               progress: Progress | None = None, emit: Emit | None = None,
               should_stop: Callable[[], bool] | None = None) -> dict[str, list[float]]:
    """Train each stage's parameter groups (everything else frozen) for its epochs; the mean
    training loss per epoch of each stage. Resumes from ``state_dir``'s last checkpoint; raises
    :class:`Stopped` when ``should_stop`` says so (at a step boundary)."""
    meta = read_state(state_dir, fingerprint or {})
    if meta is not None:
        load_weights(state_dir, meta, vlm)  # type: ignore[arg-type]
    losses: dict[str, list[float]] = {s.name: list((meta or {}).get("losses", {}).get(s.name, [])) for s in stages}
    log: list[dict[str, Any]] = list((meta or {}).get("log", []))
    units = sum(s.epochs for s in stages if s.examples)
    unit = int((meta or {}).get("epoch", 0))
    steps_total = sum(s.steps(batch_size) * s.epochs for s in stages if s.examples)
    steps_done = sum(s.steps(batch_size) * len(losses[s.name]) for s in stages if s.examples)
    t0, steps_now = time.perf_counter(), 0
    for stage in stages:
        if stage.epochs <= 0 or not stage.examples or len(losses[stage.name]) >= stage.epochs:
            continue
        params = [p for g in stage.groups for p in g["params"]]
        for p in vlm.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(stage.groups, weight_decay=0.01)
        if meta is not None and meta.get("stage") == stage.name:  # stopped inside this stage: its moments too
            opt.load_state_dict(torch.load(state_dir / meta["optim"], weights_only=True)["optimizer"])  # type: ignore[operator]
        steps = stage.steps(batch_size)
        for epoch in range(len(losses[stage.name]), stage.epochs):
            vlm.train()
            rng = random.Random(f"{seed}:{stage.name}:{epoch}")
            order = list(stage.examples)
            rng.shuffle(order)
            total = 0.0
            for step, i in enumerate(range(0, len(order), batch_size)):
                batch = order[i : i + batch_size]
                loss = batch_loss(vlm, cache, batch, stage.visual, seed=rng.randrange(1 << 30))
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                total += loss.item() * len(batch)
                steps_now += 1
                rate = steps_now / max(1e-9, time.perf_counter() - t0)
                if emit:
                    emit({"phase": stage.name, "epoch": unit + 1, "epochs": units, "step": step + 1,
                          "steps_per_epoch": steps, "loss": total / (i + len(batch)),
                          "eta_s": (steps_total - steps_done - steps_now) / rate})
                if progress and (step + 1) % LINE_EVERY == 0:
                    progress(f"{stage.label} epoch {epoch + 1}/{stage.epochs}: {i + len(batch)}/{len(order)} "
                             f"examples, loss {total / (i + len(batch)):.4f}")
                if should_stop is not None and should_stop():
                    vlm.eval()
                    raise Stopped
            losses[stage.name].append(total / len(order))
            unit += 1
            log.append({"epoch": unit, "stage": stage.name, "loss": losses[stage.name][-1]})
            _checkpoint(state_dir, vlm, opt, unit, {"stage": stage.name, "losses": losses, "log": log,
                                                     "fingerprint": fingerprint or {}, **(extra or {})})
            if emit:
                emit({"phase": "epoch_done", "epoch": unit, "epochs": units, "loss": losses[stage.name][-1]})
            if progress:
                progress(f"{stage.label} epoch {epoch + 1}/{stage.epochs}: loss {losses[stage.name][-1]:.4f}")
    vlm.eval()
    return losses


__all__ = ["Stage", "Stopped", "read_state", "run_stages"]
