"""The sample view: one indexed frame opened from any thumbnail, in a dialog over the page.

A page's thumbnails carry an "Open" button (``widgets.thumbnail_grid(..., source=...)``) that
records the list it belongs to and the place in it; the page then calls ``show()`` last,
which opens the dialog while that record exists. The dialog runs as a fragment, so Previous/Next
(the Left/Right arrow keys, Streamlit's own button shortcuts) and "find similar" redraw only the
dialog, not the page under it. Esc (the dialog's own dismiss) closes it and forgets the record.
"""

from __future__ import annotations

import streamlit as st

from app import actions, handlers, state, widgets
from app.sample_open import KEY

LARGE = 960  # the frame's width in the dialog (pixels, at most)


def _close() -> None:
    st.session_state.pop(KEY, None)


def _move(delta: int) -> None:
    view = st.session_state.get(KEY)
    if view:
        view["pos"] = handlers.sample_step(view["rows"], view["pos"], delta)


def _find_similar(row: int, k: int) -> None:
    view = st.session_state.get(KEY)
    if view:
        eng = state.engine()
        rows = handlers.similar_rows(eng.store, row, k=max(k, handlers.SIMILAR_MAX))
        st.session_state[KEY] = {**view, "rows": rows, "pos": 0, "source": f"scenes similar to #{row}"}


@st.dialog("Sample", width="large", on_dismiss=_close)
def _dialog() -> None:
    view = st.session_state.get(KEY)
    if not view or not view["rows"]:
        st.caption("Nothing to show.")
        return
    eng = state.engine()
    store, schema = eng.store, eng.schema
    rows, pos = view["rows"], view["pos"]
    row = rows[pos]
    info = handlers.sample_info(store, row)

    nav = st.columns([1, 1, 1.4, 3], vertical_alignment="center")
    nav[0].button("Previous", key="sample_prev", icon=":material/arrow_back:", shortcut="Left",
                  disabled=pos == 0, on_click=_move, args=(-1,), width="stretch")
    nav[1].button("Next", key="sample_next", icon=":material/arrow_forward:", shortcut="Right",
                  disabled=pos >= len(rows) - 1, on_click=_move, args=(1,), width="stretch")
    nav[2].button("Find similar", key="sample_similar", icon=":material/search:", width="stretch",
                  on_click=_find_similar, args=(row, eng.k),
                  help="Browse this scene's nearest indexed scenes (other clips, as Triage votes)")
    nav[3].caption(f"{pos + 1:,} of {len(rows):,} · {view['source']} · ← → move · Esc closes")

    st.markdown(f"**#{info.row}** · {info.where}", help=f"`{info.path}`")
    left, right = st.columns([3, 2], gap="medium")
    with left, st.container(key="sample-frame"):
        widgets.image(st, state.thumb_of(store, row, LARGE))
    vote = handlers.sample_neighbours(store, row, k=eng.k)
    with right:
        st.markdown("**Labels**")
        st.markdown("  \n".join(f"{attr}: **{value}**" for attr, value in info.labels))
        st.markdown("**Vote of its neighbours**")
        widgets.vote_table(vote, schema, store.labels(row), key="sample_votes")
    st.markdown("**Neighbours**")
    st.caption("Nearest indexed scenes from other clips, most similar first; labels that contradict "
               "the vote are red.")
    widgets.thumbnail_grid(widgets.neighbor_thumbs(vote, schema, store), columns=min(5, max(1, eng.k)),
                           key="sample-neighbours")
    actions.selection_actions(eng, [row], key="sample_act", keep_open=True)  # tag, correct, move, export, undo


def show() -> None:
    """Open the sample view if a thumbnail asked for it (a page calls this after its thumbnails)."""
    if st.session_state.get(KEY):
        _dialog()
