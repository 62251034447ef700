"""The INT8 speed path on CPU: the vision encoder exported to ONNX, dynamically quantized, run by ONNX Runtime.

The weight-only models of ``core.quant.model`` shrink the file but run in float32 (PyTorch has no
CPU kernels for int4/int8 weights that we can rely on; ``torch.ao.quantization`` is deprecated).
Here ONNX Runtime's ``quantize_dynamic`` stores the MatMul/Gemm weights as int8 and quantizes each
activation on the fly, so the matrix products themselves run in int8 (VNNI / AVX512 kernels).
Export goes through ``torch.onnx.export(dynamo=True)``, the supported exporter (torch.export based).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from core.atomic import atomic_path


def export_vision(clip: torch.nn.Module, image_size: tuple[int, int], path: str | Path) -> Path:
    """Write ``clip.visual`` as one ONNX file taking (batch, 3, H, W) pixels, any batch size."""
    path = Path(path)
    visual = clip.visual.eval()
    example = torch.zeros(2, 3, *image_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # torch.onnx prints its progress at INFO; the bench and CLI have their own.
    logging.getLogger("torch.onnx").setLevel(logging.WARNING)
    with atomic_path(path, suffix=".onnx") as tmp:
        torch.onnx.export(visual, (example,), str(tmp), input_names=["pixels"], output_names=["features"],
                          dynamic_shapes=({0: batch},), dynamo=True, external_data=False, verbose=False)
    return path


def quantize_int8(src: str | Path, dst: str | Path) -> Path:
    """ONNX Runtime dynamic quantization: int8 weights (per output channel), activations at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst = Path(dst)
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic warns to pre-process on the root logger
    with atomic_path(dst, suffix=".onnx") as tmp:
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
    return dst


class OrtEncoder:
    """An exported vision encoder run by ONNX Runtime: preprocessed pixels in, unit vectors out."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def embed_batch(self, pixels: torch.Tensor | np.ndarray) -> np.ndarray:
        x = pixels.numpy() if isinstance(pixels, torch.Tensor) else np.asarray(pixels)
        out = self.session.run(None, {"pixels": x.astype(np.float32, copy=False)})[0]
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def int8_encoder(clip: torch.nn.Module, image_size: tuple[int, int], folder: str | Path | None = None) -> OrtEncoder:
    """Export, quantize and open the INT8 encoder (in ``folder``, else a temporary one)."""
    folder = Path(folder or tempfile.mkdtemp(prefix="scenescope-ort-"))
    fp32 = export_vision(clip, image_size, folder / "vision.onnx")
    return OrtEncoder(quantize_int8(fp32, folder / "vision.int8.onnx"))
