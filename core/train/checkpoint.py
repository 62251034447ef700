"""Model folders (open_clip hub layout, safetensors) and resumable training state, written atomically."""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from core.atomic import atomic_folder, atomic_path, atomic_write_text


def _save_tensors(state: dict, path: Path) -> None:
    """safetensors' save_file, whose I/O failures (disk full) become OSErrors like any other write."""
    try:
        save_file(state, path)
    except Exception as e:
        if type(e).__name__ != "SafetensorError":
            raise
        code = re.search(r"os error (\d+)", str(e))
        if code is None:
            raise OSError(errno.EIO, f"safetensors: {str(e).splitlines()[0]}") from None
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1)))) from None


def save_model_dir(
    clip: torch.nn.Module, model_cfg: dict, out: str | Path, preprocess_cfg: dict | None = None,
    dtype: torch.dtype = torch.float32, card: str | None = None, files: dict[str, str] | None = None,
) -> Path:
    """Write ``out/open_clip_config.json`` + ``out/open_clip_model.safetensors`` (+ MODEL_CARD.md).

    The folder is built beside ``out`` and swapped into place (``core.atomic.atomic_folder``), so a
    reader never sees half a model and a crash never leaves none.
    """
    out = Path(out)
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
             for k, v in clip.state_dict().items()}
    cfg = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg or {"resize_mode": "squash"}}
    # Built in <out>.partial, fsynced and swapped in by core.atomic's renames; a kill at any point
    # leaves the previous model loadable (the registry runs recover() before loading).
    with atomic_folder(out) as tmp:
        _save_tensors(state, tmp / "open_clip_model.safetensors")
        (tmp / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))
        if card is not None:
            (tmp / "MODEL_CARD.md").write_text(card)
        for name, text in (files or {}).items():  # e.g. training.json: swapped in with the weights
            (tmp / name).write_text(text)
    return out


def save_state(path: str | Path, clip: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: object, epoch: int, extra: dict) -> None:
    """Resumable state after ``epoch`` completed epochs: weights (safetensors) + optimizer (weights-only).

    Each epoch writes its own pair of files and only then names them in ``state.json``. A crash
    between the writes leaves ``state.json`` naming the previous, complete pair, so the weights
    and optimizer moments a resume loads always belong to the same epoch.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    weights, optim = f"weights-e{epoch:03d}.safetensors", f"optim-e{epoch:03d}.pt"
    with atomic_path(path / weights) as tmp:
        _save_tensors({k: v.detach().contiguous() for k, v in clip.state_dict().items()}, tmp)
    with atomic_path(path / optim) as tmp:
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp)
    atomic_write_text(path / "state.json",
                      json.dumps({"epoch": epoch, "weights": weights, "optim": optim, **extra}, indent=2))
    for old in [*path.glob("weights*.safetensors"), *path.glob("optim*.pt")]:
        if old.name not in (weights, optim):
            old.unlink(missing_ok=True)


def load_state(path: str | Path, clip: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: object) -> dict | None:
    """Load the state ``state.json`` names into the given objects; returns its metadata, or None."""
    path = Path(path)
    if not (path / "state.json").is_file():
        return None
    meta = json.loads((path / "state.json").read_text())
    # States written before epoch-tagged names used fixed file names.
    weights, optim = path / meta.get("weights", "weights.safetensors"), path / meta.get("optim", "optim.pt")
    for f in (weights, optim):
        if not f.is_file():
            raise FileNotFoundError(f"{path / 'state.json'} names {f.name}, which is missing; "
                                    "discard the state folder to start over")
    clip.load_state_dict(load_file(weights))
    opt = torch.load(optim, weights_only=True)
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    return meta
