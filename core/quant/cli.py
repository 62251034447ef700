"""``scenescope quantize``: weight-only INT8/INT4 encoders (core.quant)."""

from __future__ import annotations

import argparse


def cmd_quantize(a: argparse.Namespace) -> None:
    from core.quant.export import quantize_to_folder

    out = quantize_to_folder(a.model, bits=a.bits, out=a.out, method=a.method, calibration=a.calibration,
                             group_size=a.group_size, seed=a.seed, progress=True)
    print(f"wrote {out} (load it as file:{out})")


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("quantize", help="weight-only INT8/INT4 quantization of a model's vision encoder")
    s.add_argument("--model", default="scenescope-tiny", help="registry name of the model to quantize")
    s.add_argument("--bits", type=int, choices=(8, 4), required=True)
    s.add_argument("--method", choices=("rtn", "gptq"), default="gptq", help="round-to-nearest or GPTQ")
    s.add_argument("--calibration", type=int, default=200, help="synthetic calibration frames (GPTQ)")
    s.add_argument("--group-size", type=int, default=128, help="input columns sharing one scale")
    s.add_argument("--seed", type=int, default=4242, help="calibration data seed")
    s.add_argument("--out", required=True, help="new folder for the file: model")
    s.set_defaults(fn=cmd_quantize)
