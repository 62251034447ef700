"""Weight quantization of one linear layer: round-to-nearest (RTN) and GPTQ.

Both give symmetric integer weights with one scale per output channel and per group of
``group_size`` input columns: q = clamp(round(w / s), -qmax, qmax), qmax = 2^(bits-1) - 1,
s = max|w| over the group / qmax, w ~ q * s. Scales are rounded to float16 before the weights are
rounded, so what is stored (int8 codes + fp16 scales) dequantizes to exactly what was evaluated.

GPTQ follows Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
Transformers" (ICLR 2023, arXiv:2210.17323), Algorithm 1: with H = 2 X X^T from the layer's
calibration inputs X, damped by 0.01 * mean(diag H), and U the upper Cholesky factor of H^-1,
columns are quantized left to right; each column's rounding error, divided by U[j, j], is
spread over the not yet quantized columns through row j of U (the optimal-brain-surgeon update),
within a block of 128 columns at once and to the columns after the block in one matrix product
("lazy batch updates"). A group's scales are taken from its columns as they stand when the group
starts, i.e. after the error feedback from earlier groups (the paper's grouping).

Written here rather than imported: the maintained GPTQ packages on PyPI (gptqmodel, llmcompressor,
optimum's GPTQ, which wraps gptqmodel) find layers through Hugging Face transformers' decoder
classes, calibrate on token batches and target GPU kernels; auto-gptq is no longer maintained
(last release 2024) and torchao's GPTQ targets its CUDA int4 kernels. None quantizes an
open_clip vision tower on a CPU, and the algorithm itself is ~40 lines of torch.
"""

from __future__ import annotations

import math

import torch

BITS = (8, 4)
GROUP_SIZE = 128
BLOCK = 128  # columns per lazy batch update (the paper's B)
DAMP = 0.01  # fraction of mean(diag H) added to the diagonal


def qmax(bits: int) -> int:
    if bits not in BITS:
        raise ValueError(f"bits must be one of {BITS}, got {bits}")
    return 2 ** (bits - 1) - 1


def n_groups(in_features: int, group_size: int) -> int:
    return math.ceil(in_features / group_size)


def group_scales(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-row scales of a (rows, cols) slice, rounded to float16 (zero rows get 1)."""
    s = w.abs().amax(dim=1) / qmax(bits)
    s = torch.where(s > 0, s, torch.ones_like(s))
    return s.to(torch.float16)


def round_to_grid(w: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer codes of ``w`` (rows, cols) or (rows,) on the grid of per-row ``scale``."""
    s = scale.to(w.dtype)
    s = s[:, None] if w.ndim == 2 else s
    m = qmax(bits)
    return torch.clamp(torch.round(w / s), -m, m)


def dequantize(q: torch.Tensor, scales: torch.Tensor, group_size: int) -> torch.Tensor:
    """Float32 weights (out, in) from int codes (out, in) and fp16 scales (out, groups)."""
    s = scales.to(torch.float32).repeat_interleave(group_size, dim=1)[:, : q.shape[1]]
    return q.to(torch.float32) * s


def quantize_rtn(w: torch.Tensor, bits: int, group_size: int = GROUP_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Round-to-nearest: int8 codes (out, in) and fp16 scales (out, groups)."""
    w = w.detach().to(torch.float32)
    codes, scales = torch.empty_like(w, dtype=torch.int8), []
    for g0 in range(0, w.shape[1], group_size):
        s = group_scales(w[:, g0 : g0 + group_size], bits)
        codes[:, g0 : g0 + group_size] = round_to_grid(w[:, g0 : g0 + group_size], s, bits).to(torch.int8)
        scales.append(s)
    return codes, torch.stack(scales, dim=1)


class Hessian:
    """Running H = 2/n sum x x^T over a layer's inputs (float64, so 200 frames x tokens stay exact)."""

    def __init__(self, in_features: int) -> None:
        self.h = torch.zeros(in_features, in_features, dtype=torch.float64)
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).to(torch.float64)
        if x.shape[1] != self.h.shape[0]:
            raise ValueError(f"calibration input has {x.shape[1]} features, layer takes {self.h.shape[0]}")
        self.h += x.T @ x
        self.n += x.shape[0]

    def matrix(self) -> torch.Tensor:
        if self.n == 0:
            raise ValueError("no calibration input reached this layer")
        return (2.0 / self.n) * self.h


def quantize_gptq(
    w: torch.Tensor, hessian: torch.Tensor, bits: int, group_size: int = GROUP_SIZE,
    damp: float = DAMP, block: int = BLOCK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GPTQ (Algorithm 1 of the paper): int8 codes (out, in) and fp16 scales (out, groups)."""
    W = w.detach().to(torch.float64).clone()
    H = hessian.detach().to(torch.float64).clone()
    cols = W.shape[1]
    if H.shape != (cols, cols):
        raise ValueError(f"Hessian is {tuple(H.shape)} for a layer with {cols} input features")
    # Blocks hold whole groups, so a group's scales always see its columns' current values.
    block = max(group_size, block // group_size * group_size)
    dead = torch.diag(H) == 0  # inputs that never fire: any value is exact, zero them
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += damp * torch.mean(torch.diag(H)) * torch.eye(cols, dtype=H.dtype)
    Hinv = torch.cholesky_inverse(torch.linalg.cholesky(H))
    U = torch.linalg.cholesky(Hinv, upper=True)  # rows of U carry the error to later columns

    codes = torch.zeros_like(W)
    scales = []
    for b0 in range(0, cols, block):
        b1 = min(b0 + block, cols)
        Wb, Ub = W[:, b0:b1], U[b0:b1, b0:b1]  # views: updates land in W
        err = torch.zeros_like(Wb)
        for j in range(b1 - b0):
            if (b0 + j) % group_size == 0:
                s = group_scales(Wb[:, j : j + group_size], bits)
                scales.append(s)
            q = round_to_grid(Wb[:, j], s, bits)
            codes[:, b0 + j] = q
            e = (Wb[:, j] - q * s.to(W.dtype)) / Ub[j, j]
            Wb[:, j:] -= e[:, None] * Ub[j, j:][None, :]
            err[:, j] = e
        W[:, b1:] -= err @ U[b0:b1, b1:]  # the lazy batch update of the columns after the block
    return codes.to(torch.int8), torch.stack(scales, dim=1)


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """Pack int codes in [-8, 7] two per byte along the last axis (even column = low nibble)."""
    if codes.numel() and (codes.min() < -8 or codes.max() > 7):
        raise ValueError("int4 codes must lie in [-8, 7]")
    u = (codes.to(torch.int16) + 8).to(torch.uint8)
    if u.shape[-1] % 2:
        u = torch.nn.functional.pad(u, (0, 1), value=8)
    return u[..., 0::2] | (u[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor, columns: int) -> torch.Tensor:
    """Inverse of ``pack_int4``: int8 codes with ``columns`` entries along the last axis."""
    lo = (packed & 0x0F).to(torch.int8) - 8
    hi = (packed >> 4).to(torch.int8) - 8
    return torch.stack([lo, hi], dim=-1).reshape(*packed.shape[:-1], -1)[..., :columns]
