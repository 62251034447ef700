"""Quantize every linear layer under a module (an open_clip vision tower) with RTN or GPTQ.

The linear layers are the ``nn.Linear`` modules and the packed q/k/v input projection
(``in_proj_weight``) of each ``nn.MultiheadAttention``. GPTQ needs each layer's inputs, but
PyTorch's attention calls its output projection as a function (and in eval takes a fused fast
path), so during calibration each attention runs an equivalent unrolled forward that calls
``out_proj`` as a module; the first batch checks the unrolled model against the real one.

Calibration is sequential as in the GPTQ paper: layers are taken in stages (one residual block,
found as the nearest numbered container, e.g. ``transformer.resblocks.3``); each stage's inputs
come from the model whose earlier stages are already quantized, and a pass stops after that stage.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.quant.gptq import GROUP_SIZE, Hessian, dequantize, quantize_gptq, quantize_rtn

METHODS = ("rtn", "gptq")


@dataclass
class QuantizedWeight:
    codes: torch.Tensor  # int8 (out, in), values within +-(2^(bits-1) - 1)
    scales: torch.Tensor  # float16 (out, groups)
    group_size: int

    def weight(self) -> torch.Tensor:
        return dequantize(self.codes, self.scales, self.group_size)


@dataclass
class Target:
    key: str  # state-dict key of the weight, e.g. visual.transformer.resblocks.0.mlp.c_fc.weight
    module: nn.Module  # the Linear, or the MultiheadAttention owning in_proj_weight
    param: str  # "weight" or "in_proj_weight"
    stage: str  # module path whose forward ends the stage

    @property
    def tensor(self) -> torch.Tensor:
        return getattr(self.module, self.param)


def _stage_of(path: str) -> str:
    parts = path.split(".")
    for i in range(len(parts) - 1, -1, -1):
        if parts[i].isdigit():
            return ".".join(parts[: i + 1])
    return path


def linear_targets(root: nn.Module, prefix: str = "") -> list[Target]:
    """The quantizable weights under ``root`` in module order (forward order for a ViT)."""
    out = []
    for path, mod in root.named_modules():
        if isinstance(mod, nn.MultiheadAttention):
            if not mod._qkv_same_embed_dim:
                raise ValueError(f"{prefix}{path}: attention with separate q/k/v weights is not supported")
            out.append(Target(f"{prefix}{path}.in_proj_weight", mod, "in_proj_weight", _stage_of(path)))
        elif isinstance(mod, nn.Linear):
            out.append(Target(f"{prefix}{path}.weight", mod, "weight", _stage_of(path)))
    return out


def _unrolled_attention(self: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor,
                        value: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                        need_weights: bool = True, attn_mask: torch.Tensor | None = None,
                        average_attn_weights: bool = True, is_causal: bool = False) -> tuple:
    """nn.MultiheadAttention's eval forward written out, so that ``out_proj`` runs as a module."""
    if key_padding_mask is not None or self.bias_k is not None or self.add_zero_attn:
        raise ValueError("calibration supports attention without padding masks or extra k/v biases")
    if not self.batch_first:
        query, key, value = (t.transpose(0, 1) for t in (query, key, value))
    b, n, d = query.shape
    h = self.num_heads
    w = self.in_proj_weight.chunk(3)
    bias = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None,) * 3
    q, k, v = (F.linear(x, wi, bi).reshape(b, x.shape[1], h, d // h).transpose(1, 2)
               for x, wi, bi in zip((query, key, value), w, bias, strict=True))
    mask = attn_mask
    if mask is not None:
        mask = ~mask if mask.dtype == torch.bool else mask  # MHA: True = blocked; SDPA: True = kept
        mask = mask.reshape(b, h, n, -1) if mask.ndim == 3 else mask
    ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal and mask is None)
    out = self.out_proj(ctx.transpose(1, 2).reshape(b, n, d))
    return (out if self.batch_first else out.transpose(0, 1)), None


@contextlib.contextmanager
def _unrolled(root: nn.Module) -> Iterator[None]:
    mhas = [m for m in root.modules() if isinstance(m, nn.MultiheadAttention)]
    for m in mhas:
        m.forward = types.MethodType(_unrolled_attention, m)
    try:
        yield
    finally:
        for m in mhas:
            del m.forward


class _StageDone(Exception):
    """Raised after the stage being calibrated has run: later layers need not."""


def _set(t: Target, w: torch.Tensor) -> None:
    with torch.no_grad():
        t.tensor.copy_(w.to(t.tensor.dtype).reshape(t.tensor.shape))


def _calibrate_stage(root: nn.Module, run: Callable[[torch.Tensor], object], stage: list[Target],
                     batches: list[torch.Tensor]) -> dict[str, Hessian]:
    """Each stage target's Hessian from the inputs it sees in ``run`` over the batches."""
    hess = {t.key: Hessian(t.tensor.shape[1]) for t in stage}
    hooks = []
    def grab(key: str) -> Callable:
        def hook(_m: nn.Module, args: tuple, kwargs: dict) -> None:
            # A Linear's input, or MultiheadAttention's query: the input of its in_proj.
            hess[key].add(args[0] if args else kwargs.get("input", kwargs.get("query")))
        return hook

    for t in stage:
        hooks.append(t.module.register_forward_pre_hook(grab(t.key), with_kwargs=True))
    end = root.get_submodule(stage[0].stage)

    def stop(*_: object) -> None:
        raise _StageDone

    hooks.append(end.register_forward_hook(stop))
    try:
        with _unrolled(root), torch.no_grad():
            for x in batches:
                try:
                    run(x)
                except _StageDone:
                    pass
    finally:
        for h in hooks:
            h.remove()
    return hess


def _check_unrolled(root: nn.Module, run: Callable[[torch.Tensor], object], x: torch.Tensor) -> None:
    with torch.no_grad():
        ref = run(x)
        with _unrolled(root):
            got = run(x)
    if not torch.allclose(ref, got, rtol=1e-3, atol=1e-4 * float(ref.abs().max()) + 1e-6):
        raise RuntimeError("unrolled attention disagrees with nn.MultiheadAttention; cannot calibrate GPTQ")


def quantize_module(
    root: nn.Module, method: str, bits: int, *, run: Callable[[torch.Tensor], object] | None = None,
    calibration: torch.Tensor | None = None, group_size: int = GROUP_SIZE, prefix: str = "",
    batch_size: int = 32,
) -> dict[str, QuantizedWeight]:
    """Quantize ``root``'s linear layers in place (weights become their dequantized values).

    GPTQ runs ``run`` (default: ``root`` itself) on ``calibration`` inputs in batches. Returns the
    integer codes and scales per state-dict key (``prefix`` + path).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    targets = linear_targets(root, prefix)
    if not targets:
        raise ValueError("no linear layers to quantize")
    out: dict[str, QuantizedWeight] = {}
    if method == "rtn":
        for t in targets:
            codes, scales = quantize_rtn(t.tensor, bits, group_size)
            out[t.key] = QuantizedWeight(codes, scales, group_size)
            _set(t, out[t.key].weight())
        return out
    if calibration is None or len(calibration) == 0:
        raise ValueError("GPTQ needs calibration inputs")
    run = run or root
    batches = list(torch.split(calibration, batch_size))
    _check_unrolled(root, run, batches[0][:4])
    stages: dict[str, list[Target]] = {}
    for t in targets:
        stages.setdefault(t.stage, []).append(t)
    for stage in stages.values():
        hess = _calibrate_stage(root, run, stage, batches)
        for t in stage:
            if hess[t.key].n == 0:
                raise ValueError(f"{t.key}: no calibration input reached this layer")
            codes, scales = quantize_gptq(t.tensor, hess[t.key].matrix(), bits, group_size)
            out[t.key] = QuantizedWeight(codes, scales, group_size)
            _set(t, out[t.key].weight())
    return out
