"""The Quantize page: one quantized encoder measured beside its FP32 source (core.quant.compare)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

QUANT_SIZES = {"index": 300, "queries": 150, "calibration": 200, "clips": 60}  # frames (clips of 5); minutes on 2 cores


def quant_variants() -> list[str]:
    from core.quant.compare import VARIANTS

    return list(VARIANTS)


def quantize_compare(model_name: str, variant: str, progress: Callable[[float, str], None] | None = None,
                     sizes: dict[str, int] | None = None) -> list[dict] | str:
    """[FP32 row, quantized row], or one readable line when the variant cannot be made."""
    from core.quant.compare import compare_quantized

    sizes = {**QUANT_SIZES, **(sizes or {})}
    try:
        return compare_quantized(model_name, variant, progress=progress, **sizes)
    except (ValueError, OSError, RuntimeError) as e:
        return f"Could not quantize {model_name} ({variant}): {e}"


def quant_table(rows: list[dict]) -> pd.DataFrame:
    """The before/after table, columns named for people (clip columns when the rows measured clips)."""
    def clip_cols(r: dict) -> dict:
        if "clip_r1" not in r:
            return {}
        return {"clip R@1 (meanP)": r["clip_r1"], **({"clip R@1 (AFA)": r["clip_r1_afa"]}
                                                     if r.get("clip_r1_afa") is not None else {})}

    return pd.DataFrame([{
        "encoder": r["variant"], "file MB": r["file_mb"], "ms / image (CPU, 1 thread)": r["ms_per_image"],
        "speed-up": r["speedup"], "R@1": r["r1"], "R@5": r["r5"], "R@10": r["r10"], **clip_cols(r),
        "k-NN macro F1": r["knn_f1"],
    } for r in rows])
