"""Search: rank indexed scenes and clip segments by a text description or an example image."""

from __future__ import annotations

import random

import pandas as pd
import streamlit as st

from app import clip_results, filter_sidebar, handlers, sample_view, state, widgets, words

widgets.page_header("Search", "Describe a scene in words, or give an example image: the index is ranked by "
                    "cosine similarity, and hits inside clips are merged into time segments.")
eng = state.engine()
store, schema = eng.store, eng.schema
in_view = filter_sidebar.current_rows(eng)  # the sidebar's view (None: every frame)

mode = st.segmented_control("Query", ["Text", "Image"], default="Text", key="search_mode",
                            label_visibility="collapsed") or "Text"
top = st.columns([3, 1])
n_results = top[1].slider("Results", 6, 60, 18, 6, key="search_k")

hits: pd.DataFrame | None = None
windows: pd.DataFrame | None = None
if mode == "Text":
    # Example captions drawn from the schema (valid label combinations), fixed per session.
    examples = [schema.caption(schema.sample(random.Random(seed))) for seed in (3, 11, 17)]

    def use_example() -> None:  # a picked example becomes the query text (still editable)
        if st.session_state.get("search_example"):
            st.session_state["search_text"] = st.session_state["search_example"]

    query = top[0].text_input("Describe the scene", key="search_text",
                              placeholder="snowy night, approaching a 5-way intersection").strip()
    st.pills("Examples", examples, key="search_example", on_change=use_example,
             help="Label combinations drawn from the schema")
    if query:
        with st.spinner("Searching…"):
            hits = handlers.search_scenes(eng.model, store, query, k=n_results, among=in_view)
            windows = handlers.search_segments(eng.model, store, query, among=in_view)
else:
    up = top[0].file_uploader("Example image", type=sorted(s.lstrip(".") for s in handlers.IMAGE_SUFFIXES),
                              key="search_image", max_upload_size=handlers.MAX_UPLOAD_MB)
    if up is not None:
        image, error = handlers.load_query_image(up.name, up.getvalue())
        if error:
            st.error(error, icon=":material/error:")
            st.stop()
        st.image(image, caption=up.name, width=240)
        with st.spinner("Searching…"):
            hits = handlers.search_scenes(eng.model, store, image, k=n_results, among=in_view)
            windows = handlers.search_segments(eng.model, store, image, among=in_view)

clip_results.retrieval_panel(eng)

if hits is None:
    st.info("Type a description or upload an image to rank the index.", icon=":material/search:")
    st.stop()

st.subheader(f"Scenes · top {len(hits)}")
widgets.thumbnail_grid(
    [widgets.Thumb(state.thumb_of(store, r.id), f"#{rank} · sim {r.similarity:.3f}",
                   [" · ".join(x for x in (r.split, r.clip_id, words.seconds(r.timestamp_s)) if x),
                    *widgets.label_lines(store.labels(r.id), schema, compact=True)], row=r.id)
     for rank, r in enumerate(hits.itertuples(), start=1)],
    columns=6, key="search-results-grid", source="Search results",
)
sample_view.show()

st.subheader("Clip segments")
if windows is None or windows.empty:
    st.caption("No run of matching frames inside a clip.")
else:
    best = windows.head(12)
    widgets.thumbnail_grid(
        [widgets.Thumb(state.thumb_of(store, w.best_id), f"{w.clip_id} · {words.span(w.start_s, w.end_s)}",
                       [f"best sim {w.best_similarity:.3f} {words.span(w.best_timestamp_s, w.best_timestamp_s)}"
                        f" · {words.count(w.n_frames, 'matching frame')}"])
         for w in best.itertuples()],
        columns=6, key="search-segments-grid",
    )
    st.dataframe(handlers.segment_table(windows), hide_index=True, width="stretch", key="search_windows",
                 column_config={"Best similarity": st.column_config.NumberColumn(format="%.3f"),
                                "Start (s)": st.column_config.NumberColumn(format="%.1f"),
                                "End (s)": st.column_config.NumberColumn(format="%.1f"),
                                "Best frame at (s)": st.column_config.NumberColumn(format="%.1f")})

clip_results.show_clips(eng, query if mode == "Text" else image, among=in_view)  # clips in the view
