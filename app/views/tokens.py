"""Tokens: which image patches matter for a query, and what the vote sees with only those kept."""

from __future__ import annotations

import streamlit as st

from app import handlers, state, widgets

FRAMES_KEY = "tokens_frames"  # (signature, frames, times, error)

widgets.page_header("Tokens", "Query-aware token selection: patch relevance to a text query, the patches "
                    "kept at a keep ratio, and the k-NN vote from the kept tokens beside the full one.")
eng = state.engine()
store, schema = eng.store, eng.schema

source = st.segmented_control("Source", ["Upload", "From the index"], default="Upload", key="tokens_source",
                              label_visibility="collapsed") or "Upload"
if source == "Upload":
    up = st.file_uploader(f"Image or clip (up to {handlers.MAX_UPLOAD_MB} MB)", type=handlers.ACCEPTED_TYPES,
                          key="tokens_upload", max_upload_size=handlers.MAX_UPLOAD_MB)
    if up is None:
        st.info("Upload an image or clip, or pick a scene from the index.", icon=":material/upload:")
        st.stop()
    signature = ("upload", up.file_id)
    if st.session_state.get(FRAMES_KEY, (None,))[0] != signature:
        with st.spinner(f"Reading {up.name}…"):
            st.session_state[FRAMES_KEY] = (signature, *handlers.upload_frames(up.name, up.getvalue()))
    _, frames, times, error = st.session_state[FRAMES_KEY]
    name = up.name
else:
    n = len(store)
    row = int(st.number_input(f"Index row (0–{n - 1})", 0, n - 1, 0, key="tokens_row"))
    frames, times, error = [state.thumb_of(store, row, 640)], [0.0], None
    name = str(store.meta["path"].iat[row])
    if frames[0] is None:  # gone, or one of the demo's frames still rendering (the note says which)
        error = f"{name}: {handlers.missing_image_note(st.session_state.get(state.KEY_INDEX)).strip('()')}"
if error:
    st.error(error, icon=":material/error:")
    st.stop()

c1, c2 = st.columns([3, 2])
query = c1.text_input("Query (empty: query-free saliency)", key="tokens_query",
                      placeholder="traffic light at the intersection")
keep = c2.slider("Keep ratio", 0.05, 1.0, 0.25, 0.05, key="tokens_keep",
                 help="Share of the image's patch tokens the pruned encoding keeps.")
i = 0
if len(frames) > 1:
    i = st.select_slider("Frame", options=list(range(len(frames))), key="tokens_frame",
                         format_func=lambda j: f"{times[j]:.1f} s")
q = query.strip() or None
choices = handlers.token_choices()
with st.expander("Scoring details"):
    d1, d2, d3 = st.columns(3)
    rule = d1.selectbox("Query rule", choices["rules"], key="tokens_rule",
                        help="pooled: the query's sentence embedding; max/mean: over its words")
    method = d2.selectbox("Patch scores", choices["query_methods"] if q else choices["methods"],
                          key="tokens_method_query" if q else "tokens_method",
                          help="How patch features are read from the last block; occlusion: how much "
                               "leaving each patch out lowers the image's match to the query (one "
                               "encoder pass per patch)")
    surgery = d3.checkbox("Feature surgery", value=False, key="tokens_surgery", disabled=q is None,
                          help="Subtract what every schema phrase shares, so patches that matter to "
                               "all texts alike (road, sky) stop outranking the query's own")
    read_in = d3.checkbox("Read-in", value=True, key="tokens_read_in",
                          help="The kept tokens attend once to every patch (block 1) before the rest "
                               "are dropped; the bundled model is distilled for this. Off: the "
                               "pruned vote never sees the dropped patches")
background = handlers.token_background(eng.model, schema) if q and surgery else None

frame = frames[i]
with st.spinner("Scoring patches and encoding…"):
    result = handlers.token_votes(eng.model, store, frame, k=eng.k, keep_ratio=keep, query=q, rule=rule,
                                  method=method, background=background, read_in=read_in)
    sel, full_vote, pruned_vote = result.selection, result.full, result.pruned
    heat, kept = handlers.token_heatmap(frame, sel, q), handlers.token_kept(frame, sel)

agree = len(result.agree)
m = st.columns(3)
m[0].metric("Kept tokens", f"{sel.k} / {sel.scores.size}", help="Patch tokens kept (+ the class token)")
m[1].metric("Keep ratio", f"{sel.keep_ratio:.0%}")
m[2].metric("Votes agree", f"{agree} / {len(schema.names)}", help="Attributes whose pruned vote equals the full vote")

left, right = st.columns(2, gap="large")
left.image(heat, caption=f"Patch relevance {'to “' + q + '”' if q else '(query-free saliency)'}",
           width="stretch")
right.image(kept, caption=f"Kept patches ({sel.k} of {sel.scores.size})", width="stretch")

v1, v2 = st.columns(2, gap="large")
with v1:
    st.subheader("Full encoding")
    widgets.vote_table(full_vote, schema, key="tokens_full_votes")
with v2:
    st.subheader(f"Pruned encoding · {sel.k} tokens")
    widgets.vote_table(pruned_vote, schema, truth=None, key="tokens_pruned_votes")
st.caption(f"{name} · k={eng.k}")
