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


class _PixelReader:
    """Calibration batches for ONNX Runtime's static quantization (its CalibrationDataReader protocol)."""

    def __init__(self, pixels: np.ndarray, batch: int = 16) -> None:
        self._batches = iter([{"pixels": pixels[i:i + batch].astype(np.float32)}
                              for i in range(0, len(pixels), batch)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def quantize_int8_static(src: str | Path, dst: str | Path, calibration: np.ndarray,
                         ops: tuple[str, ...] = ("MatMul", "Gemm", "Conv")) -> Path:
    """ONNX Runtime static quantization: int8 weights per output channel and int8 activations with
    scales fixed from ``calibration`` pixels (QDQ format), so no activation is quantized at run time
    (the cost that ate the dynamic path's gain on this small encoder). Only ``ops`` are quantized."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    dst = Path(dst)
    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="scenescope-ort-") as work:
        pre = Path(work) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        with atomic_path(dst, suffix=".onnx") as tmp:
            quantize_static(str(pre), str(tmp), _PixelReader(np.asarray(calibration)),
                            quant_format=QuantFormat.QDQ, op_types_to_quantize=list(ops), per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    return dst


def quantize_int8_fused(src: str | Path, dst: str | Path, heads: int, width: int) -> Path:
    """ONNX Runtime's transformer optimizer first (fused LayerNorm + residual, bias + GELU, attention
    where its pattern matches), then dynamic INT8: fewer, larger kernels around the int8 products."""
    from onnxruntime.transformers import optimizer

    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix="scenescope-ort-") as work:
        fused = Path(work) / "fused.onnx"
        optimizer.optimize_model(str(src), model_type="vit", num_heads=heads, hidden_size=width,
                                 opt_level=1).save_model_to_file(str(fused))
        return quantize_int8(fused, dst)
