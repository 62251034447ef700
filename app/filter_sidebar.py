"""The filter sidebar: one view over the whole index that Map, Search and Triage all follow.

Each field (split, clip, tags, every schema attribute, and on request the leave-out vote's
correctness and familiarity) is a multiselect whose options carry their counts. The current
filter lives in ``st.session_state[KEY_VIEW]`` (not in the widgets, whose state Streamlit drops on
a page that does not draw them), so every page that calls :func:`current_rows` sees the same view.
A filter can be saved by name (``handlers.save_view``, a JSON file in the workspace) and loaded
again from the "Saved view" picker.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app import handlers, state

KEY_VIEW = "ss_view"  # field -> list of values: the current filter, shared by every page
KEY_DERIVED = "ss_view_derived"  # whether vote correctness and familiarity are computed (kept across pages)
KEY_DERIVED_WIDGET = "fv__derived"
KEY_SAVED, KEY_NAME = "fv__saved", "fv__name"
CURRENT = "(current filter)"
WIDGET = "fv_"  # widget key prefix, one per field


def _table(eng: state.Engine, derived: bool) -> pd.DataFrame:
    key = ("view-table", eng.key, eng.k if derived else 0, derived)
    if derived:
        with st.spinner(f"Voting every indexed frame with k={eng.k} and measuring familiarity…", show_time=True):
            return state.memo(key, lambda: handlers.view_table(eng.store, k=eng.k, derived=True))
    return state.memo(key, lambda: handlers.view_table(eng.store))


def _options(table: pd.DataFrame, field: str, eng: state.Engine) -> list[str]:
    """A field's values in reading order: schema order for attributes, sorted otherwise."""
    col = table[field]
    if field == "tags":
        present = sorted({t for text in col for t in str(text).split(",") if t})
    else:
        present = sorted(set(map(str, col.unique())))
    if field in eng.schema.names:
        order = eng.schema[field].value_names
        return [v for v in order if v in present] + [v for v in present if v not in order]
    return present


def _load_saved(eng: state.Engine) -> None:
    """The picked saved view becomes the current filter (its widgets are set before they draw)."""
    name = st.session_state.get(KEY_SAVED)
    views, _ = handlers.saved_views(eng.index_dir, eng.schema)
    if name in views:
        filters = views[name].filters()
        st.session_state[KEY_VIEW] = {f: list(v) for f, v in filters.items()}
        st.session_state[KEY_NAME] = name
        if any(f in ("vote", "familiarity") for f in filters):
            st.session_state[KEY_DERIVED] = st.session_state[KEY_DERIVED_WIDGET] = True
        _reset_widgets()


def _clear() -> None:
    st.session_state[KEY_VIEW] = {}
    st.session_state[KEY_SAVED] = CURRENT
    _reset_widgets()


def _reset_widgets() -> None:
    for k in [k for k in st.session_state if str(k).startswith(WIDGET) and k not in (KEY_SAVED, KEY_NAME)]:
        del st.session_state[k]


def current_rows(eng: state.Engine) -> np.ndarray | None:
    """Draw the filter in the sidebar; the current view's index rows, or None when nothing is filtered."""
    if KEY_DERIVED_WIDGET in st.session_state:  # the toggle drawn in the last run holds the newest choice
        st.session_state[KEY_DERIVED] = bool(st.session_state[KEY_DERIVED_WIDGET])
    derived = bool(st.session_state.get(KEY_DERIVED))
    table = _table(eng, derived)
    fields = [f for f in handlers.view_fields(eng.schema, derived=derived) if f in table]
    filters = {f: list(v) for f, v in st.session_state.get(KEY_VIEW, {}).items() if f in fields}
    for f in fields:  # a widget drawn in the last run holds the newest choice
        if WIDGET + f in st.session_state:
            filters[f] = list(st.session_state[WIDGET + f])
    filters = {f: v for f, v in filters.items() if v}
    st.session_state[KEY_VIEW] = filters
    try:
        view = handlers.view_from_filters("", filters, eng.schema)
    except ValueError as e:  # a filter of another index or schema: start over
        st.sidebar.warning(str(e))
        view, filters = handlers.view_from_filters("", {}, eng.schema), {}
    rows = handlers.view_rows(table, view)
    counts = handlers.view_counts(table, view)
    with st.sidebar:
        _draw(eng, table, fields, filters, counts, rows, view)
    return None if view.is_empty else rows


def _draw(eng: state.Engine, table: pd.DataFrame, fields: list[str], filters: dict[str, list[str]],
          counts: dict[str, dict[str, int]], rows: np.ndarray, view: handlers.View) -> None:
    schema = eng.schema
    st.markdown(f"**Filter** · {len(rows):,} of {len(table):,} frames")
    views, error = handlers.saved_views(eng.index_dir, schema)
    if error:
        st.caption(error)
    names = [CURRENT, *views]
    if st.session_state.get(KEY_SAVED) not in names:
        st.session_state[KEY_SAVED] = CURRENT
    st.selectbox("Saved view", names, key=KEY_SAVED, on_change=_load_saved, args=(eng,),
                 help="A saved filter: picking one makes it the filter of Map, Search and Triage.")
    for f in fields:
        options = _options(table, f, eng)
        # Set from the view on every run: on another page Streamlit makes a new widget of this key
        # (its id includes the page), which would otherwise start empty.
        st.session_state[WIDGET + f] = [v for v in filters.get(f, []) if v in options]
        key = WIDGET + f
        n = counts.get(f, {})
        st.multiselect(handlers.field_label(f, schema), options, key=key, placeholder="any",
                       format_func=lambda v, f=f, n=n: f"{handlers.value_label(f, v, schema)} ({n.get(v, 0):,})")
    st.session_state[KEY_DERIVED_WIDGET] = bool(st.session_state.get(KEY_DERIVED))
    st.toggle("Vote and familiarity filters", key=KEY_DERIVED_WIDGET,
              help="Adds the leave-out vote's correctness and the familiarity of every frame as filters "
                   "(votes every indexed frame once: seconds to minutes).")
    c1, c2 = st.columns(2)
    c1.button("Clear", key="fv__clear", on_click=_clear, width="stretch", disabled=view.is_empty)
    name = st.text_input("Save the filter as", key=KEY_NAME, placeholder="view name")
    if c2.button("Save view", key="fv__save", width="stretch", disabled=not name.strip()):
        ok, msg = handlers.save_view(eng.index_dir, handlers.view_from_filters(name, filters, schema), schema)
        (st.success if ok else st.error)(msg)


HIDDEN = "\x00outside the view"  # a category no map style draws: frames outside the view vanish


def only(categories: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    """The map's categories with frames outside the view set to ``HIDDEN`` (not drawn)."""
    if rows is None:
        return categories
    out = np.full(len(categories), HIDDEN, dtype=object)
    out[rows] = np.asarray(categories, dtype=object)[rows]
    return out


def keep(table: pd.DataFrame, rows: np.ndarray | None, column: str = "id") -> pd.DataFrame:
    """The rows of ``table`` whose index row (``column``) is in the view (all of them without one)."""
    if rows is None:
        return table
    return table[table[column].isin(rows)].reset_index(drop=True)
