"""Weight-only quantization (RTN and GPTQ, INT8 and INT4) of a CLIP model's linear layers.

``core.quant.gptq`` quantizes one weight matrix, ``core.quant.model`` every linear layer of a
module, ``core.quant.storage`` reads and writes the safetensors format the registry loads, and
``core.quant.export`` writes a `file:` model folder (`scenescope quantize`).
"""

from core.quant.gptq import dequantize, pack_int4, quantize_gptq, quantize_rtn, unpack_int4
from core.quant.model import QuantizedWeight, linear_targets, quantize_module
from core.quant.storage import QUANT_WEIGHTS, is_quantized, load_quantized, save_quantized

__all__ = [
    "QUANT_WEIGHTS", "QuantizedWeight", "dequantize", "is_quantized", "linear_targets", "load_quantized",
    "pack_int4", "quantize_gptq", "quantize_module", "quantize_rtn", "save_quantized", "unpack_int4",
]
