"""Map: the index's embeddings laid out by UMAP; colour, select, inspect and export scenes."""

from __future__ import annotations

import contextlib

import streamlit as st

from app import actions, figures, filter_sidebar, handlers, sample_view, state, widgets, words

GRID_MAX = 24  # thumbnails drawn for a selection; the table and the export hold all of it
HOVER_TEXT_MAX = 20_000  # above this, per-point hover text costs more to ship than it helps

widgets.page_header("Map", "Every indexed frame placed by UMAP (cosine) on its embedding. Hover a point to see "
                    "it; box- or lasso-select scenes to list and export them.")
eng = state.engine()
store, schema = eng.store, eng.schema
in_view = filter_sidebar.current_rows(eng)  # the sidebar's view (None: every frame)


bar = st.progress(0.0, text="Loading the map…")
layout = handlers.map_layout(store, progress=widgets.progress_reporter(bar))
bar.empty()

controls = st.columns([2, 2, 1])
by = controls[0].selectbox("Colour by", handlers.color_options(store), key="map_color",
                          format_func=lambda opt: handlers.color_label(opt, schema))
place = controls[1].file_uploader("Place an image or clip on the map", type=handlers.ACCEPTED_TYPES,
                                  key="map_upload", max_upload_size=handlers.MAX_UPLOAD_MB)
size = controls[2].slider("Point size", 1.0, 12.0, 6.0 if len(store) < 5000 else 3.0, 0.5, key="map_size")

voting = handlers.colors_need_votes(by)  # correctness colours vote every indexed frame first
with st.spinner(f"Voting every indexed frame with k={eng.k} (leave-one-out)…", show_time=True) if voting \
        else contextlib.nullcontext():
    categories = handlers.map_categories(store, by, k=eng.k)

style = figures.category_style(schema, by, categories)
dense = handlers.draws_density(len(store) if in_view is None else len(in_view))
zoom: handlers.Box | None = None  # the server-side zoom box of a density map (None: the whole map)
if not dense:
    hover = widgets.compact_labels(store.meta, schema) if len(store) <= HOVER_TEXT_MAX else None
    fig = figures.map_figure(layout, filter_sidebar.only(categories, in_view), style, hover=hover,
                             size=size, uirevision=f"{eng.key}|{by}")
else:  # more points than the page can draw: a density grid of all and a sample of the zoom box (server)
    box = handlers.zoom_box(st.session_state.get("map_chart"))
    if box is not None and box != st.session_state.get("map_zoom_from"):  # a new box dragged: zoom to it
        st.session_state["map_zoom"] = st.session_state["map_zoom_from"] = box
    zoom = st.session_state.get("map_zoom")
    view = handlers.density_view(layout, zoom, rows=in_view)
    rows = view.rows
    hover = widgets.compact_labels(store.meta.iloc[rows], schema) if len(rows) <= HOVER_TEXT_MAX else None
    fig = figures.map_figure(layout[rows], categories[rows], style, hover=hover, size=size, ids=rows,
                             uirevision=f"{eng.key}|{by}|{zoom}")
    figures.add_density(fig, view.counts, view.x_edges, view.y_edges)
    fig.update_layout(dragmode="select")  # a box re-queries the server; a lasso picks drawn points
    zoom_cols = st.columns([5, 1])
    zoom_cols[0].caption(
        f"{words.count(view.inside, 'frame')} {'in this box' if zoom else 'on the map'}: shaded by density, "
        f"{len(rows):,} of them drawn as points. Drag a box to zoom in and draw the frames inside it.")
    if zoom is not None and zoom_cols[1].button("Whole map", key="map_zoom_out", width="stretch"):
        st.session_state["map_zoom"] = None
        st.rerun()

if place is not None:
    placed_key = (place.file_id, eng.key)
    if st.session_state.get("map_placed", (None,))[0] != placed_key:
        with st.spinner(f"Placing {place.name} on the map…", show_time=True):
            st.session_state["map_placed"] = (placed_key, *handlers.place_upload(
                place.name, place.getvalue(), eng.model, store, layout, k=eng.k))
    _, xy, times, banner, error = st.session_state["map_placed"]
    if error:
        st.error(error, icon=":material/error:")
    else:
        if banner:  # unlike anything indexed: where it lands on the map says little (issue 20)
            st.warning(banner, icon=":material/travel_explore:")
        figures.add_placed(fig, xy, times, place.name)

event = st.plotly_chart(fig, width="stretch", key="map_chart", on_select="rerun",
                        selection_mode=("points", "box", "lasso"), config={"displaylogo": False})

widgets.hover_preview("map_chart", "map_hover", lambda row: (
    state.thumb_of(store, row, 240),
    f"#{row} · {store.meta['split'].iat[row]}\n" + "\n".join(widgets.label_lines(store.labels(row), schema))))

picked = handlers.selected_ids(event.selection if event else None)
if dense and zoom is not None and not picked:
    # Zooming redraws the chart, which clears Plotly's selection: the box dragged lists the frames
    # drawn inside it (the server's fresh sample) until a lasso picks others.
    picked = rows.tolist()
if not picked:
    st.info("Drag a box or a lasso on the map (toolbar, top right) to list those scenes here.",
            icon=":material/select:")
    st.stop()

table = handlers.selection_table(store, picked)
st.subheader(f"Selection · {words.count(len(table), 'scene')}")
dl = st.columns([1, 1, 6])
for col, fmt in zip(dl, handlers.EXPORT_FORMATS, strict=False):
    col.download_button(f"Export {fmt.upper()}", handlers.export_rows(table, fmt), f"selection.{fmt}",
                        mime=handlers.EXPORT_FORMATS[fmt], key=f"map_export_{fmt}", width="stretch")
shown = table.head(GRID_MAX)
widgets.thumbnail_grid(
    [widgets.Thumb(state.thumb_of(store, r.id), f"#{r.id} · {r.split}",
                   widgets.label_lines(store.labels(r.id), schema, compact=True), row=r.id)
     for r in shown.itertuples()],
    columns=6, key="map-selection-grid", source="Map selection",
)
sample_view.show()
if len(table) > GRID_MAX:
    st.caption(f"Showing the first {GRID_MAX} of {len(table):,}; the table and the exports hold all of them.")
st.dataframe(handlers.labelled(table, schema), hide_index=True, width="stretch", key="map_selection_table")
actions.selection_actions(eng, table["id"].tolist(), key="map_act")
