"""Train: fine-tune a model on a dataset in the background, watch it, then compare before/after."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app import adapt_form, finetune_form, handlers, state, vqa_form, widgets, words

JOB_ERRORS = handlers.job_errors()
ACTIVE = ("queued", "running")
# Material icons come with Streamlit's bundled font (emoji need a system emoji font).
STATE_ICON = {"queued": ":material/schedule:", "running": ":material/directions_run:",
              "finished": ":green[:material/check_circle:]", "failed": ":red[:material/error:]",
              "cancelled": ":material/stop_circle:", "interrupted": ":orange[:material/warning:]"}
# What the worker is doing, in words (phases of the compare step not listed read as their name).
PHASE_WORDS = {"starting": "starting", "subset": "picking the training subset", "loading": "loading the model and frames", "validating": "validating",
               "training": "training", "epoch_done": "epoch done", "wise_ft": "choosing the WiSE-FT blend",
               "trained": "trained", "saving": "saving the model"}
POLL_S = 2.0

widgets.page_header("Train", "Fine-tune a model on a labelled dataset in the background; follow its loss "
                    "and validation F1, cancel or resume it, then compare the model before and after.")
eng = state.engine()
schema = eng.schema


def _curves(log: list[dict[str, Any]]) -> go.Figure:
    df = pd.DataFrame(log)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if len(df) and "loss" in df:
        fig.add_scatter(x=df["epoch"], y=df["loss"], name="train loss", mode="lines+markers",
                        line={"color": widgets.PALETTE[0]})
    if len(df) and "val_f1" in df and df["val_f1"].notna().any():
        fig.add_scatter(x=df["epoch"], y=df["val_f1"], name="val macro F1", mode="lines+markers",
                        line={"color": widgets.PALETTE[2]}, secondary_y=True)
    fig.update_layout(height=280, margin={"l": 10, "r": 10, "t": 10, "b": 10}, plot_bgcolor="white",
                      legend={"orientation": "h", "y": 1.12})
    fig.update_xaxes(title="epoch", dtick=1, showgrid=True, gridcolor="#eee")
    fig.update_yaxes(title="loss", secondary_y=False, gridcolor="#eee")
    fig.update_yaxes(title="val F1", secondary_y=True, range=[0, 1])
    return fig


def _progress(s: dict[str, Any]) -> float:
    epochs, spe = s.get("epochs") or 0, s.get("steps_per_epoch") or 0
    if s.get("state") == "finished":
        return 1.0
    if not epochs or not spe or not s.get("epoch"):
        return 0.0
    return float(min(1.0, ((s["epoch"] - 1) * spe + (s.get("step") or 0)) / (epochs * spe)))


def state_words(s: dict[str, Any]) -> str:
    """The job's state said once, with what it is doing while it runs: ``running · training``,
    ``running · stopping``, ``cancelled`` (never ``cancelled · cancelled``)."""
    state_ = s["state"]
    if state_ in ACTIVE and s.get("cancel_requested"):
        return f"{state_} · stopping"
    phase = s.get("phase")
    if state_ not in ACTIVE or not phase or phase == state_:
        return state_
    return f"{state_} · {PHASE_WORDS.get(phase, str(phase).replace('_', ' '))}"


def _progress_text(s: dict[str, Any]) -> str:
    text = f"epoch {s.get('epoch') or 0} of {s.get('epochs') or '?'}"
    if s["state"] in ACTIVE and s.get("steps_per_epoch") and s.get("step"):
        text += f" · step {s['step']} of {s['steps_per_epoch']}"
    return text


def _rate(x: float | None) -> str:
    return "—" if not x else f"{x:.1f}" if x < 10 else f"{x:.0f}"


def _status_panel(s: dict[str, Any]) -> None:
    job_id = s["job_id"]
    st.markdown(f"#### {STATE_ICON.get(s['state'], '')} `{job_id}` · {state_words(s)}")
    st.progress(_progress(s), text=_progress_text(s))
    m = st.columns(4)
    m[0].metric("Loss", f"{s['loss']:.4f}" if s.get("loss") is not None else "—")
    m[1].metric("Val macro F1", f"{s['val_f1']:.3f}" if s.get("val_f1") is not None else "—")
    m[2].metric("Training images/s", _rate(s.get("images_per_s")))
    m[3].metric("Time left", words.duration(s["eta_s"]) if s["state"] == "running" and s.get("eta_s") else "—")
    if s.get("images_per_s"):
        st.caption(f"Speed limited by: {handlers.job_limits(s)}")
    if s.get("log"):
        st.plotly_chart(_curves(s["log"]), width="stretch", config={"displayModeBar": False},
                        key=f"train_curves_{job_id}")
    if s.get("error"):
        st.error(s["error"], icon=":material/error:")
    b1, b2, _ = st.columns([1, 1, 4])
    if s["state"] in ACTIVE and not s.get("cancel_requested"):
        # Callbacks run before the rerun draws, so the page drawn after a click shows the new state.
        b1.button("Cancel", key=f"train_cancel_{job_id}", icon=":material/stop:", on_click=_act,
                  args=(handlers.cancel_job, job_id, "Cancelled; the last finished epoch is kept for a resume."))
    if s["state"] in ("interrupted", "cancelled", "failed"):
        b2.button("Resume", key=f"train_resume_{job_id}", icon=":material/replay:", on_click=_act,
                  args=(handlers.resume_job, job_id, "Resumed from the last epoch checkpoint."))
    spec = s.get("spec") or {}
    st.caption(f"Dataset `{spec.get('data_dir')}` · starting model `{spec.get('base_model')}` · "
               f"new model goes to `{spec.get('out_dir')}`")


def _act(fn: Any, job_id: str, done: str) -> None:
    try:
        fn(job_id)
        st.session_state["train_msg"] = ("toast", done)
    except JOB_ERRORS as e:
        st.session_state["train_msg"] = ("error", str(e))


def _message() -> None:
    kind, text = st.session_state.pop("train_msg", (None, None))
    if kind == "toast":
        st.toast(text)
    elif kind == "error":
        st.error(text, icon=":material/error:")


def _maps(cmp: Any, job_id: str) -> None:
    before, after = cmp.maps.get("before"), cmp.maps.get("after")
    if before is None or after is None:
        st.caption("No maps in this comparison.")
        return
    meta = handlers.job_index_meta(job_id)  # None: the job's index is gone, the maps are drawn uncoloured
    by = st.selectbox("Colour both maps by", schema.names, format_func=lambda a: schema[a].display,
                      key="train_map_color")
    values = meta[by].astype(str).to_numpy() if meta is not None and len(meta) == len(before) \
        else np.full(len(before), "unknown")
    colors = widgets.value_colors(schema, by)
    fig = make_subplots(1, 2, subplot_titles=(f"before · {cmp.labels.get('before', '')}",
                                              f"after (aligned) · {cmp.labels.get('after', '')}"))
    for v in [v for v in [*schema[by].value_names, "unknown"] if v in set(values)]:
        mask = values == v
        for col, xy in ((1, before), (2, after)):
            fig.add_trace(go.Scattergl(x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=schema.display(by, v),
                                       legendgroup=v, showlegend=col == 1,
                                       marker={"size": 5, "color": colors.get(v), "opacity": 0.8}), 1, col)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=460, margin={"l": 0, "r": 0, "t": 30, "b": 0}, plot_bgcolor="white",
                      legend={"orientation": "h", "y": -0.05})
    st.plotly_chart(fig, width="stretch", key="train_maps_chart")
    st.caption(f"Procrustes disparity {cmp.maps.get('disparity', float('nan')):.3f} (0: same shape).")


def _comparison(job_id: str) -> None:
    cmp = handlers.job_comparison(job_id)
    if cmp is None:
        return
    st.subheader("Before / after")
    m = st.columns(3)
    m[0].metric("Macro F1 before", f"{cmp.macro_f1_before:.3f}")
    m[1].metric("Macro F1 after", f"{cmp.macro_f1_after:.3f}", delta=f"{cmp.delta:+.3f}")
    m[2].metric("Failures fixed / new", f"{len(cmp.fixed)} / {len(cmp.new_failures)}")
    f1 = cmp.attributes.rename(columns={"display": "Attribute", "f1_before": "F1 before", "f1_after": "F1 after",
                                        "delta": "Δ F1", "n": "N"}).drop(columns=["attribute"])
    st.dataframe(f1, hide_index=True, width="stretch", key="train_f1_table",
                 column_config={"Δ F1": st.column_config.NumberColumn(format="%+.3f"),
                                "F1 before": st.column_config.NumberColumn(format="%.3f"),
                                "F1 after": st.column_config.NumberColumn(format="%.3f")})

    def classes(df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"Attribute": [schema[a].display for a in df["attribute"]], "Class": df["display"],
                             "F1 before": df["f1_before"], "F1 after": df["f1_after"], "Δ": df["delta"],
                             "Support": df["support"]})

    fmt = {"F1 before": st.column_config.NumberColumn(format="%.3f"),
           "F1 after": st.column_config.NumberColumn(format="%.3f"),
           "Δ": st.column_config.NumberColumn(format="%+.3f")}

    def failures(df: pd.DataFrame, after_col: str) -> pd.DataFrame:
        return pd.DataFrame({"Row": df["row"], "Scene": df["path"],
                             "Attribute": [schema[a].display for a in df["attribute"]],
                             "Truth": [schema.display(a, v) for a, v in zip(df["attribute"], df["truth"], strict=True)],
                             after_col: [schema.display(a, v) for a, v in
                                         zip(df["attribute"], df["before" if after_col == "Was" else "after"],
                                             strict=True)]})

    c1, c2 = st.columns(2, gap="large")
    c1.markdown(f"**Improved classes** ({len(cmp.improved)})")
    c1.dataframe(classes(cmp.improved), hide_index=True, width="stretch", key="train_improved", column_config=fmt)
    c2.markdown(f"**Regressed classes** ({len(cmp.regressed)})")
    c2.dataframe(classes(cmp.regressed), hide_index=True, width="stretch", key="train_regressed",
                 column_config=fmt)
    c1.markdown(f"**Fixed failures** ({len(cmp.fixed)})")
    c1.dataframe(failures(cmp.fixed, "Was"), hide_index=True, width="stretch", key="train_fixed")
    c2.markdown(f"**New failures** ({len(cmp.new_failures)})")
    c2.dataframe(failures(cmp.new_failures, "Now"), hide_index=True, width="stretch", key="train_new")
    st.subheader("Maps, side by side")
    _maps(cmp, job_id)


jobs = handlers.list_jobs()
# Two kinds of job: fine-tuning on labels, or adapting to the user's own unlabelled footage (app/adapt_form.py).
KINDS = {"finetune": "Fine-tune on a labelled dataset", "adapt": "Adapt to your unlabelled footage",
         "train-vqa": "Train the question-answering VLM"}  # app/vqa_form.py
kind = st.radio("Job", list(KINDS), key="train_kind", horizontal=True, format_func=KINDS.get,
                help="Adapting teaches the model the look of your own footage without labels (domain-adversarial "
                     "alignment + distillation), and reports familiarity and votes on it before and after.")
FORMS = {"adapt": adapt_form.adapt_form, "train-vqa": vqa_form.vqa_form}
spec, started = FORMS[kind](eng) if kind in FORMS else finetune_form.finetune_form(eng, jobs)
if started:
    try:
        st.session_state["train_job"] = handlers.start_job(spec)
        st.session_state.pop("train_pick", None)  # the picker moves to the new job
        st.toast(f"Started {st.session_state['train_job']}")
        jobs = handlers.list_jobs()
    except JOB_ERRORS as e:
        st.error(str(e), icon=":material/error:")

if not jobs:
    st.info("No fine-tuning jobs yet in workspace/. Pick a dataset and start one above.",
            icon=":material/model_training:")
    st.stop()
was_active = any(j["state"] in ACTIVE for j in jobs)


def _picked() -> None:
    st.session_state["train_job"] = st.session_state["train_pick"]


@st.fragment(run_every=POLL_S if was_active else None)
def live() -> None:
    """The job picker and the picked job's panel, redrawn from fresh status every poll so the
    picker's labels and the header always show the current state."""
    _message()
    fresh = handlers.list_jobs()
    by_id = {j["job_id"]: j for j in fresh}
    ids = list(by_id)
    # The picked job lives in train_job and is set on the picker each draw: the picker's labels
    # change with the jobs' states, and a widget whose labels change can fall back to another job.
    current = st.session_state.get("train_job")
    st.session_state["train_pick"] = current if current in ids else ids[0]
    job_id = st.selectbox("Job", ids, key="train_pick", on_change=_picked,
                          format_func=lambda i: f"{i} · {state_words(by_id[i])}" if i in by_id else i)
    s = by_id.get(job_id) or fresh[0]
    _status_panel(s)
    if any(j["state"] in ACTIVE for j in fresh) != was_active:
        st.rerun(scope="app")  # a job ended (stop polling) or started (start polling)
    if s["state"] == "finished":
        _comparison(s["job_id"])
        adapt_form.adapt_result(s, schema)
        vqa_form.vqa_result(s)


live()
