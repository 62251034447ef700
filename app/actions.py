"""Acting on results: tag, correct, move to a split, export for labelling, and undo, for a set of
index rows (a Map selection, a page of Triage failures). The sample view calls the same handlers
(``handlers.correct_labels``, ``handlers.undo_last``, ``handlers.tag_rows``).

Every change goes to the dataset's manifest with a history and to the index's frame table
(``core.corrections``); the page then reruns, so the index reopens with its new labels version and
every vote and metric made before the change is recomputed on the next view.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from app import handlers, state, words

KEY_MESSAGE = "act_message"  # (ok, sentence) of the last action, shown after the rerun it caused


def _done(result: tuple[bool, str]) -> None:
    st.session_state[KEY_MESSAGE] = result
    st.rerun()


def last_message() -> None:
    """The last action's outcome (kept across the rerun that reloads the index)."""
    result = st.session_state.pop(KEY_MESSAGE, None)
    if result:
        ok, msg = result
        (st.success if ok else st.error)(msg, icon=":material/check_circle:" if ok else ":material/error:")
        # Also as a toast: a change can rename a tab (Triage's failure count), which reopens the
        # page on its first tab, away from the message above.
        st.toast(msg.split(". ")[0], icon=":material/check_circle:" if ok else ":material/error:")


def undo_bar(eng: state.Engine, key: str) -> None:
    """The change "Undo" would undo, and the button."""
    change = handlers.last_change(eng.store)
    cols = st.columns([4, 1])
    cols[0].caption(f"Last change: {change}" if change else "No change to undo.")
    if cols[1].button("Undo last change", key=f"{key}_undo", disabled=change is None, width="stretch",
                      icon=":material/undo:"):
        _done(handlers.undo_last(eng.store))


def selection_actions(eng: state.Engine, rows: Sequence[int], key: str, keep_open: bool = False) -> None:
    """Tag, correct, move or export ``rows``; undo the dataset's last change. ``keep_open``: the
    panel's open state is kept on the server (a toggle reruns the caller's fragment), for a caller
    redrawn from scratch by the rerun an action causes (the sample view's dialog), where a plain
    expander folds, hiding the outcome and the Undo button the user reaches for next."""
    store, schema = eng.store, eng.schema
    rows = [int(r) for r in rows]
    last_message()
    kept = {"key": f"{key}_panel", "on_change": "rerun"} if keep_open else {}
    with st.expander("Tag, correct, move or export " + ("this frame" if len(rows) == 1 else f"these {words.count(len(rows), 'frame')}"),
                     expanded=False, **kept):
        t_fix, t_tag, t_split, t_export = st.tabs(["Correct labels", "Tag", "Move to split", "Export for labelling"])
        with t_fix:
            c = st.columns([2, 2, 1], vertical_alignment="bottom")
            attr = c[0].selectbox("Attribute", schema.names, key=f"{key}_fix_attr",
                                  format_func=lambda a: schema[a].display)
            value = c[1].selectbox("New value", schema[attr].value_names, key=f"{key}_fix_value",
                                   format_func=lambda v: schema.display(attr, v))
            if c[2].button("Apply", key=f"{key}_fix", width="stretch", type="primary"):
                _done(handlers.correct_labels(store, rows, {attr: value}))
            st.caption("Written to the dataset's manifest with a history (undo restores it exactly); the "
                       "index's labels follow. " + handlers.STALE_NOTE)
        with t_tag:
            c = st.columns([3, 1, 1], vertical_alignment="bottom")
            tag = c[0].text_input("Tag", key=f"{key}_tag", placeholder="e.g. review").strip()
            if c[1].button("Add", key=f"{key}_tag_add", disabled=not tag, width="stretch"):
                _done(handlers.tag_rows(store, rows, add=[tag]))
            if c[2].button("Remove", key=f"{key}_tag_remove", disabled=not tag, width="stretch"):
                _done(handlers.tag_rows(store, rows, remove=[tag]))
        with t_split:
            c = st.columns([3, 1], vertical_alignment="bottom")
            split = c[0].selectbox("Split", handlers.splits(), key=f"{key}_split")
            if c[1].button("Move", key=f"{key}_split_move", width="stretch"):
                _done(handlers.move_to_split(store, rows, split))
        with t_export:
            _export(eng, rows, key)
        undo_bar(eng, key)


def _export(eng: state.Engine, rows: list[int], key: str) -> None:
    st.caption("The frames as they are plus a manifest.jsonl with their labels, split and clip: a dataset "
               "the importers and `scenescope index` read.")
    c = st.columns([1, 2, 1], vertical_alignment="bottom")
    zkey = f"{key}_zip"
    if c[0].button("Prepare ZIP", key=f"{key}_zip_make", width="stretch"):
        try:
            st.session_state[zkey] = (tuple(rows), handlers.export_frames(eng.store, rows))
        except (ValueError, OSError) as e:
            st.error(str(e))
    made = st.session_state.get(zkey)
    if made and made[0] == tuple(rows):
        c[0].download_button("Download ZIP", made[1], "selection.zip", mime="application/zip",
                             key=f"{key}_zip_get", width="stretch")
    name = c[1].text_input("New dataset in the workspace", key=f"{key}_ds_name", placeholder="folder name").strip()
    if c[2].button("Save dataset", key=f"{key}_ds_save", disabled=not name, width="stretch"):
        ok, msg = handlers.save_as_dataset(eng.store, rows, name)
        (st.success if ok else st.error)(msg)


def failure_fixes(eng: state.Engine, page: pd.DataFrame, key: str) -> None:
    """For the failures on this page: relabel one as its prediction (when the label was the mistake),
    or act on all their frames."""
    if page.empty:
        return
    schema = eng.schema
    options = list(range(len(page)))

    def word(i: int) -> str:
        f = page.iloc[i]
        return f"#{f['id']} · {schema[f['attribute']].display}: {f['Truth']} → {f['Prediction']}"

    c = st.columns([4, 1], vertical_alignment="bottom")
    pick = c[0].selectbox("Label was wrong? Relabel a failure as its prediction", options, format_func=word,
                          key=f"{key}_pick")
    if c[1].button("Relabel", key=f"{key}_relabel", width="stretch", type="primary"):
        f = page.iloc[int(pick)]
        _done(handlers.correct_labels(eng.store, [int(f["id"])], {f["attribute"]: f["prediction"]}))
    selection_actions(eng, sorted(set(page["id"].astype(int))), key)
