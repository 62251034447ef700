"""What a fine-tuning run can afford on this machine: precision, batch size from free memory, and
the peak memory it used."""

from __future__ import annotations

import math
import resource
import sys
from pathlib import Path

import torch


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere torch emulates it,
    and bf16 autocast runs several times slower than fp32 (7.5x measured on an AVX2-only EPYC)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str, device: str) -> str:
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


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
