"""Quantized weights on disk: one safetensors file holding int codes, fp16 scales and the rest.

For each quantized weight ``K`` the file holds ``K.qcodes`` (int8 codes, or for 4 bits uint8 with
two codes per byte, see ``core.quant.gptq.pack_int4``) and ``K.qscales`` (float16, one per output
row and group); its header metadata, one JSON entry (safetensors stores metadata in a hash map, so
several entries would be written in a varying order and the same weights would get a new digest,
i.e. a new model identity, on every save), names the format, bits, group size, method and each
quantized key's shape. Every other state-dict tensor is stored as it is, in float16 where that is exact
(the bundled model is stored in float16) and float32 otherwise. The loader rebuilds float32
weights (codes x scales) and loads the full state dict strictly into the open_clip model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from core.atomic import atomic_path
from core.quant.gptq import BITS, dequantize, pack_int4, qmax, unpack_int4
from core.quant.model import QuantizedWeight

QUANT_WEIGHTS = "open_clip_quantized.safetensors"
FORMAT = "scenescope-quant"
VERSION = "1"
META_KEY = "scenescope_quant"


def _compact(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().cpu().contiguous()
    if t.is_floating_point() and t.dtype != torch.float16:
        half = t.to(torch.float16)
        if torch.equal(half.to(t.dtype), t):
            return half
    return t


def save_quantized(path: str | Path, state: Mapping[str, torch.Tensor], quantized: Mapping[str, QuantizedWeight],
                   bits: int, method: str, extra: Mapping[str, str] | None = None) -> Path:
    """Write ``state`` with the ``quantized`` weights replaced by codes + scales (atomically)."""
    qmax(bits)  # validates bits
    missing = [k for k in quantized if k not in state]
    if missing:
        raise ValueError(f"quantized weight {missing[0]} is not in the model's state dict")
    tensors: dict[str, torch.Tensor] = {}
    shapes: dict[str, list[int]] = {}
    group_sizes = {q.group_size for q in quantized.values()}
    if len(group_sizes) > 1:
        raise ValueError(f"one group size per file, got {sorted(group_sizes)}")
    for k, v in state.items():
        if k not in quantized:
            tensors[k] = _compact(v)
            continue
        q = quantized[k]
        codes = q.codes.to(torch.int8).cpu()
        tensors[f"{k}.qcodes"] = pack_int4(codes).contiguous() if bits == 4 else codes.contiguous()
        tensors[f"{k}.qscales"] = q.scales.to(torch.float16).cpu().contiguous()
        shapes[k] = list(v.shape)
    meta = {"format": FORMAT, "version": VERSION, "bits": bits, "method": method,
            "group_size": group_sizes.pop(), "quantized": shapes, **(extra or {})}
    path = Path(path)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    return path


def read_metadata(path: str | Path) -> dict:
    """The quantization metadata of a weights file ({} for any other file)."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return {}
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception:  # not a safetensors file: let the normal loader say what is wrong
        return {}
    try:
        meta = json.loads(raw) if raw else {}
    except ValueError:
        raise ValueError(f"{path}: unreadable {META_KEY} metadata") from None
    return meta if isinstance(meta, dict) else {}


def is_quantized(path: str | Path) -> bool:
    return read_metadata(path).get("format") == FORMAT


def load_quantized_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Float32 state dict (quantized weights dequantized) and the file's metadata."""
    path = Path(path)
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path}: {FORMAT} version {meta.get('version')!r}, this code reads {VERSION}")
    try:
        bits, group = int(meta["bits"]), int(meta["group_size"])
        shapes = dict(meta["quantized"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: bad quantization metadata ({e})") from None
    if bits not in BITS:
        raise ValueError(f"{path}: {bits}-bit weights; this code reads {BITS}")
    raw = load_file(str(path))
    state: dict[str, torch.Tensor] = {}
    for k, shape in shapes.items():
        codes, scales = raw.pop(f"{k}.qcodes", None), raw.pop(f"{k}.qscales", None)
        if codes is None or scales is None:
            raise ValueError(f"{path}: {k} lacks its codes or scales")
        if len(shape) != 2:
            raise ValueError(f"{path}: {k} has shape {shape}; quantized weights are matrices")
        rows, cols = shape
        codes = unpack_int4(codes, cols) if bits == 4 else codes
        if tuple(codes.shape) != (rows, cols) or scales.shape[0] != rows:
            raise ValueError(f"{path}: {k} codes {tuple(codes.shape)} or scales {tuple(scales.shape)} "
                             f"do not fit its shape {shape}")
        state[k] = dequantize(codes, scales, group).reshape(shape)
    for k, v in raw.items():
        state[k] = v.to(torch.float32) if v.is_floating_point() else v
    return state, meta


def load_quantized(model: torch.nn.Module, path: str | Path, device: str = "cpu") -> dict:
    """Load a quantized file into an open_clip model (strict); returns the file's metadata."""
    state, meta = load_quantized_state(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[1:2] or [str(e)]
        raise ValueError(f"{path}: weights do not fit open_clip_config.json's model ({first[0].strip()})") from None
    model.to(device)
    return meta
