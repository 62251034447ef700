"""A VLM folder on disk: weights (safetensors), config, tokenizer and card, written in one atomic
swap and loaded with its vision tower checked against the one it was trained on."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from core.atomic import atomic_folder, recover
from core.vqa.vlm import (
    BUNDLED_VLM,
    BUNDLED_VLM_NAME,
    CARD_FILE,
    CONFIG_FILE,
    MAX_BYTES,
    TOKENIZER_FILE,
    VLM,
    WEIGHTS_FILE,
    VLMConfig,
)

if TYPE_CHECKING:
    from core.models import SceneModel


def trainable_state(vlm: VLM) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in vlm.state_dict().items()}


def save_vlm(vlm: VLM, out: str | Path, card: str | None = None, files: dict[str, str] | None = None) -> Path:
    """Write the VLM folder (weights, config, tokenizer, card) in one atomic swap; refuses to write
    one over the size budget."""
    from core.train.checkpoint import _save_tensors

    out = Path(out)
    state = trainable_state(vlm)
    size = sum(v.numel() * v.element_size() for v in state.values())
    if size > MAX_BYTES:
        raise ValueError(f"{out}: the VLM weighs {size / 2**20:.1f} MiB; at most {MAX_BYTES / 2**20:.0f} MiB are allowed")
    with atomic_folder(out) as tmp:
        _save_tensors(state, tmp / WEIGHTS_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(asdict(vlm.cfg), indent=2))
        (tmp / TOKENIZER_FILE).write_text(vlm.tokenizer.to_str())
        if card is not None:
            (tmp / CARD_FILE).write_text(card)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
    return out


def vlm_folder(folder: str | Path | None = None) -> Path:
    """The folder a VLM is loaded from: ``folder``, or the bundled one for None or its name."""
    if folder is None or str(folder) == BUNDLED_VLM_NAME:
        recover(BUNDLED_VLM)
        if not (BUNDLED_VLM / WEIGHTS_FILE).is_file():
            raise FileNotFoundError(f"{BUNDLED_VLM}: the bundled VLM {BUNDLED_VLM_NAME} is missing; "
                                    "restore it from git or rebuild it with `make vqa-asset`")
        return BUNDLED_VLM
    folder = Path(folder)
    recover(folder)  # a crash mid-swap leaves <folder>.old; finish the swap first
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such VLM folder (scenescope train-vqa --out writes one)")
    return folder


def load_vlm(folder: str | Path | None = None, vision: SceneModel | None = None, device: str = "cpu") -> VLM:
    """Load a VLM folder (None or ``BUNDLED_VLM_NAME``: the bundled scenescope-vqa-tiny); its vision
    tower comes from the registry by name (or ``vision``) and must be the one it was trained on."""
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    folder = vlm_folder(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder}: missing {name}; not a VLM folder (scenescope train-vqa writes one)")
    try:
        cfg = VLMConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
    except (json.JSONDecodeError, TypeError) as e:
        raise ValueError(f"{folder / CONFIG_FILE}: unreadable config ({e})") from None
    if vision is None:
        from core.models import load_model

        vision = load_model(cfg.vision_model, device=device)
    if vision.identity != cfg.vision_identity:
        raise ValueError(f"{folder}: trained on vision tower {cfg.vision_identity}, "
                         f"but {cfg.vision_model} is now {vision.identity}; retrain with scenescope train-vqa")
    tok = Tokenizer.from_str((folder / TOKENIZER_FILE).read_text())
    vlm = VLM(cfg, vision, tok)
    try:
        vlm.load_state_dict(load_file(folder / WEIGHTS_FILE))
    except RuntimeError as e:
        raise ValueError(f"{folder / WEIGHTS_FILE}: tensors do not fit {CONFIG_FILE} ({str(e).splitlines()[0]})") from None
    return vlm.to(device).eval()


def folder_bytes(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())


__all__ = ["folder_bytes", "load_vlm", "save_vlm", "trainable_state", "vlm_folder"]
