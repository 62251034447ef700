"""PyTorch's own INT8 engines for ``bench/quantize.py --engines`` (issue 22's 1.5x speed target, attempt 4).

Measured here only, not a product path: ``torch.ao.quantization`` is deprecated (the issue says not
to build on it) and torchao's CPU int8 kernels were measured slower (section 10c of bench/RESULTS.md).

- ``torch-int8``: ``torch.ao.quantization.quantize_dynamic`` (qint8 weights per tensor, activations
  quantized per batch at run time) on every linear layer, run by the quantized engine named
  (``x86``: fbgemm's AVX2 int8 GEMM, vpmaddubsw on a CPU without VNNI).
- ``torchao-int8-dyn`` / ``torchao-int8-wo``: torchao's ``Int8DynamicActivationInt8WeightConfig`` and
  ``Int8WeightOnlyConfig`` (eager, no ``torch.compile``).

PyTorch's attention keeps its q/k/v projection as a bare parameter and calls its output projection as
a function, which no module-swapping quantizer reaches; ``linear_attention`` first rewrites each
``nn.MultiheadAttention`` as two ``nn.Linear`` around scaled-dot-product attention (same outputs), so
that all 24 products of the bundled encoder are quantized, not only the MLP's 12.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ENGINES = ("torch-int8", "torchao-int8-dyn", "torchao-int8-wo")


class LinearAttention(nn.Module):
    """An eval-mode ``nn.MultiheadAttention`` (self-attention, packed q/k/v) as qkv Linear -> SDPA -> out Linear."""

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        if not mha._qkv_same_embed_dim or mha.in_proj_bias is None or mha.bias_k is not None:
            raise ValueError("only packed q/k/v self-attention with biases is supported")
        d = mha.embed_dim
        self.heads, self.batch_first = mha.num_heads, mha.batch_first
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        with torch.no_grad():
            self.qkv.weight.copy_(mha.in_proj_weight)
            self.qkv.bias.copy_(mha.in_proj_bias)
            self.out.weight.copy_(mha.out_proj.weight)
            self.out.bias.copy_(mha.out_proj.bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, value: torch.Tensor | None = None,
                need_weights: bool = False, attn_mask: torch.Tensor | None = None, **_: object) -> tuple:
        x = query if self.batch_first else query.transpose(0, 1)
        b, n, d = x.shape
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            attn_mask = ~attn_mask  # MHA: True = blocked; SDPA: True = kept
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        o = self.out(F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask).transpose(1, 2).reshape(b, n, d))
        return (o if self.batch_first else o.transpose(0, 1)), None


def linear_attention(visual: nn.Module) -> nn.Module:
    """A float32 eval copy of ``visual`` with every ``nn.MultiheadAttention`` made a ``LinearAttention``."""
    visual = copy.deepcopy(visual).float().eval()
    for parent in list(visual.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.MultiheadAttention):
                setattr(parent, name, LinearAttention(child))
    return visual


def _encoder(visual: nn.Module, engine: str | None = None) -> Callable[[torch.Tensor], np.ndarray]:
    @torch.inference_mode()
    def encode(pixels: torch.Tensor) -> np.ndarray:
        if engine:
            torch.backends.quantized.engine = engine  # global: set on each call, the runs interleave
        out = visual(pixels).float()
        return (out / out.norm(dim=1, keepdim=True)).numpy()
    encode.module = visual  # what bench/quantize.py saves to size it
    return encode


def int8_encoder(visual: nn.Module, engine: str, backend: str = "x86") -> Callable[[torch.Tensor], np.ndarray]:
    """Preprocessed pixels -> unit vectors through one of ``ENGINES`` applied to ``visual``'s linear layers."""
    lin = linear_attention(visual)
    if engine == "torch-int8":
        torch.backends.quantized.engine = backend
        q = torch.ao.quantization.quantize_dynamic(lin, {nn.Linear}, dtype=torch.qint8)
        return _encoder(q, backend)
    if engine in ("torchao-int8-dyn", "torchao-int8-wo"):
        try:  # measured only, so not in requirements.txt (measured with torchao 0.18.0)
            from torchao.quantization import (
                Int8DynamicActivationInt8WeightConfig,
                Int8WeightOnlyConfig,
                quantize_,
            )
        except ImportError:
            raise ValueError(f"--engines {engine} needs torchao: .venv/bin/pip install torchao==0.18.0") from None

        cfg = Int8DynamicActivationInt8WeightConfig() if engine == "torchao-int8-dyn" else Int8WeightOnlyConfig()
        quantize_(lin, cfg)
        return _encoder(lin)
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")


def op_shares(visual: nn.Module, pixels: torch.Tensor, reps: int = 3) -> dict[str, float]:
    """Share of the float32 encoder's self CPU time by operator group (torch.profiler, eval, one batch
    ``reps`` times): which part an int8 GEMM can speed up at all."""
    from torch.profiler import ProfilerActivity, profile

    groups = {"linear (addmm/mm)": ("aten::addmm", "aten::mm", "aten::bmm"),
              "attention (SDPA)": ("aten::_scaled_dot_product_flash_attention_for_cpu",),
              "GELU": ("aten::gelu",), "patch embedding (conv)": ("aten::mkldnn_convolution", "aten::convolution"),
              "layer norm": ("aten::native_layer_norm",), "copies and adds": ("aten::copy_", "aten::add", "aten::add_")}
    with torch.inference_mode():
        visual(pixels)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(reps):
                visual(pixels)
    self_us = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(self_us.values())
    out = {g: sum(self_us.get(k, 0.0) for k in keys) / total for g, keys in groups.items()}
    out["other"] = 1.0 - sum(out.values())
    return out


def gemm_speedups(rows: int = 32 * 85, shapes: tuple = ((192, 576), (192, 192), (192, 768), (768, 192)),
                  backends: tuple = ("x86", "fbgemm", "onednn"), reps: int = 7, calls: int = 20) -> list[dict]:
    """One linear layer alone, float32 against ``torch.ao`` dynamic int8, CPU ms per call (median of ``reps``):
    the bundled encoder's four product shapes (in x out) at a batch of 32 frames of 85 tokens."""
    import statistics
    import time

    out = []
    for backend in backends:
        torch.backends.quantized.engine = backend
        for k, n in shapes:
            lin, x = nn.Linear(k, n).eval(), torch.randn(rows, k)
            q = torch.ao.quantization.quantize_dynamic(nn.Sequential(lin), {nn.Linear}, dtype=torch.qint8)
            times: dict[str, list[float]] = {"fp32": [], "int8": []}
            with torch.inference_mode():
                lin(x), q(x)
                for _ in range(reps):
                    for name, f in (("fp32", lin), ("int8", q)):
                        c = time.process_time()
                        for _ in range(calls):
                            f(x)
                        times[name].append(1e3 * (time.process_time() - c) / calls)
            f32, i8 = statistics.median(times["fp32"]), statistics.median(times["int8"])
            out.append({"backend": backend, "shape": f"{k}x{n}", "fp32_ms": f32, "int8_ms": i8,
                        "fp32_gflops": 2 * rows * k * n / f32 / 1e6, "speedup": f32 / i8})
    return out
