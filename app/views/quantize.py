"""Quantize: the current model's vision encoder at INT8/INT4, measured before and after."""

from __future__ import annotations

import streamlit as st

from app import handlers, state, widgets

widgets.page_header("Quantize", "Shrink or speed up the vision encoder: weight-only INT8/INT4 (round-to-nearest "
                    "or GPTQ) or ONNX Runtime INT8, measured against FP32 on fresh synthetic frames.")
eng = state.engine()
name = getattr(eng.model, "name", None) or eng.model.identity.split("@")[0]
variant = st.selectbox("Quantization", handlers.quant_variants(), key="quant_variant",
                       help="Weight-only variants save disk and run float32 kernels; the ONNX Runtime ones run "
                            "int8 matrix products")
st.caption(f"Model {eng.model.identity}. Data: {handlers.QUANT_SIZES['index']} indexed + "
           f"{handlers.QUANT_SIZES['queries']} query frames and {handlers.QUANT_SIZES['clips']} clips of 5 frames; "
           "GPTQ and static ONNX calibrate on "
           f"{handlers.QUANT_SIZES['calibration']} frames. Same as `scenescope quantize` + `bench/quantize.py`.")
if st.button("Quantize and measure", key="quant_run", type="primary"):
    bar = st.progress(0.0, text="Starting…")
    st.session_state["quant_result"] = (variant, handlers.quantize_compare(
        name, variant, lambda f, s: bar.progress(f, text=s)))
result = st.session_state.get("quant_result")
if result is None:
    st.info("Pick a quantization and press Quantize and measure.", icon=":material/compress:")
    st.stop()
done, rows = result
if isinstance(rows, str):
    st.error(rows, icon=":material/error:")
    st.stop()
st.subheader(f"Before / after · {done}")
st.dataframe(handlers.quant_table(rows), hide_index=True, width="stretch", key="quant_table",
             column_config={"file MB": st.column_config.NumberColumn(format="%.1f"),
                            "ms / image (CPU, 1 thread)": st.column_config.NumberColumn(format="%.2f"),
                            "speed-up": st.column_config.NumberColumn(format="%.2fx"),
                            **{k: st.column_config.NumberColumn(format="%.1f") for k in
                               ("R@1", "R@5", "R@10", "clip R@1 (meanP)", "clip R@1 (AFA)")},
                            "k-NN macro F1": st.column_config.NumberColumn(format="%.3f")})
st.caption("R@k: text-to-frame (each schema sentence of the query frames; ties ranked pessimistically). Clip R@1: "
           "each fresh clip's held-out caption against all the clips, their vectors pooled from each encoder's frame "
           "vectors by meanP and by the index's AFA student. k-NN: "
           "query frames voted by the indexed frames embedded by the same encoder (k=5). Time: best of 3 on one "
           "thread, CPU time.")
