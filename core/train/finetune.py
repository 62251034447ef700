"""Contrastive fine-tuning of any registry model on a dataset's train split.

Wraps :func:`core.train.loop.train_contrastive` with what fine-tuning adds, one module each:

- ``options``: the options and their help; ``model_defaults``: the defaults the starting model sets (lr);
- ``trainable``: freezing (text tower, first N blocks), gradual unfreezing, LoRA's parameters;
- ``resources``: precision, batch size from free memory, peak memory;
- ``validation``: the val split's k-NN vote F1 each epoch; ``wise``: WiSE-FT with the start weights;
- ``base_model``: the start's open_clip config and caption context; ``finetune_card``: the new
  ``file:`` model's card.

This module runs them in order (``finetune``) and re-exports their public names.

A run is resumable: everything it decides at the start (batch size, baseline F1) is written to
``state_dir`` before the first step and read back on resume, and the loop derives all
randomness from (seed, epoch), so a resumed run ends where an uninterrupted one would.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import open_clip
import torch

from core.atomic import atomic_write_text
from core.data import Dataset, read_manifest
from core.schema import Schema
from core.train.base_model import caption_token_count, check_captions, model_config
from core.train.checkpoint import save_model_dir
from core.train.data import epoch_captions, load_pixels
from core.train.finetune_card import model_card
from core.train.loop import StepInfo, TrainConfig, train_contrastive
from core.train.lora import add_lora, merge_lora
from core.train.model_defaults import finetune_defaults, with_model_defaults, write_defaults_file
from core.train.options import OPTION_HELP, FinetuneOptions
from core.train.resources import activation_bytes_per_sample, auto_batch_size, peak_rss_mb, resolve_precision
from core.train.trainable import set_trainable, tower_of, trainable_at
from core.train.validation import Validator, embed_pixels
from core.train.wise import interpolate, wise_ft

if TYPE_CHECKING:
    from core.models import SceneModel

__all__ = [
    "OPTION_HELP", "FinetuneOptions", "FinetuneResult", "ProgressFn", "Validator", "activation_bytes_per_sample",
    "auto_batch_size", "caption_token_count", "check_captions", "embed_pixels", "finetune", "interpolate",
    "model_card", "model_config", "peak_rss_mb", "resolve_precision", "set_trainable", "tower_of",
    "trainable_at", "wise_ft",
]

ProgressFn = Callable[[dict[str, Any]], None]
# Options that do not change what a run computes; a resume may differ in them.
_RUNTIME_OPTIONS = ("device", "workers")


@dataclass
class FinetuneResult:
    model_dir: Path | None
    model_name: str | None  # registry name (file:<dir>) of the new model
    log: list[dict] = field(default_factory=list)
    val_f1_before: float | None = None
    val_f1_after: float | None = None
    wise_alpha: float | None = None
    wise_scores: dict[str, float] = field(default_factory=dict)
    train_frames: int = 0
    train_seconds: float = 0.0
    images_per_s: float = 0.0
    peak_rss_mb: float = 0.0
    stopped: bool = False
    model_defaults: dict[str, list] = field(default_factory=dict)  # option: [value, source] taken from the start

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_dir"] = str(self.model_dir) if self.model_dir else None
        return d


def _comparable(options: FinetuneOptions) -> dict[str, Any]:
    d = json.loads(json.dumps(asdict(options)))
    return {k: v for k, v in d.items() if k not in _RUNTIME_OPTIONS}


@dataclass
class _Start:
    """What a run loads before its first step."""

    train: Dataset
    val: Dataset
    schema: Schema
    model: SceneModel  # loaded from the registry (identity, tokenizer, preprocess)
    model_cfg: dict
    preprocess_cfg: dict
    theta0: dict[str, torch.Tensor]  # the start weights, for WiSE-FT
    pixels: torch.Tensor
    validator: Validator | None


def _load(data_dir: str | Path, base_model: str, options: FinetuneOptions, progress: bool) -> _Start:
    """Read the data, load the model, check the captions fit and decode the frames once."""
    from core.models import load_model

    dataset = read_manifest(data_dir)
    schema = dataset.schema
    train, val = dataset.split("train"), dataset.split("val")
    if len(train) < 2:
        raise ValueError(f"{data_dir}: the train split has {len(train)} frames; fine-tuning needs at least 2")
    validate = options.validate and len(val) > 0
    if options.wise_ft and not validate:
        raise ValueError("WiSE-FT chooses its alpha on the val split: it needs validate=True and val frames")
    threads = torch.get_num_threads()
    model = load_model(base_model, device=options.device)
    torch.set_num_threads(threads)  # load_model takes every core; keep the caller's choice
    clip = model.clip
    model_cfg, preprocess_cfg = model_config(base_model, clip)
    theta0 = {k: v.detach().clone() for k, v in clip.state_dict().items()}
    check_captions(epoch_captions(train, schema, options.seed, 0, options.paraphrase),
                   int(getattr(clip, "context_length", 77)))
    pixels = load_pixels(train, model.preprocess, workers=options.workers, progress=progress)
    validator = None
    if validate:
        val_pixels = load_pixels(val, model.preprocess, workers=options.workers, progress=progress)
        validator = Validator(train, val, pixels, val_pixels, schema, options.val_k, options.device)
    return _Start(train, val, schema, model, model_cfg, preprocess_cfg, theta0, pixels, validator)


def _run_settings(state_dir: Path, options: FinetuneOptions, start: _Start, emit: ProgressFn) -> dict:
    """Batch size, precision and the baseline F1: decided once at the start and read back on
    resume, since a resumed run must not re-pick them."""
    run = state_dir / "run.json"
    if run.is_file():
        settings = json.loads(run.read_text())
        if settings["options"] != _comparable(options):
            raise ValueError(f"{state_dir} holds a run with other options; resume with the same "
                             "ones or start over in a fresh folder")
        return settings
    emit({"phase": "validating", "epoch": 0, "epochs": options.epochs})
    settings = {
        "batch_size": options.batch_size or auto_batch_size(start.model.clip, len(start.train), options.device),
        "precision": resolve_precision(options.precision, options.device),
        "val_f1_before": start.validator.f1(start.model.clip) if start.validator is not None else None,
        "options": _comparable(options),
    }
    state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run, json.dumps(settings, indent=2))
    return settings


def _trainable_model(clip: torch.nn.Module, options: FinetuneOptions) -> torch.nn.Module:
    """The model the optimizer sees: ``clip`` itself or its LoRA wrapper, with ``requires_grad`` set."""
    torch.manual_seed(options.seed)  # LoRA's initial A matrices
    model = add_lora(clip, options.lora_rank, options.lora_alpha, options.lora_dropout,
                     options.lora_targets) if options.lora_rank > 0 else clip
    if not set_trainable(model, None, options):
        raise ValueError("these options leave no parameter to train")
    return model


@dataclass
class _Reporter:
    """The loop's step and epoch callbacks: progress dicts with an ETA, validation after each
    epoch, and a stop request that stays latched once seen."""

    emit: ProgressFn
    epochs: int
    steps_per_epoch: int
    batch_size: int
    model: torch.nn.Module
    validator: Validator | None
    should_stop: Callable[[], bool] | None
    last_val: float | None
    val_s: float = 0.0  # the last validation's duration: each remaining epoch costs one more
    stopped: bool = False

    def on_step(self, info: StepInfo) -> None:
        done = info.epoch * self.steps_per_epoch + info.step + 1
        per_step = self.batch_size / info.images_per_s if info.images_per_s > 0 else 0.0
        left = self.epochs * self.steps_per_epoch - done
        eta = left * per_step + self.val_s * (self.epochs - info.epoch)
        self.emit({"phase": "training", "epoch": info.epoch + 1, "epochs": self.epochs, "step": info.step + 1,
                   "steps_per_epoch": self.steps_per_epoch, "loss": info.loss, "lr": info.lr,
                   "images_per_s": info.images_per_s, "val_f1": self.last_val, "eta_s": eta})

    def on_epoch(self, epoch: int, row: dict) -> dict:
        extra: dict[str, Any] = {"images_per_s": self.steps_per_epoch * self.batch_size / row["seconds"]}
        if self.validator is not None:
            self.emit({"phase": "validating", "epoch": epoch, "epochs": self.epochs})
            t = time.perf_counter()
            extra["val_f1"] = self.last_val = self.validator.f1(self.model)
            self.val_s = time.perf_counter() - t
        self.emit({"phase": "epoch_done", "epoch": epoch, "epochs": self.epochs, "loss": row["loss"],
                   "val_f1": extra.get("val_f1"), "steps_per_epoch": self.steps_per_epoch,
                   "step": self.steps_per_epoch})
        return extra

    def stop(self) -> bool:
        if self.should_stop is not None and self.should_stop():
            self.stopped = True
        return self.stopped


def _finish(train_model: torch.nn.Module, start: _Start, options: FinetuneOptions, result: FinetuneResult,
            emit: ProgressFn) -> torch.nn.Module:
    """Merge LoRA into plain weights, then WiSE-FT's blend when asked; sets ``result``'s F1 after."""
    clip = merge_lora(train_model).eval()
    for p in clip.parameters():
        p.requires_grad_(False)
    result.val_f1_after = result.log[-1].get("val_f1") if result.log else None
    if options.wise_ft and start.validator is not None:
        emit({"phase": "wise_ft", "epoch": options.epochs, "epochs": options.epochs})
        known = {0.0: result.val_f1_before, 1.0: result.val_f1_after}
        alpha, scores = wise_ft(clip, start.theta0, options.wise_alphas, start.validator.f1,
                                {a: s for a, s in known.items() if s is not None})
        result.wise_alpha, result.wise_scores = alpha, {str(a): s for a, s in scores.items()}
        result.val_f1_after = scores[alpha]
    return clip


def _save(clip: torch.nn.Module, out_dir: Path, start: _Start, options: FinetuneOptions, result: FinetuneResult,
          run: dict[str, Any]) -> None:
    """Write the new ``file:`` model: weights, card, finetune.json, and the fine-tuning defaults
    it inherits from its start (a model fine-tuned again starts from the same family's value)."""
    result.model_dir = out_dir.resolve()
    result.model_name = f"file:{result.model_dir}"
    summary = {
        **result.to_dict(),
        "base_model": run["base_model"],
        "base_identity": start.model.identity,
        "data_dir": str(Path(run["data_dir"]).resolve()),
        "options": json.loads(json.dumps(asdict(options))),
        "batch_size": run["batch_size"],
        "precision": run["precision"],
        "wall_seconds": time.time() - run["t_start"],
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
                   f" ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
    }
    save_model_dir(clip, start.model_cfg, out_dir, preprocess_cfg=start.preprocess_cfg,
                   dtype=getattr(torch, options.save_dtype), card=model_card(summary))
    atomic_write_text(out_dir / "finetune.json", json.dumps(summary, indent=2, default=str))
    write_defaults_file(out_dir, {k: (v, f"from its base model {run['base_model']}: {s}")
                                  for k, (v, s) in finetune_defaults(run["base_model"]).items()})


def finetune(
    data_dir: str | Path,
    base_model: str,
    out_dir: str | Path,
    options: FinetuneOptions | None = None,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    state_dir: str | Path | None = None,
    progress: bool = False,
) -> FinetuneResult:
    """Fine-tune ``base_model`` on ``data_dir``'s train split; write the new model to ``out_dir``.

    Options left unset (``lr=None``) take the starting model's default (``core.train.model_defaults``).
    ``state_dir`` (default ``<out_dir>.state``) holds the per-epoch checkpoints; calling again
    with the same arguments resumes from the last one. ``on_progress`` gets dicts with ``phase``,
    ``epoch``, ``epochs``, ``step``, ``steps_per_epoch``, ``loss``, ``val_f1``, ``eta_s``,
    ``images_per_s``. When ``should_stop`` turns true the run stops at the next step and the
    result has ``stopped=True`` (the last epoch checkpoint remains for a resume).
    """
    options, taken = with_model_defaults(options or FinetuneOptions(), base_model)
    options.check()
    out_dir = Path(out_dir)
    state_dir = Path(state_dir) if state_dir is not None else out_dir.with_name(out_dir.name + ".state")
    emit = on_progress or (lambda _info: None)
    t_start = time.time()

    emit({"phase": "loading", "epochs": options.epochs})
    start = _load(data_dir, base_model, options, progress)
    settings = _run_settings(state_dir, options, start, emit)
    train_model = _trainable_model(start.model.clip, options)
    config = TrainConfig(epochs=options.epochs, lr=options.lr, weight_decay=options.weight_decay,
                         batch_size=min(int(settings["batch_size"]), len(start.train)),
                         warmup_fraction=options.warmup_fraction, precision=settings["precision"],
                         seed=options.seed, paraphrase=options.paraphrase)
    steps_per_epoch = max(1, len(start.train) // config.batch_size)
    reporter = _Reporter(emit, options.epochs, steps_per_epoch, config.batch_size, train_model, start.validator,
                         should_stop, last_val=settings.get("val_f1_before"))
    log = train_contrastive(
        train_model, start.pixels,
        lambda e: epoch_captions(start.train, start.schema, options.seed, e, options.paraphrase),
        start.model.tokenizer, config, state_dir=state_dir, on_step=reporter.on_step, on_epoch=reporter.on_epoch,
        should_stop=reporter.stop, device=options.device,
        on_epoch_start=lambda e: set_trainable(train_model, e, options),
    )
    result = FinetuneResult(None, None, log=log, val_f1_before=settings.get("val_f1_before"),
                            train_frames=len(start.train), model_defaults=taken)
    if reporter.stopped:
        result.stopped = True
        return result

    clip = _finish(train_model, start, options, result, emit)
    emit({"phase": "saving", "epoch": options.epochs, "epochs": options.epochs})
    result.train_seconds = sum(r["seconds"] for r in log)
    result.images_per_s = (len(log) * steps_per_epoch * config.batch_size / result.train_seconds
                           if result.train_seconds else 0.0)
    result.peak_rss_mb = peak_rss_mb()
    _save(clip, out_dir, start, options, result, {"base_model": base_model, "data_dir": data_dir,
                                                   "batch_size": config.batch_size, "precision": config.precision,
                                                   "t_start": t_start})
    emit({"phase": "done", "epoch": options.epochs, "epochs": options.epochs, "val_f1": result.val_f1_after})
    return result
