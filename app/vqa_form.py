"""The Train page's VLM training job (issue 19, kind ``train-vqa``): its options in words, and the
finished job's losses and how to ask with the new VLM. Drawn by app/views/train.py when the job
kind is 'train-vqa'; reaches core only through app.handlers."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import widgets

# The bundled VLM's recipe (`make vqa-asset`) as the form's starting values: a run that fits a CPU.
MAIN = {"stage2_epochs": ("Question-answer epochs (stage 2)", 3), "max_frames": ("Most frames", 2000),
        "max_rows": ("Most questions", 6000)}
MORE = {"text_epochs": ("Language warm-up epochs", 1), "stage1_epochs": ("Alignment epochs (stage 1)", 2),
        "hidden": ("Language model width", 96), "layers": ("Language model layers", 2),
        "heads": ("Attention heads", 4), "intermediate": ("MLP width", 256), "vocab_size": ("Vocabulary", 512),
        "batch_size": ("Questions per step", 32), "seed": ("Random seed", 0)}
RATES = {"lr_align": ("Learning rate (projector)", 2e-3), "lr_qa": ("Learning rate (language model)", 2e-3),
         "keep_ratio": ("Share of patch tokens kept", 0.25)}


def vqa_form(eng: Any) -> tuple[dict[str, Any], bool]:
    """The VLM training job's options; returns (job spec, whether Start was pressed)."""
    data, tower = widgets.data_and_model_pickers(
        eng, ("vqa_data", "vqa_tower"),
        ("Dataset with questions", "A dataset written by `scenescope synth --qa` (its qa.jsonl)"),
        ("Vision tower (frozen)", "The registry model whose patch tokens the VLM reads"))
    with st.form("vqa_form", border=True):
        cols = st.columns(len(MAIN))
        options: dict[str, Any] = {k: int(col.number_input(label, value=v, step=1, min_value=1, key=f"vqa_{k}"))
                                   for (k, (label, v)), col in zip(MAIN.items(), cols, strict=True)}
        with st.expander("All options (defaults shown)"):
            grid = st.columns(3)
            for i, (k, (label, v)) in enumerate(MORE.items()):
                options[k] = int(grid[i % 3].number_input(label, value=v, step=1, min_value=0, key=f"vqa_{k}"))
            for i, (k, (label, v)) in enumerate(RATES.items()):
                options[k] = float(grid[i % 3].number_input(label, value=v, format="%g", key=f"vqa_{k}"))
        started = st.form_submit_button("Start training the VLM", type="primary", icon=":material/play_arrow:")
    spec = {"kind": "train-vqa", "data_dir": data, "base_model": tower, "options": options, "compare": False,
            "maps": False}
    return spec, started


def vqa_result(status: dict[str, Any]) -> None:
    """A finished VLM training job's losses and where its VLM is."""
    if (status.get("spec") or {}).get("kind") != "train-vqa" or status.get("state") != "finished":
        return
    r = status.get("result") or {}
    st.subheader("The trained VLM")
    m = st.columns(3)
    m[0].metric("QA loss before", f"{r['loss_before']:.3f}" if r.get("loss_before") is not None else "—")
    m[1].metric("QA loss after", f"{r['loss_after']:.3f}" if r.get("loss_after") is not None else "—")
    m[2].metric("Held-out (val) loss", f"{r['val_loss']:.3f}" if r.get("val_loss") is not None else "—")
    st.caption(f"Saved in `{r.get('model_dir')}`. Ask with it: `scenescope ask IMAGE \"QUESTION\" --answerer vlm "
               f"--vlm {r.get('model_dir')}`; score it: `scenescope eval-vqa --data DIR --answerer vlm --vlm ...`.")
