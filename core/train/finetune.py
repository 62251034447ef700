"""Contrastive fine-tuning of any registry model on a dataset's train split.

Wraps :func:`core.train.loop.train_contrastive` with what fine-tuning adds: freezing (text tower,
first N blocks), gradual unfreezing, LoRA adapters, k-NN validation on the val split each epoch,
WiSE-FT weight-space ensembling with the start weights, and a ``file:`` model with its card.

A run is resumable: everything it decides at the start (batch size, baseline F1) is written to
``state_dir`` before the first step and read back on resume, and the loop derives all
randomness from (seed, epoch), so a resumed run ends where an uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch

from core.atomic import atomic_write_text
from core.data import Dataset, read_manifest
from core.schema import Schema
from core.train.checkpoint import save_model_dir
from core.train.data import epoch_captions, load_pixels
from core.train.loop import StepInfo, TrainConfig, train_contrastive
from core.train.lora import DEFAULT_TARGETS, add_lora, merge_lora

ProgressFn = Callable[[dict[str, Any]], None]

# Parameters that turn inputs into the first block's tokens: frozen together with block 0.
_EMBEDDING = re.compile(
    r"^(visual\.(conv1|class_embedding|positional_embedding|ln_pre|patch_embed)|token_embedding|"
    r"positional_embedding|text\.(token_embedding|positional_embedding|embeddings))"
)
_BLOCK = re.compile(r"resblocks\.(\d+)\.")
_HEADS = ("logit_scale", "logit_bias", "visual.proj", "text_projection", "text.text_projection")
_PEFT_PREFIX = "base_model.model."


# What each option does and when to change it: shown by the Train page and `scenescope finetune -h`.
OPTION_HELP: dict[str, str] = {
    "epochs": "Passes over the train split (the CLIP scene paper: 8).",
    "lr": ("Peak AdamW learning rate. 1e-5 is the CLIP scene paper's value for adapting a converged "
           "pretrained CLIP. A weak or barely trained start needs far more: from a one-epoch "
           "scenescope-tiny, 1e-5 moved test F1 by -1.0 point and 5e-4 by +5.4 (bench/RESULTS.md)."),
    "weight_decay": "AdamW weight decay on matrices (biases, norms and the logit scale have none).",
    "batch_size": ("0: as memory allows, the largest power of two up to 128 on CPU (256 on CUDA) that "
                   "fits and leaves at least 4 steps per epoch."),
    "warmup_fraction": "Share of the steps with a linear warmup before the cosine decay.",
    "precision": "auto: bf16 autocast on CPU, bf16 or fp16 (loss-scaled) on CUDA.",
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
    lr: float = 1e-5
    weight_decay: float = 0.1
    batch_size: int = 0  # 0: as memory allows (auto_batch_size)
    warmup_fraction: float = 0.05
    precision: str = "auto"  # auto (bf16 on CPU, bf16/fp16 on CUDA) | bf16 | fp16 | fp32
    seed: int = 0
    paraphrase: bool = True
    freeze_text: bool = False  # lock the whole text tower, projection included (LiT-style)
    freeze_blocks: int = 0  # freeze the embeddings and the first N blocks of both towers
    unfreeze_text_at: int | None = None  # gradual unfreezing: text tower body trains from this epoch (1-based)
    unfreeze_vision_at: int | None = None  # same for the vision tower body
    lora_rank: int = 0  # > 0: train LoRA adapters only, merged into the weights at the end
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = DEFAULT_TARGETS
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
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.batch_size < 0 or self.freeze_blocks < 0 or self.lora_rank < 0:
            raise ValueError("batch_size, freeze_blocks and lora_rank cannot be negative")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise ValueError(f"precision must be auto, bf16, fp16 or fp32, not {self.precision!r}")
        if any(not 0.0 <= a <= 1.0 for a in self.wise_alphas):
            raise ValueError(f"WiSE-FT alphas must lie in [0, 1], got {self.wise_alphas}")
        if self.save_dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"save_dtype must be float32, float16 or bfloat16, not {self.save_dtype!r}")


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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_dir"] = str(self.model_dir) if self.model_dir else None
        return d


# ---- which parameters train -------------------------------------------------------------------
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


# ---- helpers ---------------------------------------------------------------------------------
def resolve_precision(precision: str, device: str) -> str:
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16"


def _mem_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def activation_bytes_per_sample(clip: torch.nn.Module) -> int:
    """Rough training memory per sample: ~16 saved float32 tensors of (tokens x width) per block."""
    v = clip.visual
    grid = getattr(v, "grid_size", None)
    v_tokens = (grid[0] * grid[1] + 1) if grid else 256
    v_width = getattr(getattr(v, "transformer", None), "width", 768)
    v_layers = getattr(getattr(v, "transformer", None), "layers", 12)
    t = getattr(clip, "transformer", None)
    t_tokens = getattr(clip, "context_length", 77)
    t_width = getattr(t, "width", 512)
    t_layers = getattr(t, "layers", 12)
    return 16 * 4 * (v_tokens * v_width * v_layers + t_tokens * t_width * t_layers)


def auto_batch_size(clip: torch.nn.Module, n_train: int, device: str = "cpu") -> int:
    """The largest power of two whose activations fit the memory at hand, up to 256 (CUDA) or 128.

    Contrastive learning wants big batches (more negatives), but at least 4 steps per epoch
    keep the schedule meaningful on small datasets. On CPU a step's cost grows linearly with the
    batch, so beyond 128 (the bundled recipe's batch) it only buys fewer steps.
    """
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        budget, ceiling = free // 2, 256
    else:
        budget, ceiling = _mem_available() // 4, 128
    per = activation_bytes_per_sample(clip)
    cap = max(2, min(ceiling, n_train // 4, budget // max(1, per)))
    return 1 << int(math.floor(math.log2(cap)))


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    Linux's ``ru_maxrss`` survives fork and exec, so a worker would report its parent's peak;
    ``VmHWM`` belongs to the process's own address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / (1024 * 1024)


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


# ---- validation --------------------------------------------------------------------------------
@torch.inference_mode()
def embed_pixels(clip: torch.nn.Module, pixels: torch.Tensor, batch_size: int = 128,
                 device: str = "cpu") -> np.ndarray:
    """L2-normalised image embeddings of preprocessed pixels, in float32 for stable votes."""
    was_training = clip.training
    clip.eval()
    out = []
    for i in range(0, pixels.shape[0], batch_size):
        x = pixels[i : i + batch_size].to(device, torch.float32)
        out.append(clip.encode_image(x, normalize=True).float().cpu().numpy())
    clip.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


@dataclass
class Validator:
    """k-NN vote macro F1 on the val split, with the index rebuilt from the current weights."""

    train: Dataset
    val: Dataset
    train_pixels: torch.Tensor
    val_pixels: torch.Tensor
    schema: Schema
    k: int = 5
    device: str = "cpu"

    def report(self, clip: torch.nn.Module, keep_ratio: float = 1.0) -> dict:
        """``keep_ratio`` < 1 encodes the val queries from that share of evenly spread patch tokens
        (the index keeps all tokens): the accuracy token-pruned encoding costs."""
        from core.eval import evaluate
        from core.index import IndexStore
        from core.predict import vote_batch
        from core.train.distill import embed_spread

        store = IndexStore.from_embeddings(
            embed_pixels(clip, self.train_pixels, device=self.device), self.train.frames,
            model="finetune-validation", dataset=self.train.root, split="train", schema=self.schema,
        )
        queries = (embed_pixels(clip, self.val_pixels, device=self.device) if keep_ratio >= 1
                   else embed_spread(clip, self.val_pixels, keep_ratio, device=self.device).numpy())
        votes = vote_batch(store, queries, k=self.k)
        truth = [self.val.labels(i) for i in range(len(self.val))]
        return evaluate(truth, [v.labels() for v in votes], self.schema)

    def f1(self, clip: torch.nn.Module) -> float:
        return float(self.report(clip)["macro_f1"])


# ---- WiSE-FT -----------------------------------------------------------------------------------
def interpolate(theta0: dict[str, torch.Tensor], theta1: dict[str, torch.Tensor], alpha: float) -> dict:
    """(1 - alpha) * theta0 + alpha * theta1 over floating tensors; others come from theta1."""
    return {k: ((1 - alpha) * theta0[k].float() + alpha * v.float()).to(v.dtype)
            if v.is_floating_point() and k in theta0 else v for k, v in theta1.items()}


def wise_ft(
    clip: torch.nn.Module, theta0: dict[str, torch.Tensor], alphas: Sequence[float],
    score: Callable[[torch.nn.Module], float], known: dict[float, float] | None = None,
) -> tuple[float, dict[float, float]]:
    """Pick the alpha with the best ``score`` and leave ``clip`` at it; ties go to larger alpha.

    ``known`` carries scores already measured (alpha 0 is the start model, 1 the fine-tuned one).
    """
    theta1 = {k: v.detach().clone() for k, v in clip.state_dict().items()}
    scores = dict(known or {})
    for a in alphas:
        if a not in scores:
            clip.load_state_dict(interpolate(theta0, theta1, a))
            scores[a] = score(clip)
    best = max(alphas, key=lambda a: (scores[a], a))
    clip.load_state_dict(interpolate(theta0, theta1, best))
    return best, {a: scores[a] for a in alphas}


# ---- the run ----------------------------------------------------------------------------------
# Options that do not change what a run computes; a resume may differ in them.
_RUNTIME_OPTIONS = ("device", "workers")


def _comparable(options: FinetuneOptions) -> dict[str, Any]:
    d = json.loads(json.dumps(asdict(options)))
    return {k: v for k, v in d.items() if k not in _RUNTIME_OPTIONS}


def model_card(summary: dict[str, Any]) -> str:
    o = summary["options"]
    lines = [
        f"# Fine-tuned model: {Path(summary['model_dir']).name}",
        "",
        f"Contrastive fine-tuning (open_clip ClipLoss) of `{summary['base_model']}` "
        f"(`{summary['base_identity']}`) on the train split of `{summary['data_dir']}` "
        f"({summary['train_frames']} frames; captions: the schema's compressed caption"
        f"{', paraphrased' if o['paraphrase'] else ''}).",
        "",
        "## Hyper-parameters",
        "",
        "| option | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in o.items()],
        f"| resolved batch size | {summary['batch_size']} |",
        f"| resolved precision | {summary['precision']} |",
        "",
        "## Metrics (val split, k-NN vote macro F1)",
        "",
        f"- before: {_fmt(summary['val_f1_before'])}",
        f"- after: {_fmt(summary['val_f1_after'])}",
    ]
    if summary.get("wise_alpha") is not None:
        lines.append(f"- WiSE-FT alpha: {summary['wise_alpha']} (scores {summary['wise_scores']})")
    lines += ["", "| epoch | loss | val macro F1 | seconds |", "|---|---|---|---|"]
    for row in summary["log"]:
        lines.append(f"| {row['epoch']} | {row['loss']:.4f} | {_fmt(row.get('val_f1'))} | {row['seconds']:.1f} |")
    lines += [
        "",
        f"Seed {o['seed']}; {summary['train_seconds']:.0f} s of training at "
        f"{summary['images_per_s']:.1f} images/s on {summary['machine']}; "
        f"peak RSS {summary['peak_rss_mb']:.0f} MB; torch {summary['torch']}, open_clip {summary['open_clip']}.",
        "",
    ]
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


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

    ``state_dir`` (default ``<out_dir>.state``) holds the per-epoch checkpoints; calling again
    with the same arguments resumes from the last one. ``on_progress`` gets dicts with ``phase``,
    ``epoch``, ``epochs``, ``step``, ``steps_per_epoch``, ``loss``, ``val_f1``, ``eta_s``,
    ``images_per_s``. When ``should_stop`` turns true the run stops at the next step and the
    result has ``stopped=True`` (the last epoch checkpoint remains for a resume).
    """
    from core.models import load_model

    options = options or FinetuneOptions()
    options.check()
    out_dir = Path(out_dir)
    state_dir = Path(state_dir) if state_dir is not None else out_dir.with_name(out_dir.name + ".state")
    emit = on_progress or (lambda _info: None)
    t_start = time.time()

    emit({"phase": "loading", "epochs": options.epochs})
    dataset = read_manifest(data_dir)
    schema = dataset.schema
    train, val = dataset.split("train"), dataset.split("val")
    if len(train) < 2:
        raise ValueError(f"{data_dir}: the train split has {len(train)} frames; fine-tuning needs at least 2")
    threads = torch.get_num_threads()
    model = load_model(base_model, device=options.device)
    torch.set_num_threads(threads)  # load_model takes every core; keep the caller's choice
    clip = model.clip
    model_cfg, preprocess_cfg = model_config(base_model, clip)
    theta0 = {k: v.detach().clone() for k, v in clip.state_dict().items()}

    check_captions(epoch_captions(train, schema, options.seed, 0, options.paraphrase),
                   int(getattr(clip, "context_length", 77)))
    pixels = load_pixels(train, model.preprocess, workers=options.workers, progress=progress)
    validate = options.validate and len(val) > 0
    if options.wise_ft and not validate:
        raise ValueError("WiSE-FT chooses its alpha on the val split: it needs validate=True and val frames")
    validator = None
    if validate:
        val_pixels = load_pixels(val, model.preprocess, workers=options.workers, progress=progress)
        validator = Validator(train, val, pixels, val_pixels, schema, options.val_k, options.device)

    # Decided once at the start and read back on resume: a resumed run must not re-pick them.
    run = state_dir / "run.json"
    if run.is_file():
        settings = json.loads(run.read_text())
        if settings["options"] != _comparable(options):
            raise ValueError(f"{state_dir} holds a run with other options; resume with the same "
                             "ones or start over in a fresh folder")
    else:
        emit({"phase": "validating", "epoch": 0, "epochs": options.epochs})
        settings = {
            "batch_size": options.batch_size or auto_batch_size(clip, len(train), options.device),
            "precision": resolve_precision(options.precision, options.device),
            "val_f1_before": validator.f1(clip) if validator is not None else None,
            "options": _comparable(options),
        }
        state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run, json.dumps(settings, indent=2))
    batch_size, precision = int(settings["batch_size"]), settings["precision"]
    val_f1_before = settings.get("val_f1_before")

    torch.manual_seed(options.seed)  # LoRA's initial A matrices
    train_model = add_lora(clip, options.lora_rank, options.lora_alpha, options.lora_dropout,
                           options.lora_targets) if options.lora_rank > 0 else clip
    if not set_trainable(train_model, None, options):
        raise ValueError("these options leave no parameter to train")

    config = TrainConfig(epochs=options.epochs, lr=options.lr, weight_decay=options.weight_decay,
                         batch_size=min(batch_size, len(train)), warmup_fraction=options.warmup_fraction,
                         precision=precision, seed=options.seed, paraphrase=options.paraphrase)
    steps_per_epoch = max(1, len(train) // config.batch_size)
    timing = {"val_s": 0.0, "last_val": val_f1_before}

    def on_step(info: StepInfo) -> None:
        done = info.epoch * steps_per_epoch + info.step + 1
        per_step = config.batch_size / info.images_per_s if info.images_per_s > 0 else 0.0
        left = options.epochs * steps_per_epoch - done
        eta = left * per_step + timing["val_s"] * (options.epochs - info.epoch)
        emit({"phase": "training", "epoch": info.epoch + 1, "epochs": options.epochs, "step": info.step + 1,
              "steps_per_epoch": steps_per_epoch, "loss": info.loss, "lr": info.lr,
              "images_per_s": info.images_per_s, "val_f1": timing["last_val"], "eta_s": eta})

    def on_epoch(epoch: int, row: dict) -> dict:
        extra: dict[str, Any] = {"images_per_s": steps_per_epoch * config.batch_size / row["seconds"]}
        if validator is not None:
            emit({"phase": "validating", "epoch": epoch, "epochs": options.epochs})
            t = time.perf_counter()
            extra["val_f1"] = validator.f1(train_model)
            timing["val_s"] = time.perf_counter() - t
            timing["last_val"] = extra["val_f1"]
        emit({"phase": "epoch_done", "epoch": epoch, "epochs": options.epochs, "loss": row["loss"],
              "val_f1": extra.get("val_f1"), "steps_per_epoch": steps_per_epoch, "step": steps_per_epoch})
        return extra

    stop_flag = {"stopped": False}

    def stop() -> bool:
        if should_stop is not None and should_stop():
            stop_flag["stopped"] = True
        return stop_flag["stopped"]

    log = train_contrastive(
        train_model, pixels, lambda e: epoch_captions(train, schema, options.seed, e, options.paraphrase),
        model.tokenizer, config, state_dir=state_dir, on_step=on_step, on_epoch=on_epoch,
        should_stop=stop, device=options.device,
        on_epoch_start=lambda e: set_trainable(train_model, e, options),
    )
    result = FinetuneResult(None, None, log=log, val_f1_before=val_f1_before, train_frames=len(train))
    if stop_flag["stopped"]:
        result.stopped = True
        return result

    clip = merge_lora(train_model).eval()
    for p in clip.parameters():
        p.requires_grad_(False)
    val_f1_after = log[-1].get("val_f1") if log else None
    if options.wise_ft and validator is not None:
        emit({"phase": "wise_ft", "epoch": options.epochs, "epochs": options.epochs})
        known = {0.0: val_f1_before, 1.0: val_f1_after}
        alpha, scores = wise_ft(clip, theta0, options.wise_alphas, validator.f1,
                                {a: s for a, s in known.items() if s is not None})
        result.wise_alpha, result.wise_scores = alpha, {str(a): s for a, s in scores.items()}
        val_f1_after = scores[alpha]

    emit({"phase": "saving", "epoch": options.epochs, "epochs": options.epochs})
    train_s = sum(r["seconds"] for r in log)
    result.val_f1_after = val_f1_after
    result.train_seconds = train_s
    result.images_per_s = len(log) * steps_per_epoch * config.batch_size / train_s if train_s else 0.0
    result.peak_rss_mb = peak_rss_mb()
    result.model_dir = out_dir.resolve()
    result.model_name = f"file:{result.model_dir}"
    summary = {
        **result.to_dict(),
        "base_model": base_model,
        "base_identity": model.identity,
        "data_dir": str(Path(data_dir).resolve()),
        "options": json.loads(json.dumps(asdict(options))),
        "batch_size": config.batch_size,
        "precision": precision,
        "wall_seconds": time.time() - t_start,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
                   f" ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
    }
    save_model_dir(clip, model_cfg, out_dir, preprocess_cfg=preprocess_cfg,
                   dtype=getattr(torch, options.save_dtype), card=model_card(summary))
    atomic_write_text(out_dir / "finetune.json", json.dumps(summary, indent=2, default=str))
    emit({"phase": "done", "epoch": options.epochs, "epochs": options.epochs, "val_f1": val_f1_after})
    return result
