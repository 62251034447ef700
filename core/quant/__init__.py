"""Weight-only quantization (RTN and GPTQ, INT8 and INT4) of a CLIP model's linear layers.

``core.quant.gptq`` quantizes one weight matrix, ``core.quant.model`` every linear layer of a
module, ``core.quant.storage`` reads and writes the safetensors format the registry loads, and
``core.quant.export`` writes a `file:` model folder (`scenescope quantize`).
"""

from __future__ import annotations

from core.lazy import lazy_names

# Names load on first use (core.lazy): `scenescope --help` imports this package's cli module.
_WHERE = {
    "dequantize": "core.quant.gptq",
    "pack_int4": "core.quant.gptq",
    "quantize_gptq": "core.quant.gptq",
    "quantize_rtn": "core.quant.gptq",
    "unpack_int4": "core.quant.gptq",
    "QuantizedWeight": "core.quant.model",
    "linear_targets": "core.quant.model",
    "quantize_module": "core.quant.model",
    "QUANT_WEIGHTS": "core.quant.storage",
    "is_quantized": "core.quant.storage",
    "load_quantized": "core.quant.storage",
    "save_quantized": "core.quant.storage",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_names(__name__, _WHERE)
