"""TeachCLIP-style training of the AFA student on frozen frame and caption vectors.

The loss is the sum of three terms (weights in ``DistillConfig``):
- InfoNCE: symmetric cross-entropy of the batch's caption-clip similarity matrix (student clip
  vectors), caption i belonging to clip i;
- coarse distillation: the Pearson distance (1 - Pearson correlation) between the student's and
  the teacher's softmaxed similarity rows, caption-to-clip rows and clip-to-caption columns both;
- fine distillation: KL divergence from the teacher's frame distribution for the matching caption
  (softmax over the clip's frame-text similarities) to the student's AFA frame weights.
Only the AFA learns; the encoder's vectors are fixed, so training runs in seconds on a CPU.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from core.atomic import atomic_write_bytes
from core.retrieval.clipvec import AFA, frame_text_sims, teacher_scores


@dataclass(frozen=True)
class DistillConfig:
    hidden: int = 128
    epochs: int = 40
    batch: int = 64
    lr: float = 1e-3
    temperature: float = 0.05  # InfoNCE logits = similarity / temperature
    distill_tau: float = 0.05  # softmax temperature of the coarse rows
    frame_tau: float = 0.01  # softmax temperature of the teacher's frames (its pooling and the fine target)
    teacher_pool: str = "softmax"
    w_nce: float = 1.0
    w_coarse: float = 1.0
    w_fine: float = 1.0
    seed: int = 0


def pearson_distance(a: torch.Tensor, b: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Mean over rows of 1 - Pearson correlation between ``a`` and ``b`` along ``dim``."""
    a = a - a.mean(dim, keepdim=True)
    b = b - b.mean(dim, keepdim=True)
    corr = (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim)).clamp_min(1e-12)
    return (1.0 - corr).mean()


def distill_losses(student: AFA, texts: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor,
                   cfg: DistillConfig) -> dict[str, torch.Tensor]:
    """The three losses and their weighted ``total`` for one batch (caption i matches clip i)."""
    clips, w = student(frames, mask)
    sim = texts @ clips.T
    target = torch.arange(len(texts))
    logits = sim / cfg.temperature
    nce = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    with torch.no_grad():
        teach = teacher_scores(texts, frames, mask, cfg.teacher_pool, cfg.frame_tau)
        s_own = frame_text_sims(texts, frames)[target, target]  # (B, F): caption i on clip i's frames
        q = torch.softmax((s_own / cfg.frame_tau).masked_fill(~mask, float("-inf")), dim=1)
    p_s, p_t = sim / cfg.distill_tau, teach / cfg.distill_tau
    coarse = (pearson_distance(p_s.softmax(1), p_t.softmax(1), 1)
              + pearson_distance(p_s.softmax(0), p_t.softmax(0), 0)) / 2
    logw = torch.log(w.clamp_min(1e-12))
    fine = (q * (torch.log(q.clamp_min(1e-12)) - logw)).masked_fill(~mask, 0.0).sum(1).mean()
    total = cfg.w_nce * nce + cfg.w_coarse * coarse + cfg.w_fine * fine
    return {"total": total, "nce": nce, "coarse": coarse, "fine": fine}


def train_afa(frames: np.ndarray, mask: np.ndarray, captions: np.ndarray, cfg: DistillConfig | None = None,
              progress: bool = False) -> tuple[AFA, list[dict[str, float]]]:
    """Train an AFA on clips ``frames`` (C, F, d) with ``mask`` and ``captions`` (C, K, d): K
    caption vectors per clip (one drawn per clip per epoch). Returns the student and per-epoch
    mean losses."""
    cfg = cfg or DistillConfig()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    fr, mk, cap = torch.from_numpy(frames), torch.from_numpy(mask), torch.from_numpy(captions)
    student = AFA(fr.shape[-1], cfg.hidden)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    history = []
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(fr))
        pick = rng.integers(0, cap.shape[1], len(fr))
        sums: dict[str, float] = {}
        batches = [order[i:i + cfg.batch] for i in range(0, len(order), cfg.batch)]
        batches = [b for b in batches if len(b) > 1] or batches  # a batch of one has no negatives
        for b in batches:
            losses = distill_losses(student, cap[b, pick[b]], fr[b], mk[b], cfg)
            opt.zero_grad()
            losses["total"].backward()
            opt.step()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / len(batches)
        history.append(sums)
        if progress:
            print(f"epoch {epoch + 1}/{cfg.epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in sums.items()))
    student.eval()
    return student, history


def save_afa(student: AFA, path: str | Path, meta: dict) -> None:
    """Weights as safetensors, with the architecture and ``meta`` (JSON) in its metadata."""
    info = {"dim": str(student.dim), "hidden": str(student.hidden), "meta": json.dumps(meta, sort_keys=True)}
    state = {k: v.detach().contiguous() for k, v in student.state_dict().items()}
    atomic_write_bytes(path, save_safetensors(state, metadata=info))


def load_afa(path: str | Path) -> tuple[AFA, dict]:
    """An AFA saved by ``save_afa`` and its ``meta``."""
    from safetensors import safe_open

    data = Path(path).read_bytes()
    with safe_open(str(path), framework="pt") as f:
        info = f.metadata() or {}
    try:
        student = AFA(int(info["dim"]), int(info["hidden"]))
        student.load_state_dict(load_safetensors(data))
    except (KeyError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path}: not an AFA weights file ({e})") from None
    student.eval()
    return student, json.loads(info.get("meta", "{}"))


def config_dict(cfg: DistillConfig) -> dict:
    return asdict(cfg)


__all__ = ["DistillConfig", "config_dict", "distill_losses", "load_afa", "pearson_distance", "save_afa", "train_afa"]
