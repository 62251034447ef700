"""Triage: how well k-NN votes do on a split, where they fail, who misled them, and leakage."""

from __future__ import annotations

import streamlit as st

from app import actions, filter_sidebar, handlers, sample_view, state, widgets, words

PAGE_SIZE = 8
LEAK_PAIRS_SHOWN = 6
ROW_PX = 35  # st.dataframe's row height, to size a table to all its rows

widgets.page_header("Triage", "Leave-one-out k-NN votes on one split of the index, scored against its "
                    "labels: metrics, confusions, failures with the neighbours that out-voted the truth, "
                    "and near-duplicates across splits.")
eng = state.engine()
store, schema = eng.store, eng.schema
in_view = filter_sidebar.current_rows(eng)  # the sidebar's view (None: every frame)

splits = handlers.index_splits(store)
head = st.columns([1, 3])
split = head[0].selectbox("Split", splits, index=splits.index("test") if "test" in splits else 0,
                          key="triage_split")
with head[0]:
    space, prompt_space = widgets.vote_space_picker(eng, "triage_space", short=True)


def _evaluate() -> dict:
    bar = st.progress(0.0, text=f"Voting on the {split} split…")
    report = handlers.evaluate_index_split(store, split, k=eng.k, progress=widgets.progress_reporter(bar),
                                           prompt_space=prompt_space, among=in_view)
    bar.empty()
    return report


# The metrics score only the view's frames of the split (the same votes as on the whole split).
scored, split_total = handlers.split_in_view(store, split, in_view)
scope = handlers.metrics_scope(scored, split_total, split,
                               handlers.view_words(st.session_state.get(filter_sidebar.KEY_VIEW, {}), schema))
if not scored:
    st.info(f"{scope} Widen the sidebar's filter or pick another split.", icon=":material/filter_alt_off:")
    st.stop()
view_key = None if in_view is None else hash(in_view.tobytes())
report = state.memo(("triage", eng.key, split, eng.k, space, view_key), _evaluate)
st.caption(scope, help="The sidebar's view: Triage scores only its frames of this split. Each frame is voted "
           "as when the whole split is scored (same voters, same leave-out rule).")
failures_total = len(report["failures"])
decided = report.get("decided", {})
m = head[1].columns(5)
m[0].metric("Frames", f"{report['rows']:,}")
m[1].metric("Macro F1", f"{report['macro_f1']:.3f}",
            help="Mean over attributes of each attribute's macro F1, every frame scored by its plurality vote")
m[2].metric("Decided", f"{decided.get('coverage', 0):.0%}",
            help="Share of frames whose vote was decided: more than half of the voters agreed")
m[3].metric("F1 when decided", f"{decided.get('macro_f1', 0):.3f}",
            help="Macro F1 on the decided frames alone: coverage against accuracy")
m[4].metric("Failures", f"{failures_total:,}", help="One per wrong attribute of a frame")

tab_metrics, tab_failures, tab_leak = st.tabs(["Metrics", f"Failures ({failures_total:,})", "Leakage"])

with tab_metrics:
    widgets.metric_table(handlers.metrics_table(report, schema), key="triage_metrics")
    attr = st.selectbox("Confusion matrix of", schema.names, format_func=lambda a: schema[a].display,
                        key="triage_confusion_attr")
    left, right = st.columns([5, 4], gap="large")
    with left:
        st.plotly_chart(widgets.confusion_figure(report["attributes"][attr]["confusion"], schema, attr),
                        width="stretch", config={"displayModeBar": False}, key="triage_confusion")
    with right:
        per_class = handlers.per_class_table(report, schema, attr)
        st.dataframe(per_class, hide_index=True, width="stretch", key="triage_per_class",
                     height=ROW_PX * (len(per_class) + 1) + 3,  # every class, no inner scroll
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in ("Precision", "Recall", "F1")})

with tab_failures:
    focus = handlers.focus_values(schema)
    attrs = st.multiselect("Attributes", schema.names, default=list(focus), key="triage_attrs",
                           format_func=lambda a: schema[a].display)
    options = [handlers.class_key(a, v) for a in (attrs or schema.names) for v in schema[a].value_names]
    classes = st.multiselect(
        "Classes (truth or prediction)", options, key="triage_classes",
        default=[c for c in handlers.focus_classes(schema) if c in options],
        format_func=lambda c: f"{schema[c.split('=')[0]].display} · {schema.display(*c.split('=', 1))}",
    )
    table = handlers.failure_table(report, schema, attrs, classes)  # the view's frames only (scored so)
    if in_view is not None:
        st.caption(f"Failures of the frames in the sidebar's view ({scored:,} {split} frames), as the metrics above.")
    pages = max(1, -(-len(table) // PAGE_SIZE))
    p1, p2, p3 = st.columns([6, 2, 1], vertical_alignment="center")
    p1.caption(f"{words.count(len(table), 'failure')} {'matches' if len(table) == 1 else 'match'} · "
               f"{PAGE_SIZE} per page")
    # A new key per filter: the page number restarts at 1 instead of overshooting a shorter list.
    page = p2.number_input(f"Page (of {pages})", 1, pages, 1, label_visibility="collapsed",
                           key=f"triage_page_{split}_{'|'.join(attrs)}_{'|'.join(classes)}")
    p3.markdown(f"of {pages:,}")
    if table.empty:
        st.success("No failures match these filters.", icon=":material/check_circle:")
    with st.container(key="triage-failures"):
        listed = table.iloc[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        for place, f in enumerate(listed.itertuples()):
            widgets.failure_card(f, store, schema, eng.k, browse=(listed["id"].tolist(), place))
    sample_view.show()
    actions.failure_fixes(eng, listed, key="triage_act")

with tab_leak:
    st.caption("Pairs of frames in different splits that are near-duplicates: a k-NN vote can copy the "
               "answer from one to the other, which inflates the scores above.")
    threshold = st.slider("Cosine similarity at least", 0.80, 1.0, 0.97, 0.005, key="triage_leak_threshold")
    pairs = state.memo(("leak", eng.key, threshold), lambda: handlers.leakage_pairs(store, threshold))
    if in_view is not None:  # pairs with either frame in the sidebar's view
        pairs = pairs[pairs["i"].isin(in_view) | pairs["j"].isin(in_view)]
    st.metric("Cross-split near-duplicates", f"{len(pairs):,}")
    if len(pairs):
        for r in pairs.head(LEAK_PAIRS_SHOWN).itertuples():
            with st.container(border=True):
                cols = st.columns([2, 2, 3])
                for col, i, sp in ((cols[0], r.i, r.split_i), (cols[1], r.j, r.split_j)):
                    widgets.image(col, state.thumb_of(store, i, 240))
                    col.caption(f"#{i} · {sp} · {store.meta['clip_id'].iat[i]}")
                cols[2].metric("Similarity", f"{r.similarity:.4f}")
        st.dataframe(handlers.leakage_table(pairs, store), hide_index=True, width="stretch", key="triage_leak_table",
                     column_config={"Similarity": st.column_config.NumberColumn(format="%.4f")})
