"""Fine-tuning defaults that belong to the starting model, and where each comes from.

The CLIP scene paper's lr 1e-5 suits a converged pretrained CLIP; our small from-scratch model
needs far more (bench/finetune_weak.py: 5e-4 gained +5.4 points where 1e-5 lost 1.0). So an option
listed in ``MODEL_DEFAULTED`` that the user leaves unset takes the starting model's value:

- ``openclip:`` pretrained models: the paper's value;
- bundled models: their ``finetune_defaults.json``, written with the bench that chose the value;
- ``file:`` models: the same json in their folder when they carry one, else the paper's value.

Light to import (no torch): ``scenescope finetune --help`` shows these defaults.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from core.model_names import BUNDLED  # the registry's names, without torch

DEFAULTS_FILE = "finetune_defaults.json"
MODEL_DEFAULTED = ("lr",)  # FinetuneOptions fields whose default comes from the starting model
PAPER_DEFAULTS: dict[str, tuple[float, str]] = {
    "lr": (1e-5, "the CLIP scene paper's value for adapting a converged pretrained CLIP"),
}

Defaults = dict[str, tuple[float, str]]


def model_folder(model_name: str) -> Path | None:
    """The folder of a bundled or ``file:`` model (None for ``openclip:`` ones)."""
    if model_name in BUNDLED:
        return Path(BUNDLED[model_name])
    if model_name.startswith("file:"):
        path = Path(model_name[5:]).expanduser()
        return path if path.is_dir() else path.parent  # a weights file: its folder, as the registry reads it
    if model_name.startswith("openclip:"):
        return None
    raise ValueError(f"unknown model {model_name!r}: use scenescope-tiny, openclip:<arch>/<tag> or file:<path>")


def read_defaults_file(folder: str | Path) -> Defaults | None:
    """The defaults a model folder records, or None when it records none."""
    path = Path(folder) / DEFAULTS_FILE
    if not path.is_file():
        return None
    try:
        entries = json.loads(path.read_text())["finetune_defaults"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: expected {{\"finetune_defaults\": {{option: {{\"value\", \"source\"}}}}}} "
                         f"({type(e).__name__}: {e})") from None
    out: Defaults = {}
    for name, entry in entries.items():
        if name not in MODEL_DEFAULTED:
            raise ValueError(f"{path}: {name!r} is not an option the model sets; known: {list(MODEL_DEFAULTED)}")
        value = entry.get("value") if isinstance(entry, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{path}: {name} needs a positive number as its value, got {value!r}")
        source = str(entry.get("source") or "no source recorded")
        out[name] = (float(value), f"{path.parent.name}/{DEFAULTS_FILE}: {source}")
    return out


def write_defaults_file(folder: str | Path, defaults: dict[str, tuple[float, str]]) -> Path:
    """Record ``{option: (value, source)}`` in a model folder (read back by ``finetune_defaults``)."""
    from core.atomic import atomic_write_text

    body = {"finetune_defaults": {k: {"value": v, "source": s} for k, (v, s) in defaults.items()}}
    path = Path(folder) / DEFAULTS_FILE
    atomic_write_text(path, json.dumps(body, indent=2) + "\n")
    return path


def finetune_defaults(model_name: str) -> Defaults:
    """``{option: (value, where it comes from)}`` for fine-tuning ``model_name``; every option in
    ``MODEL_DEFAULTED`` is present."""
    folder = model_folder(model_name)
    recorded = read_defaults_file(folder) if folder is not None else None
    if folder is None:
        why = "openclip: pretrained model"
    elif recorded is None:
        why = f"no {DEFAULTS_FILE} in {folder.name}"
    else:
        why = ""
    fallback = {k: (v, f"{s} ({why})") for k, (v, s) in PAPER_DEFAULTS.items()}
    return {**fallback, **(recorded or {})}


def describe(defaults: Defaults, name: str = "lr") -> str:
    """``5e-04 (where it comes from)``: one default in words, for help texts."""
    value, source = defaults[name]
    return f"{value:g} ({source})"


def with_model_defaults(options: Any, model_name: str) -> tuple[Any, dict[str, list]]:
    """``options`` (a FinetuneOptions) with every unset model-defaulted option filled in from
    ``model_name``, and ``{option: [value, source]}`` of those filled."""
    from dataclasses import replace

    defaults = finetune_defaults(model_name)
    taken = {k: list(defaults[k]) for k in MODEL_DEFAULTED if getattr(options, k) is None}
    return replace(options, **{k: v for k, (v, _) in taken.items()}), taken
