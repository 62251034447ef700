"""Train: fine-tune a model on a dataset in the background, watch it, then compare before/after."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app import handlers, state, widgets

FIELDS, OPTION_HELP = handlers.finetune_fields()  # the fine-tuning options that have defaults, in order
JOB_ERRORS = handlers.job_errors()
MAIN_OPTIONS = 4  # the first FinetuneOptions fields (epochs, lr, ...) are shown; the rest fold away
ACTIVE = ("queued", "running")
# Material icons come with Streamlit's bundled font (emoji need a system emoji font).
STATE_ICON = {"queued": ":material/schedule:", "running": ":material/directions_run:",
              "finished": ":green[:material/check_circle:]", "failed": ":red[:material/error:]",
              "cancelled": ":material/stop_circle:", "interrupted": ":orange[:material/warning:]"}
POLL_S = 2.0

widgets.page_header("Train", "Fine-tune a model on a labelled dataset in the background; follow its loss "
                    "and validation F1, cancel or resume it, then compare the model before and after.")
eng = state.engine()
schema = eng.schema


def _option_input(f: dataclasses.Field, col: Any) -> Any:
    """One widget per FinetuneOptions field, its default prefilled (types read from the default)."""
    default, key, label = f.default, f"train_opt_{f.name}", f.name.replace("_", " ")
    tip = OPTION_HELP.get(f.name)
    if f.name == "lr":
        return _lr_input(col, label, key, tip)
    if isinstance(default, bool):
        return col.checkbox(label, value=default, key=key, help=tip)
    if isinstance(default, int):
        return int(col.number_input(label, value=default, step=1, key=key, help=tip))
    if isinstance(default, float):
        return float(col.number_input(label, value=default, format="%g", key=key, help=tip))
    if default is None:
        v = col.number_input(label, value=None, step=1, key=key, placeholder="off", help=tip)
        return None if v is None else int(v)
    if isinstance(default, tuple):
        text = col.text_input(label, value=", ".join(map(str, default)), key=key, help=tip)
        items = [t.strip() for t in text.split(",") if t.strip()]
        return tuple(float(t) for t in items) if all(isinstance(x, float) for x in default) else tuple(items)
    return col.text_input(label, value=str(default), key=key, help=tip)


def _lr_input(col: Any, label: str, key: str, tip: str | None) -> float | None:
    """The learning rate, empty by default: the base model's own default applies, shown with its source."""
    base = st.session_state.get("train_base") or eng.model.name
    try:
        value, source = handlers.finetune_defaults(base)["lr"]
        shown, why = f"default {value:g}", f"Left empty: {base}'s default {value:g}, {source}."
    except ValueError as e:  # a base name typed in that the registry does not know
        shown, why = "the base model's default", str(e)
    v = col.number_input(label, value=None, format="%g", key=key, placeholder=shown, help=f"{tip}\n\n{why}")
    return None if v is None else float(v)


def _options_form() -> tuple[dict[str, Any], bool]:
    fields = FIELDS
    datasets = handlers.list_datasets([eng.store.data_root])
    with st.form("train_form", border=True):
        c1, c2, c3 = st.columns([3, 2, 1])
        data = c1.selectbox("Dataset", [str(d) for d in datasets], key="train_data", accept_new_options=True,
                            help="A folder with a manifest; listed: the current index's dataset and workspace/*")
        models = handlers.list_models([eng.model.name])
        base = c2.selectbox("Base model", models, key="train_base", accept_new_options=True,
                            help="A registry name: scenescope-tiny, file:<folder>, openclip:<arch>/<tag>")
        split = c3.selectbox("Compare on", ["test", "val"], key="train_split")
        cols = st.columns(MAIN_OPTIONS)
        options = {f.name: _option_input(f, col) for f, col in zip(fields[:MAIN_OPTIONS], cols, strict=False)}
        with st.expander("All options (defaults shown)"):
            grid = st.columns(3)
            for i, f in enumerate(fields[MAIN_OPTIONS:]):
                options[f.name] = _option_input(f, grid[i % 3])
            o1, o2 = st.columns(2)
            compare = o1.checkbox("Compare before/after when done", value=True, key="train_compare")
            maps = o2.checkbox("Before/after maps", value=True, key="train_maps")
        started = st.form_submit_button("Start fine-tuning", type="primary", icon=":material/play_arrow:")
    spec = {"data_dir": data, "base_model": base, "options": options, "eval_split": split, "k": eng.k,
            "compare": compare, "maps": maps}
    return spec, started


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


def _status_panel(job_id: str) -> None:
    s = handlers.job_status(job_id)
    icon = STATE_ICON.get(s["state"], "")
    st.markdown(f"#### {icon} `{job_id}` · {s['state']} · {s.get('phase') or ''}")
    st.progress(_progress(s), text=f"epoch {s.get('epoch') or 0} of {s.get('epochs') or '?'}")
    m = st.columns(4)
    m[0].metric("Loss", f"{s['loss']:.4f}" if s.get("loss") is not None else "—")
    m[1].metric("Val macro F1", f"{s['val_f1']:.3f}" if s.get("val_f1") is not None else "—")
    m[2].metric("Images/s", f"{s['images_per_s']:.0f}" if s.get("images_per_s") else "—")
    m[3].metric("ETA", f"{s['eta_s'] / 60:.1f} min" if s.get("eta_s") else "—")
    if s.get("log"):
        st.plotly_chart(_curves(s["log"]), width="stretch", config={"displayModeBar": False},
                        key=f"train_curves_{job_id}")
    if s.get("error"):
        st.error(s["error"], icon=":material/error:")
    b1, b2, _ = st.columns([1, 1, 4])
    if s["state"] in ACTIVE and b1.button("Cancel", key=f"train_cancel_{job_id}", icon=":material/stop:"):
        _act(lambda: handlers.cancel_job(job_id), "Cancel requested; the job stops at its next step.")
    if s["state"] in ("interrupted", "cancelled", "failed") and b2.button(
            "Resume", key=f"train_resume_{job_id}", icon=":material/replay:"):
        _act(lambda: handlers.resume_job(job_id), "Resumed from the last epoch checkpoint.")
    spec = s.get("spec") or {}
    st.caption(f"dataset `{spec.get('data_dir')}` · base `{spec.get('base_model')}` · "
               f"out `{spec.get('out_dir')}`")


def _act(fn: Any, done: str) -> None:
    try:
        fn()
        st.toast(done)
    except JOB_ERRORS as e:
        st.error(str(e), icon=":material/error:")


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


spec, started = _options_form()
if started:
    try:
        st.session_state["train_job"] = handlers.start_job(spec)
        st.toast(f"Started {st.session_state['train_job']}")
    except JOB_ERRORS as e:
        st.error(str(e), icon=":material/error:")

jobs = handlers.list_jobs()
if not jobs:
    st.info("No fine-tuning jobs yet in workspace/. Pick a dataset and start one above.",
            icon=":material/model_training:")
    st.stop()
ids = [j["job_id"] for j in jobs]
by_id = {j["job_id"]: j for j in jobs}
current = st.session_state.get("train_job")
job_id = st.selectbox("Job", ids, index=ids.index(current) if current in ids else 0, key="train_pick",
                      format_func=lambda i: f"{i} · {by_id[i]['state']}")


@st.fragment(run_every=POLL_S if by_id[job_id]["state"] in ACTIVE else None)
def live() -> None:
    _status_panel(job_id)
    now = handlers.job_status(job_id)["state"]
    if by_id[job_id]["state"] in ACTIVE and now not in ACTIVE:
        st.rerun(scope="app")  # the job ended: redraw once without polling
    if now == "finished":
        _comparison(job_id)


live()
