"""What limits a training job's speed, in words: the device, the threads it may use, the machine's
load, the precision and batch it settled on. Read from a job's status (no torch import)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

BUSY_LOAD = 1.2  # a 1-minute load above this many runnable tasks per core: others share the cores


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def machine_load() -> tuple[float, int] | None:
    """(1-minute load average, cores), or None where the OS does not say."""
    try:
        return os.getloadavg()[0], os.cpu_count() or 1
    except (AttributeError, OSError):
        return None


def image_size(base_model: str | None) -> tuple[int, int] | None:
    """(height, width) in pixels that the starting model's image tower takes, read from its
    open_clip config (a bundled name or ``file:<folder>``); None where no config says (openclip:)."""
    from core.model_names import BUNDLED

    name = str(base_model or "")
    folder = BUNDLED.get(name) or (Path(name[len("file:"):]) if name.startswith("file:") else None)
    try:
        size = json.loads((Path(folder) / "open_clip_config.json").read_text())["model_cfg"]["vision_cfg"]["image_size"]
    except (TypeError, OSError, ValueError, KeyError):
        return None
    h, w = (size, size) if isinstance(size, int) else size
    return int(h), int(w)


def limits_note(status: dict[str, Any]) -> str:
    """One line on what bounds the job's images per second, e.g.
    ``CPU-bound: 2 threads on 2 cores · fp32 · batch 8 · the machine is busy (load 7.9 on 2 cores)``."""
    spec = status.get("spec") or {}
    options = spec.get("options") or {}
    run = status.get("run") or {}
    device = str(options.get("device") or "cpu")
    cores = os.cpu_count() or 1
    if device.startswith("cuda"):
        parts = [f"GPU-bound ({device})"]
    else:
        threads = int(spec.get("threads") or cores)
        parts = [f"CPU-bound: {_plural(threads, 'thread')} on {_plural(cores, 'core')}"]
    if run.get("precision"):
        parts.append(str(run["precision"]))
    if run.get("batch_size"):
        parts.append(f"batch {int(run['batch_size'])}")
    size = image_size(spec.get("base_model"))
    if size is not None:  # pixels per image set the work per step as much as the batch does
        parts.append(f"{size[1]}×{size[0]} px images")
    load = machine_load()
    if load is not None and not device.startswith("cuda") and load[0] > BUSY_LOAD * load[1]:
        parts.append(f"the machine is busy (load {load[0]:.1f} on {_plural(load[1], 'core')}), "
                     "which slows this job")
    return " · ".join(parts)
