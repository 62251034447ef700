"""The Train page's adaptation job (issue 20): its options in words, and the finished job's
before/after table on the target footage. Drawn by app/views/train.py when the job kind is
'adapt'; reaches core only through app.handlers."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import handlers, widgets

FIELDS, OPTION_HELP = handlers.adapt_fields()
MAIN = ("epochs", "domain_lambda", "lr", "batch_size")
LABELS = {
    "epochs": "Epochs", "lr": "Learning rate (encoder)", "head_lr": "Learning rate (new heads)",
    "weight_decay": "Weight decay", "batch_size": "Source frames per step", "warmup_fraction": "Warm-up (share of steps)",
    "domain_lambda": "Alignment strength (gradient reversal)", "ramp": "Ramp the alignment up over the run",
    "token_weight": "Weight of the patch-token alignment", "distill_weight": "Weight of staying close to the start model",
    "attribute_loss": "Weight of the attribute heads", "augment": "Camera-like augmentation of source frames",
    "randomize": "Randomize camera and lens too",
    "max_target_frames": "Most target frames used", "target_fps": "Frames per second taken from target clips",
    "precision": "Precision", "seed": "Random seed", "device": "Device", "workers": "Frame-decoding workers",
}


def _input(f: Any, col: Any) -> Any:
    key, label, tip = f"adapt_opt_{f.name}", LABELS.get(f.name, f.name), OPTION_HELP.get(f.name)
    if f.name == "precision":
        return col.selectbox(label, ["fp32", "bf16", "fp16"], key=key, help=tip)
    if isinstance(f.default, bool):
        return col.checkbox(label, value=f.default, key=key, help=tip)
    if isinstance(f.default, int):
        return int(col.number_input(label, value=f.default, step=1, key=key, help=tip))
    if isinstance(f.default, float):
        return float(col.number_input(label, value=f.default, format="%g", key=key, help=tip))
    return col.text_input(label, value=str(f.default), key=key, help=tip)


def adapt_form(eng: Any) -> tuple[dict[str, Any], bool]:
    """The adaptation job's options; returns (job spec, whether Start was pressed)."""
    data, base = widgets.data_and_model_pickers(
        eng, ("adapt_data", "adapt_base"),
        ("Labelled source dataset", "Its train split keeps the task learnt while the look adapts"),
        ("Model to adapt", "A registry name: scenescope-tiny, file:<folder>, ..."))
    with st.form("adapt_form", border=True):
        target = st.text_area(
            "Your unlabelled footage", key="adapt_target", height=80,
            placeholder="One path per line: a folder of images or clips, an image, or a clip",
            help="Frames the model should learn to see like the synthetic world. No labels needed; "
                 "never put evaluation frames here.")
        fields = {f.name: f for f in FIELDS}
        cols = st.columns(len(MAIN))
        options = {n: _input(fields[n], col) for n, col in zip(MAIN, cols, strict=True)}
        with st.expander("All options (defaults shown)"):
            grid = st.columns(3)
            for i, f in enumerate(f for f in FIELDS if f.name not in MAIN):
                options[f.name] = _input(f, grid[i % 3])
            o1, o2 = st.columns(2)
            index = o1.text_input("Index to measure against (optional)", key="adapt_index",
                                  help="An index built with the model to adapt; default: the source dataset")
            labels = o2.text_input("Labels of the target frames (optional CSV)", key="adapt_labels",
                                   help="file,<attribute>... columns: adds accuracy before/after (evaluation only)")
        started = st.form_submit_button("Start adapting", type="primary", icon=":material/play_arrow:")
    spec = {"kind": "adapt", "data_dir": data, "base_model": base, "options": options, "compare": False,
            "maps": False, "target": [t.strip() for t in target.splitlines() if t.strip()],
            "index": index.strip() or None, "labels": labels.strip() or None}
    return spec, started


def adapt_result(status: dict[str, Any], schema: Any) -> None:
    """A finished adaptation job's before/after table and where its votes moved."""
    if (status.get("spec") or {}).get("kind") != "adapt" or status.get("state") != "finished":
        return
    summary = handlers.adapt_summary(status["job_id"])
    if summary is None:
        return
    st.subheader("Before / after on your footage")
    st.dataframe(handlers.adapt_table(summary), hide_index=True, width="stretch", key="adapt_table")

    def shares(attr: str, d: dict[str, float]) -> str:
        return ", ".join(f"{schema.display(attr, v)} {100 * s:.0f}%" for v, s in d.items())

    rows = [{"Attribute": schema[attr].display, "Votes before": shares(attr, before),
             "Votes after": shares(attr, summary["after"].get("votes", {}).get(attr, {}))}
            for attr, before in summary["before"]["votes"].items()]
    st.markdown("**Where the votes lean** (share of your frames)")
    st.dataframe(rows, hide_index=True, width="stretch", key="adapt_votes")
    st.caption(f"New model `{summary.get('identity')}`; load it as `file:{summary.get('model_dir')}`.")
