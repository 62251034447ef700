"""Scene: classify an uploaded image or clip (or an indexed frame) and show who voted for what."""

from __future__ import annotations

import streamlit as st

from app import handlers, playback, sample_view, state, widgets, words

RESULT_KEY = "scene_result"  # (signature, analysis or None, error or None)

widgets.page_header("Scene", "Upload an image or a clip, or pick a scene from the index: the k nearest "
                    "indexed scenes vote on every attribute.")
eng = state.engine()
schema = eng.schema

c_source, c_space = st.columns([1, 1])
with c_source:
    source = st.segmented_control("Scene from", ["Upload", "From the index"], default="Upload",
                                  key="scene_source") or "Upload"
with c_space:
    space, prompt_space = widgets.vote_space_picker(eng, "scene_space")

signature = None
if source == "Upload":
    upload = st.file_uploader(
        f"Image or clip (up to {handlers.MAX_UPLOAD_MB} MB)", type=handlers.ACCEPTED_TYPES,
        key="scene_upload", max_upload_size=handlers.MAX_UPLOAD_MB,
    )
    if upload is not None:
        signature = ("upload", upload.file_id, upload.name, upload.size, eng.key, eng.k, space)
        if st.session_state.get(RESULT_KEY, (None,))[0] != signature:
            with st.spinner(f"Sampling and voting on {upload.name}…", show_time=True):
                analysis, error = handlers.analyze_upload(upload.name, upload.getvalue(), eng.model,
                                                          eng.store, k=eng.k, prompt_space=prompt_space)
            st.session_state[RESULT_KEY] = (signature, analysis, error)
else:
    splits = handlers.index_splits(eng.store)
    c1, c2 = st.columns([1, 3])
    split = c1.selectbox("Split", splits, key="scene_split")
    rows = eng.store.meta.index[eng.store.meta["split"].astype(str) == split]
    pos = c2.number_input(f"Scene (1–{len(rows):,} of the {split} split)", 1, max(1, len(rows)), 1,
                          key="scene_pos")
    row = int(rows[int(pos) - 1])
    st.caption(f"Index row {row} · `{eng.store.meta['path'].iat[row]}`")
    # Whether its file is there: a frame the demo renders in the background redraws once it is.
    signature = ("index", int(row), eng.key, eng.k, space, eng.store.abspath(row).is_file())
    if st.session_state.get(RESULT_KEY, (None,))[0] != signature:
        st.session_state[RESULT_KEY] = (signature, handlers.analyze_index_scene(eng.store, row, k=eng.k,
                                                                                prompt_space=prompt_space), None)

analysis = widgets.analysis_or_stop(st.session_state.get(RESULT_KEY), signature,
                                    "Upload a dashcam image or clip to see its voted attributes, or pick a scene from the index.")

if analysis.kind == "clip":
    st.subheader(f"Timeline · {analysis.name}")
    if analysis.decode is not None and not analysis.decode.complete:
        st.warning(f"{analysis.name}: {analysis.decode.summary()}; its votes come from the frames that decoded.",
                   icon=":material/warning:")
    playback.clip_player(upload.getvalue() if source == "Upload" and upload is not None else None,
                         analysis, schema)


@st.fragment
def frame_details() -> None:
    """The picked frame, its votes and its voters. A fragment: moving the frame slider redraws
    only this part, not the player and the timeline above."""
    frame_i = 0
    n = len(analysis.votes)
    if analysis.kind == "clip" and n > 1:
        frame_i = st.select_slider(
            "Frame", options=list(range(n)), key="scene_frame",
            format_func=lambda i: words.seconds(analysis.times[i]),
            help=f"{words.count(n, 'frame')} sampled at {handlers.CLIP_FPS:g} per second",
        )
    vote = analysis.votes[frame_i]
    left, right = st.columns([2, 3], gap="large")
    with left:
        caption = (analysis.name if analysis.kind == "image"
                   else f"{analysis.name} at {words.seconds(analysis.times[frame_i])}")
        if analysis.frames[frame_i] is None:  # an index frame not rendered yet, or gone
            widgets.image(st, None)
        else:
            st.image(analysis.frames[frame_i], caption=caption, width="stretch")
    with right:
        st.subheader("Votes")
        widgets.vote_table(vote, schema, analysis.truth, key="scene_votes")
        abstained = [schema[a].display for a, v in vote.attributes.items() if v.abstained]
        voted = (f"{len(vote.neighbors)} neighbours voted" if prompt_space is None
                 else f"each attribute voted by its {eng.k} nearest scenes in its prompt space")
        st.caption(voted + (f" · abstained on {', '.join(abstained)}" if abstained else " · no abstentions"))

    st.subheader("Neighbours")
    st.caption("Nearest indexed scenes, most similar first. Labels that contradict the vote are red.")
    widgets.thumbnail_grid(widgets.neighbor_thumbs(vote, schema, eng.store), columns=min(5, max(1, eng.k)),
                           key="neighbours-grid", source="Scene neighbours")

    if prompt_space is not None:
        st.subheader("Voters per attribute")
        st.caption("The scenes that carried each attribute's vote, nearest in that attribute's prompt space.")
        name = st.selectbox("Attribute", schema.names, format_func=lambda n: schema[n].display,
                            key="scene_voter_attr")
        voters = handlers.attribute_voters(vote, name)
        widgets.thumbnail_grid(widgets.neighbor_thumbs(voters, schema, eng.store), columns=min(5, max(1, eng.k)),
                               key="voters-grid", source="Voters of " + schema[name].display)
    sample_view.show()


frame_details()
