"""What limits a training job's speed, in words: the device, the threads it may use, the machine's
load, the precision and batch it settled on. Read from a job's status (no torch import)."""

from __future__ import annotations

import os
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
    load = machine_load()
    if load is not None and not device.startswith("cuda") and load[0] > BUSY_LOAD * load[1]:
        parts.append(f"the machine is busy (load {load[0]:.1f} on {_plural(load[1], 'core')}), "
                     "which slows this job")
    return " · ".join(parts)
