"""Model folders (open_clip hub layout, safetensors) and resumable training state, written atomically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from core.atomic import atomic_path, atomic_write_text


def save_model_dir(
    clip: torch.nn.Module, model_cfg: dict, out: str | Path, preprocess_cfg: dict | None = None,
    dtype: torch.dtype = torch.float32, card: str | None = None,
) -> Path:
    """Write ``out/open_clip_config.json`` + ``out/open_clip_model.safetensors`` (+ MODEL_CARD.md).

    The folder is built beside ``out`` and renamed into place, so a reader never sees half a model.
    """
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
             for k, v in clip.state_dict().items()}
    save_file(state, tmp / "open_clip_model.safetensors")
    cfg = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg or {"resize_mode": "squash"}}
    (tmp / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))
    if card is not None:
        (tmp / "MODEL_CARD.md").write_text(card)
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def save_state(path: str | Path, clip: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: object, epoch: int, extra: dict) -> None:
    """Resumable state after ``epoch`` completed epochs: weights (safetensors) + optimizer (weights-only)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path / "weights.safetensors") as tmp:
        save_file({k: v.detach().contiguous() for k, v in clip.state_dict().items()}, tmp)
    with atomic_path(path / "optim.pt") as tmp:
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp)
    # Written last: its epoch says which weights/optimizer pair is complete.
    atomic_write_text(path / "state.json", json.dumps({"epoch": epoch, **extra}, indent=2))


def load_state(path: str | Path, clip: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: object) -> dict | None:
    path = Path(path)
    if not (path / "state.json").is_file():
        return None
    meta = json.loads((path / "state.json").read_text())
    clip.load_state_dict(load_file(path / "weights.safetensors"))
    opt = torch.load(path / "optim.pt", weights_only=True)
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    return meta
