"""Ask: a question about a scene, answered with its confidence and the evidence behind it."""

from __future__ import annotations

import streamlit as st

from app import figures, handlers, state, widgets, words

SCENE_KEY = "ask_scene"  # (signature, analysis or None, error or None)
ANSWER_KEY = "ask_result"  # (signature, result or None, error or None)
QUESTION = "ask_question"

widgets.page_header("Ask", "Ask a question about an indexed scene or your own image or clip. The retrieval "
                    "answerer answers from the k nearest indexed scenes' vote, and shows them as evidence.")
eng = state.engine()
schema = eng.schema

# ---- the scene ---------------------------------------------------------------------------------
source = st.segmented_control("Scene from", ["Upload", "From the index"], default="Upload",
                              key="ask_source") or "Upload"
signature = None
if source == "Upload":
    upload = st.file_uploader(f"Image or clip (up to {handlers.MAX_UPLOAD_MB} MB)", type=handlers.ACCEPTED_TYPES,
                              key="ask_upload", max_upload_size=handlers.MAX_UPLOAD_MB)
    if upload is not None:
        signature = ("upload", upload.file_id, upload.name, upload.size, eng.key, eng.k)
        if st.session_state.get(SCENE_KEY, (None,))[0] != signature:
            with st.spinner(f"Sampling and voting on {upload.name}…", show_time=True):
                st.session_state[SCENE_KEY] = (signature, *handlers.analyze_upload(
                    upload.name, upload.getvalue(), eng.model, eng.store, k=eng.k))
else:
    splits = handlers.index_splits(eng.store)
    c1, c2 = st.columns([1, 3])
    split = c1.selectbox("Split", splits, key="ask_split")
    rows = eng.store.meta.index[eng.store.meta["split"].astype(str) == split]
    pos = c2.number_input(f"Scene (1–{len(rows):,} of the {split} split)", 1, max(1, len(rows)), 1, key="ask_pos")
    row = int(rows[int(pos) - 1])
    signature = ("index", row, eng.key, eng.k)
    if not eng.store.abspath(row).is_file():  # one of the demo's frames still rendering: nothing to look at yet
        st.info(f"{eng.store.meta['path'].iat[row]}: "
                f"{handlers.missing_image_note(st.session_state.get(state.KEY_INDEX)).strip('()')}",
                icon=":material/hourglass_empty:")
        st.stop()
    if st.session_state.get(SCENE_KEY, (None,))[0] != signature:
        st.session_state[SCENE_KEY] = (signature, handlers.analyze_index_scene(eng.store, row, k=eng.k), None)

analysis = widgets.analysis_or_stop(st.session_state.get(SCENE_KEY), signature,
                                    "Upload a dashcam image or clip, or pick a scene from the index, then ask about it.")

# ---- the question ------------------------------------------------------------------------------
vlm_ok, vlm_note = handlers.vlm_status()
c_ans, c_keep = st.columns([1, 1])
with c_ans:
    answerers = list(handlers.ANSWERER_LABELS) if vlm_ok else ["retrieval"]
    answerer = st.segmented_control("Answerer", answerers, default="retrieval", key="ask_answerer",
                                    format_func=handlers.ANSWERER_LABELS.get) or "retrieval"
    if not vlm_ok:
        st.caption(f":material/info: {vlm_note}")
with c_keep:
    keep = st.slider("Keep ratio", 0.05, 1.0, handlers.DEFAULT_KEEP, 0.05, key="ask_keep",
                     help="Share of the image's patch tokens kept for the question (LaVida Drive): the VLM "
                          "sees only these; the heatmap shows them for both answerers.")

mode = st.segmented_control("Question", ["Free text", "Multiple choice"], default="Free text",
                            key="ask_mode") or "Free text"
options = None
if mode == "Free text":
    def _use_suggestion() -> None:
        picked = st.session_state.get("ask_suggested")
        if picked:
            st.session_state[QUESTION] = picked

    st.pills("Suggested questions", handlers.suggested_questions(schema, analysis.votes, analysis.kind == "clip"),
             key="ask_suggested", on_change=_use_suggestion)
    question = st.text_input("Your question", key=QUESTION, placeholder="Is the road surface wet?")
else:
    sets = handlers.choice_sets(schema)
    question = st.selectbox("Multiple-choice set", list(sets), key="ask_mc")
    options = sets[question]
    st.caption("  \n".join(f"{chr(ord('A') + i)}. {o}" for i, o in enumerate(options)))
asked = st.button("Ask", key="ask_go", type="primary")

sig = (signature, question, tuple(options or ()), answerer, keep)
held = st.session_state.get(ANSWER_KEY)
if asked or ((question or "").strip() and (held is None or held[0] != sig)):
    with st.spinner("Answering…", show_time=True):
        st.session_state[ANSWER_KEY] = (sig, *handlers.ask(analysis, question, eng.model, eng.store, options=options,
                                                           answerer=answerer, keep_ratio=keep))
held = st.session_state.get(ANSWER_KEY)
if held is None or held[0] != sig:
    st.stop()
_, result, error = held
if error:
    st.error(error, icon=":material/error:")
    st.stop()

# ---- the answer --------------------------------------------------------------------------------
ans = result.answer
lettered = f"{result.letter}. " if result.letter else ""
if ans.definite:
    st.success(f"**{lettered}{ans.text}**", icon=":material/chat:")
else:
    st.warning(f"**{ans.text}**: {ans.reason}", icon=":material/help:")
m = st.columns(3)
m[0].metric("Confidence", f"{ans.confidence:.0%}",
            help="Retrieval: the vote share behind the answer. VLM: the answer's mean token probability "
                 "(multiple choice: its share over the options).")
m[1].metric("Answerer", handlers.ANSWERER_LABELS[result.answerer].split(" (")[0])
m[2].metric("Kept tokens", f"{result.kept[0]} / {result.kept[1]}" if result.kept else "—")
if ans.matched:
    st.caption(f"Read as: “{ans.matched}”")
if result.second_opinion is not None:
    so = result.second_opinion
    st.caption(f"Second opinion from the index: {so.text} (confidence {so.confidence:.0%})"
               + (f"; {so.reason}" if so.reason else ""))

frame_i = result.focus
if analysis.kind == "clip":
    st.subheader("Answer over time")
    if result.window:
        st.caption("Holds at " + ", ".join(words.span(a, b) for a, b in result.window))
    n = len(analysis.frames)
    frame_i = st.select_slider("Frame", options=list(range(n)), value=result.focus, key="ask_frame",
                               format_func=lambda i: words.seconds(analysis.times[i])) if n > 1 else 0
    if result.timeline:
        st.plotly_chart(figures.answer_timeline_figure(result.timeline, analysis.duration, schema.qa.yes,
                                                       schema.qa.no_answer, float(analysis.times[frame_i]),
                                                       analysis.unfamiliar_stretches()),
                        width="stretch", config={"displayModeBar": False}, key="ask_timeline")

heat = result.heatmap
if frame_i != result.focus:
    heat = state.memo(("ask_heat", sig, frame_i), lambda: handlers.question_heatmap(
        eng.model, analysis.frames[frame_i], question, keep)[0])
left, right = st.columns([2, 3], gap="large")
with left:
    st.image(heat if heat is not None else analysis.frames[frame_i], width="stretch",
             caption=f"The question's kept tokens ({result.kept[0]} of {result.kept[1]})" if result.kept else None)
with right:
    st.subheader("Evidence")
    what = "the index's second opinion" if result.second_opinion is not None else "the answer"
    st.caption(f"Indexed scenes behind {what}: those that support it, then those whose labels contradict it "
               "(most similar first; similarity is the cosine between embeddings).")
    thumbs = []
    for card in result.evidence:
        lines = [f"{schema[a].display}: {schema[a].display_of(card.labels.get(a, handlers.UNKNOWN))}"
                 for a in card.attributes]
        if card.role == "supports":
            lines.insert(0, ":green[supports]")
        flag = None if card.role == "supports" else card.role  # contradicts, or split (no definite answer)
        thumbs.append(widgets.Thumb(state.thumb_of_path(eng.store, card.path), f"sim {card.similarity:.3f}",
                                    lines, flag))
    if thumbs:
        widgets.thumbnail_grid(thumbs, columns=5, key="ask-evidence-grid")
    else:
        st.caption("No neighbour carries a label for what the question asks.")
