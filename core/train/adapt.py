"""Domain adaptation of a model to unlabelled footage (issue 20; DriVLM-style).

The image encoder learns the target footage's look without target labels. Each step's loss is

- the labelled source task on the synthetic world's frames: ``core.train.loop``'s multi-positive
  contrastive loss on subset captions plus its attribute heads' loss (the from-scratch recipe's);
- domain-adversarial alignment at two granularities (DANN): a domain classifier on the pooled
  image embedding and a per-token one on the patch tokens, each behind a gradient-reversal layer
  (``core.train.grl``), so the encoder learns features neither can tell apart;
- distillation: the adapted model's source-frame embeddings stay close (cosine) to the frozen
  source model's, so the alignment does not wander away from what the index and prompts expect.

Source frames get augmentations matching the renderer's sensor model and beyond (photometric
jitter, blur, sensor noise, JPEG artefacts). The run is resumable at epoch boundaries (all
randomness of an epoch comes from (seed, epoch)), and writes a ``file:`` model folder with its
own identity, a model card and ``adapt.json`` (a before/after table on the target footage:
familiarity and the vote distribution against an index of labelled frames).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from core.atomic import atomic_write_text
from core.data import Dataset, read_manifest
from core.train.checkpoint import load_state, save_model_dir, save_state
from core.train.data import epoch_subset_captions, label_codes, load_pixels
from core.train.distill import teacher_embeddings
from core.train.grl import DomainClassifier
from core.train.loop import (
    AttributeHeads,
    batch_positives,
    cosine_with_warmup,
    mixed_precision,
    multi_positive_loss,
)

if TYPE_CHECKING:
    from core.index import IndexStore

ProgressFn = Callable[[dict[str, Any]], None]
_RUNTIME = ("device", "workers")  # options a resume may change


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


# ---- target footage ---------------------------------------------------------------------------
def target_images(sources: Sequence[str | Path], fps: float = 2.0, max_frames: int = 1000) -> list[Image.Image]:
    """Unlabelled frames from images, clips and folders of them (a folder's entries by name).

    Images open through ``core.images.open_image`` and clips decode through
    ``core.video.sample_frames`` (their size, duration and frame limits apply); any other file
    in a folder is skipped, a named file of another type is refused.
    """
    from core.images import open_image
    from core.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, sample_frames

    out: list[Image.Image] = []

    def take(p: Path, named: bool) -> None:
        suffix = p.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            out.append(open_image(p))
        elif suffix in VIDEO_SUFFIXES:
            for _, frame in sample_frames(p, fps=fps, max_frames=max_frames - len(out)):
                out.append(Image.fromarray(frame))
        elif named:
            raise ValueError(f"{p}: not an image ({', '.join(IMAGE_SUFFIXES)}) or a clip "
                             f"({', '.join(VIDEO_SUFFIXES)})")

    for source in sources:
        p = Path(source)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such target file or folder")
        for f in sorted(q for q in p.iterdir() if q.is_file()) if p.is_dir() else [p]:
            if len(out) >= max_frames:
                return out
            take(f, named=not p.is_dir())
    if len(out) < 2:
        raise ValueError(f"{', '.join(map(str, sources))}: {len(out)} target frames found; adaptation needs "
                         "at least 2 images or clip frames")
    return out[:max_frames]


# ---- augmentations ----------------------------------------------------------------------------
def _normalization(preprocess: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    """The (mean, std) the preprocessing normalises with, as (3,1,1) tensors."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from torchvision.transforms import Normalize

    for t in getattr(preprocess, "transforms", []):
        if isinstance(t, Normalize):
            return torch.tensor(t.mean).view(3, 1, 1), torch.tensor(t.std).view(3, 1, 1)
    return torch.tensor(OPENAI_DATASET_MEAN).view(3, 1, 1), torch.tensor(OPENAI_DATASET_STD).view(3, 1, 1)


@dataclass
class SensorAugment:
    """Photometric jitter, blur, sensor noise and JPEG artefacts on preprocessed pixels.

    The renderer adds Gaussian sensor noise of sigma 2-5.5 (of 255) and saves JPEG at quality 92;
    these ranges reach well past that (real dashcams blur, compress harder and are noisier), so
    the source domain the model learns from covers more of what cameras do.
    """

    mean: torch.Tensor
    std: torch.Tensor
    jitter: float = 0.3  # brightness/contrast/saturation factor range 1 +- jitter
    # Off by default: torchvision's hue jitter (an RGB-HSV round trip) doubled the augmentation's
    # time here (0.88 against 0.45 s per 32 frames, one thread).
    hue: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 1.5)
    noise_sigma: tuple[float, float] = (0.0, 12 / 255)
    jpeg_quality: tuple[int, int] = (30, 95)
    p: float = 0.5  # chance of each of blur, noise and JPEG

    def __post_init__(self) -> None:
        from torchvision.transforms import v2

        self.colour = v2.ColorJitter(self.jitter, self.jitter, self.jitter, self.hue)
        self.blur = v2.GaussianBlur(5, sigma=self.blur_sigma)
        self.jpeg = v2.JPEG(self.jpeg_quality)

    def __call__(self, pixels: torch.Tensor, seed: int) -> torch.Tensor:
        """A new batch; the draws come from ``seed`` alone (resumed runs see the same ones)."""
        with torch.random.fork_rng(devices=[]):  # torchvision's transforms draw from the global RNG
            torch.manual_seed(seed)
            out = []
            for x in pixels.float():
                x = (x * self.std + self.mean).clamp(0, 1)
                x = self.colour(x)
                if torch.rand(()) < self.p:
                    x = self.blur(x)
                if torch.rand(()) < self.p:
                    x = x + torch.randn_like(x) * float(torch.empty(()).uniform_(*self.noise_sigma))
                if torch.rand(()) < self.p:
                    x = self.jpeg((x.clamp(0, 1) * 255).round().to(torch.uint8)).float() / 255
                out.append((x.clamp(0, 1) - self.mean) / self.std)
            return torch.stack(out)


# ---- the model's two granularities -------------------------------------------------------------
def encode_with_tokens(visual: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pooled image embedding (B, D), patch tokens (B, T, W)) of an open_clip ViT in one pass."""
    if not hasattr(visual, "output_tokens"):
        raise ValueError(f"adaptation needs a ViT image tower with patch tokens, not {type(visual).__name__}")
    before = visual.output_tokens
    visual.output_tokens = True
    try:
        pooled, tokens = visual(x)
    finally:
        visual.output_tokens = before
    return pooled, tokens


class _Adapting(torch.nn.Module):
    """Everything that trains, as one module: one optimizer, one resumable state."""

    def __init__(self, clip: torch.nn.Module, heads: AttributeHeads, embed_dim: int, token_dim: int) -> None:
        super().__init__()
        self.clip = clip
        self.heads = heads
        self.domain_pooled = DomainClassifier(embed_dim)
        self.domain_tokens = DomainClassifier(token_dim)


def dann_lambda(lam: float, progress: float, ramp: bool = True) -> float:
    """DANN's schedule (Ganin et al. 2016): 0 at the start, ``lam`` at the end, so the encoder
    is not pushed around by a classifier that has not learnt anything yet."""
    return lam * (2 / (1 + math.exp(-10 * progress)) - 1) if ramp else lam


@torch.no_grad()
def embed(clip: torch.nn.Module, pixels: torch.Tensor, batch_size: int = 128, device: str = "cpu") -> np.ndarray:
    """L2-normalised image embeddings (numpy) of preprocessed pixels."""
    was = clip.training
    clip.eval()
    out = [torch.nn.functional.normalize(clip.encode_image(pixels[i : i + batch_size].to(device, torch.float32))
                                         .float(), dim=-1).cpu() for i in range(0, len(pixels), batch_size)]
    clip.train(was)
    return torch.cat(out).numpy()


def domain_probe_accuracy(source: np.ndarray, target: np.ndarray, seed: int = 0) -> float:
    """How well a fresh linear classifier tells the two domains apart from the embeddings:
    5-fold cross-validated accuracy of a balanced logistic regression (scikit-learn). 0.5 is
    chance; the adversarial terms aim to bring it there."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x = np.concatenate([source, target])
    y = np.r_[np.zeros(len(source)), np.ones(len(target))]
    folds = StratifiedKFold(n_splits=min(5, len(source), len(target)), shuffle=True, random_state=seed)
    clf = LogisticRegression(max_iter=2000, class_weight="balanced")
    return float(cross_val_score(clf, x, y, cv=folds, scoring="balanced_accuracy").mean())


@torch.no_grad()
def source_task_loss(clip: torch.nn.Module, pixels: torch.Tensor, captions: list[str], mentions: torch.Tensor,
                     codes: torch.Tensor, tokenizer: Callable, batch_size: int = 32, device: str = "cpu") -> float:
    """The multi-positive contrastive loss on source frames (fixed captions, no augmentation), the
    batches in order: the yardstick of "the source task holds"."""
    was = clip.training
    clip.eval()
    losses = []
    for i in range(0, len(pixels) - 1, batch_size):
        j = slice(i, min(i + batch_size, len(pixels)))
        if j.stop - j.start < 2:
            break
        img = torch.nn.functional.normalize(clip.encode_image(pixels[j].to(device, torch.float32)).float(), dim=-1)
        txt = torch.nn.functional.normalize(clip.encode_text(tokenizer(captions[j]).to(device)).float(), dim=-1)
        losses.append(float(multi_positive_loss(img, txt, clip.logit_scale.exp(),
                                                batch_positives(codes[j], mentions[j]))))
    clip.train(was)
    return float(np.mean(losses))


# ---- the loop ---------------------------------------------------------------------------------
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
    model = _Adapting(clip, AttributeHeads.for_codes(pooled.shape[-1], codes), pooled.shape[-1], tokens.shape[-1])
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
                       {"log": log, "options": _comparable(options)})
    return log


def _comparable(options: AdaptOptions) -> dict[str, Any]:
    return {k: v for k, v in asdict(options).items() if k not in _RUNTIME}


# ---- before/after on the target footage --------------------------------------------------------
def reference_store(dataset: Dataset, embeddings: np.ndarray, identity: str):  # noqa: ANN201
    """An in-memory index of the labelled frames embedded by one model: what the target's
    familiarity and votes are measured against (calibrated on first use, in memory)."""
    from core.index import IndexStore

    return IndexStore.from_embeddings(embeddings, dataset.frames, model=identity, dataset=dataset.root,
                                      schema=dataset.schema)


def target_report(store: IndexStore, target_embeddings: np.ndarray, k: int = 5) -> dict[str, Any]:
    """Familiarity and votes of target frames against ``store``.

    ``votes``: per attribute, the share of frames leaning to each value (the plurality vote,
    shown whether or not it was decided: on footage unlike the index nearly every vote abstains,
    and what it leaned to is what changes); ``decided``: per attribute, the share of frames whose
    vote was decided (a majority agreed and the frame is familiar).
    """
    from core.familiarity import calibration_of, is_unfamiliar, judge, median_familiarity
    from core.predict import vote_batch

    votes = judge(store, target_embeddings, vote_batch(store, target_embeddings, k=k))
    calibration = calibration_of(store)
    values = [v.familiarity for v in votes]
    dist: dict[str, dict[str, float]] = {}
    decided: dict[str, float] = {}
    for attr in store.schema.names:
        counts: dict[str, int] = {}
        for v in votes:
            counts[v.attributes[attr].lean] = counts.get(v.attributes[attr].lean, 0) + 1
        dist[attr] = {value: c / len(votes) for value, c in sorted(counts.items(), key=lambda kv: -kv[1])}
        decided[attr] = float(np.mean([not v.attributes[attr].abstained for v in votes]))
    return {"frames": len(votes), "familiarity_median": median_familiarity(values),
            "flagged_share": float(np.mean([is_unfamiliar(f, calibration) for f in values])),
            "votes": dist, "decided": decided}


@dataclass
class AdaptResult:
    model_dir: Path | None
    model_name: str | None
    identity: str | None = None
    log: list[dict] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)  # target_report + domain probe + source loss
    after: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_dir"] = str(self.model_dir) if self.model_dir else None
        return d


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def model_card(summary: dict[str, Any]) -> str:
    """MODEL_CARD.md of an adapted model: where it came from and what adaptation changed."""
    b, a, o = summary["before"], summary["after"], summary["options"]
    lines = [
        f"# Adapted model: {Path(summary['model_dir']).name}",
        "",
        f"Domain adaptation of `{summary['base_model']}` (`{summary['base_identity']}`) to unlabelled target "
        f"footage ({summary['target_frames']} frames from {', '.join(f'`{t}`' for t in summary['target'])}), "
        f"with the labelled source task on `{summary['data_dir']}` ({summary['source_frames']} frames): "
        "contrastive + attribute losses, domain-adversarial alignment (gradient reversal) on the pooled "
        "embedding and the patch tokens, and cosine distillation towards the source model on source frames.",
        "",
        f"Identity `{summary['identity']}`; seed {o['seed']}; finished {summary['finished']} "
        f"after {summary['wall_seconds']:.0f} s. Reference index for the table: {summary['reference']}.",
        "",
        "## Hyper-parameters",
        "",
        "| option | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in o.items()],
        "",
        "## Before / after on the target footage",
        "",
        "| measure | before | after |",
        "|---|---|---|",
        f"| familiarity (median) | {_pct(b['familiarity_median'])} | {_pct(a['familiarity_median'])} |",
        f"| frames flagged unlike the index | {_pct(b['flagged_share'])} | {_pct(a['flagged_share'])} |",
        f"| domain probe accuracy (0.5 = indistinguishable) | {b['domain_probe']:.3f} | {a['domain_probe']:.3f} |",
        f"| source contrastive loss | {b['source_loss']:.4f} | {a['source_loss']:.4f} |",
        "",
        "### Votes (share of target frames leaning to each value; decided: share whose vote was decided)",
        "",
        "| attribute | before | after | decided before | decided after |",
        "|---|---|---|---|---|",
    ]

    def dist(d: dict[str, float]) -> str:
        return ", ".join(f"{v} {100 * s:.0f}%" for v, s in d.items())

    for attr in b["votes"]:
        lines.append(f"| {attr} | {dist(b['votes'][attr])} | {dist(a['votes'].get(attr, {}))} | "
                     f"{_pct(b['decided'].get(attr))} | {_pct(a['decided'].get(attr))} |")
    lines += ["", "## Training log", "", "| epoch | loss | task | distill | domain acc (pooled) | "
              "domain acc (tokens) | lambda | seconds |", "|---|---|---|---|---|---|---|---|"]
    for r in summary["log"]:
        lines.append(f"| {r['epoch']} | {r['loss']:.4f} | {r['task']:.4f} | {r['distill']:.4f} | "
                     f"{r['domain_acc_pooled']:.3f} | {r['domain_acc_tokens']:.3f} | {r['lambda']:.3f} | "
                     f"{r['seconds']:.1f} |")
    return "\n".join([*lines, ""])


def _check_run(state_dir: Path, run: dict[str, Any]) -> None:
    """Record what a run adapts with; refuse to resume a state made with anything else (its
    weights and its 'before' measurement belong to those inputs)."""
    file = state_dir / "run.json"
    if file.is_file():
        if json.loads(file.read_text()) != json.loads(json.dumps(run)):
            raise ValueError(f"{state_dir} holds an adaptation run with other inputs or options; rerun with "
                             "the same ones to resume, or give a fresh --state / --out")
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(file, json.dumps(run, indent=2))


def _weights_digest(clip: torch.nn.Module) -> str:
    """The registry's digest of the weights file ``save_model_dir`` writes for ``clip`` (sha256 of
    the same safetensors bytes), so the card can name the identity the model will load with."""
    from safetensors.torch import save

    state = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
             for k, v in clip.state_dict().items()}
    return hashlib.sha256(save(state)).hexdigest()[:16]


def _preprocess_all(images: Sequence[Image.Image], preprocess: Callable) -> torch.Tensor:
    return torch.stack([preprocess(im).to(torch.float16) for im in images])


def adapt(
    data_dir: str | Path,
    target: Sequence[str | Path],
    base_model: str,
    out_dir: str | Path,
    options: AdaptOptions | None = None,
    index: str | Path | None = None,
    state_dir: str | Path | None = None,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> AdaptResult:
    """Adapt ``base_model`` to the ``target`` footage; write the new ``file:`` model to ``out_dir``.

    ``data_dir``'s train split is the labelled source. The before/after table measures the target
    frames against ``index`` (an index built with ``base_model``) re-embedded by each model, or
    else against ``data_dir``'s frames. ``state_dir`` (default ``<out_dir>.state``) holds the
    per-epoch states; calling again with the same arguments resumes.
    """
    from core.models import load_model
    from core.train.base_model import check_captions, model_config

    options = options or AdaptOptions()
    options.check()
    out_dir = Path(out_dir)
    state_dir = Path(state_dir) if state_dir is not None else out_dir.with_name(out_dir.name + ".state")
    emit = on_progress or (lambda _info: None)
    t_start = time.time()
    emit({"phase": "loading", "epochs": options.epochs})
    dataset = read_manifest(data_dir)
    train = dataset.split("train")
    if len(train) < 2:
        raise ValueError(f"{data_dir}: the train split has {len(train)} frames; adaptation needs at least 2")
    images = target_images(target, options.target_fps, options.max_target_frames)  # bad input fails first
    threads = torch.get_num_threads()
    model = load_model(base_model, device=options.device)
    torch.set_num_threads(threads)  # load_model takes every core; keep the caller's choice
    clip = model.clip.float()
    model_cfg, preprocess_cfg = model_config(base_model, clip)
    check_captions(epoch_subset_captions(train, dataset.schema, options.seed, 0)[0],
                   int(getattr(clip, "context_length", 77)))
    pixels = load_pixels(train, model.preprocess, workers=options.workers, progress=False)
    target_px = _preprocess_all(images, model.preprocess)
    del images

    # The reference frames: the given index's (re-embedded by each model), else the labelled data.
    if index is not None:
        from core.index import IndexStore

        ref_store = IndexStore.load(index, model=model)
        ref = Dataset(ref_store.data_root, ref_store.meta.copy(), dataset.schema)
        ref_px = load_pixels(ref, model.preprocess, workers=options.workers, progress=False)
        reference = f"`{index}` ({len(ref)} frames, re-embedded by the adapted model for 'after')"
    else:
        ref, ref_px, ref_store = dataset, None, None
        reference = f"every frame of `{data_dir}` ({len(dataset)} frames), embedded by each model"
    if ref_px is None:
        ref_px = load_pixels(ref, model.preprocess, workers=options.workers, progress=False)

    def measure(identity: str, store: IndexStore | None) -> dict[str, Any]:
        emit({"phase": "measuring", "epochs": options.epochs})
        tgt = embed(clip, target_px, device=options.device)
        store = store or reference_store(ref, embed(clip, ref_px, device=options.device), identity)
        src = embed(clip, pixels, device=options.device)
        captions, mentions = epoch_subset_captions(train, dataset.schema, options.seed, 0)
        return {**target_report(store, tgt), "domain_probe": domain_probe_accuracy(src, tgt, options.seed),
                "source_loss": source_task_loss(clip, pixels, captions, mentions, label_codes(train, dataset.schema),
                                                model.tokenizer, device=options.device)}

    _check_run(state_dir, {"options": _comparable(options), "base_identity": model.identity,
                           "data_dir": str(Path(data_dir).resolve()), "index": str(index) if index else None,
                           "target": [str(Path(t).resolve()) for t in target], "target_frames": len(target_px)})
    before_file = state_dir / "before.json"  # measured once: a resume must not re-measure an adapted model
    if before_file.is_file():
        before = json.loads(before_file.read_text())
    else:
        before = measure(model.identity, ref_store)
        state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(before_file, json.dumps(before))

    augment = SensorAugment(*_normalization(model.preprocess)) if options.augment else None
    for p in clip.parameters():
        p.requires_grad_(True)
    log = adapt_model(clip, model.tokenizer, train, pixels, target_px, options, augment=augment,
                      state_dir=state_dir, on_progress=emit, should_stop=should_stop)
    result = AdaptResult(None, None, log=log, before=before)
    if should_stop is not None and should_stop() and len(log) < options.epochs:
        result.stopped = True
        return result
    clip.eval()
    for p in clip.parameters():
        p.requires_grad_(False)
    result.after = measure("adapted", None)

    emit({"phase": "saving", "epochs": options.epochs})
    result.model_dir = out_dir.resolve()
    result.model_name = f"file:{result.model_dir}"
    summary = {
        **result.to_dict(), "base_model": base_model, "base_identity": model.identity,
        "data_dir": str(Path(data_dir).resolve()), "target": [str(Path(t).resolve()) for t in target],
        "target_frames": len(target_px), "source_frames": len(train), "reference": reference,
        "options": asdict(options), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": time.time() - t_start,
    }
    # The identity is the registry's (name + weights digest), known once the weights are written;
    # the card is written with the folder, so it names the digest computed the registry's way.
    summary["identity"] = "file:" + out_dir.name + "@" + _weights_digest(clip)
    save_model_dir(clip, model_cfg, out_dir, preprocess_cfg=preprocess_cfg, card=model_card(summary),
                   files={"adapt.json": json.dumps(summary, indent=2, default=str)})
    result.identity = load_model(result.model_name).identity
    emit({"phase": "done", "epochs": options.epochs})
    return result
