"""Weight-only quantization (RTN and GPTQ, INT8 and INT4) of a CLIP model's linear layers.

``core.quant.gptq`` quantizes one weight matrix, ``core.quant.model`` every linear layer of a
module, ``core.quant.storage`` reads and writes the safetensors format the registry loads, and
``core.quant.export`` writes a `file:` model folder (`scenescope quantize`).
"""

from __future__ import annotations

import importlib

# Names load on first use (PEP 562): the command line imports this package's cli module to build its
# parser, and `scenescope --help` must not pay for torch or numpy.
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


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
