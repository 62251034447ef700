"""SceneScope workbench: `scenescope workbench` (or `make run`). A plain `streamlit run app/workbench.py`
works too, from any folder: app/.streamlit/config.toml (Streamlit's script-level config, read
wherever it is started) keeps it on 127.0.0.1 without usage statistics, as the command's flags do.

This entry script runs on every interaction: it draws the shared sidebar (index, model, k and the
index's manifest), then hands over to the page picked in the navigation.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import handlers, navigation, preload, state, widgets

ASSETS = Path(__file__).resolve().parent / "assets"
# Seconds between the first page's script run and the model's background load: measured, a load
# started at once cost that page ~0.8 CPU s and a few seconds of wall time on 2 cores (RESULTS 15d).
MODEL_AFTER_PAGE_S = 1.5


def sidebar() -> state.ModelLoad | None:
    with st.sidebar:
        st.markdown("**Workspace**")
        options = [str(p) for p in state.list_indexes()]
        st.selectbox(
            "Index", options, key=state.KEY_INDEX, format_func=lambda p: Path(p).name, help="Index folders under indexes/ (and $SCENESCOPE_INDEX).",
        )
        manifest = state.read_manifest(Path(st.session_state[state.KEY_INDEX])) or {}
        models = [state.INDEX_MODEL] + [m for m in handlers.bundled_models() if m != manifest.get("model_name")]
        st.selectbox("Model", models, key=state.KEY_MODEL,
                     help="The index's own model by default; another model must match the index.")
        st.slider("Neighbours (k)", 1, 25, state.DEFAULT_K, key=state.KEY_K,
                  help="How many nearest indexed scenes vote on each attribute.")
        if manifest:
            st.caption(widgets.manifest_caption(manifest))
        else:
            st.caption("No manifest yet: the index is prepared when a page first opens it.")
        loading = state.model_loading()
        model_status(loading)
        rendering = handlers.frames_rendering(st.session_state[state.KEY_INDEX])
        if rendering:
            st.caption(f"Rendering the demo's frames in the background: {rendering[0]:,} of {rendering[1]:,}. "
                       "Votes, search and the map work already; thumbnails fill in as frames are written.")
        preload.preload_plotly()  # the first Map's Plotly code, loaded while this page sits idle
    return loading


def model_status(loading: state.ModelLoad | None) -> None:
    """While the model loads in the background, a clock that reruns the app once it has loaded."""
    if loading is None or loading.future.done():
        if loading is not None and loading.future.exception() is not None:
            st.caption(f"The model did not load: {loading.future.exception()}")
        return

    @st.fragment(run_every=2.0)  # each tick is a fragment run, competing with the load for the GIL
    def clock() -> None:
        # Idempotent. Not a start now: the clock's first run is inline, in the sidebar, before the
        # page, and a load started there held the GIL and the import lock against the first
        # page's script (RESULTS 15f); main() schedules it after the page, and so does this.
        loading.start(after=MODEL_AFTER_PAGE_S)
        if loading.future.done():
            st.rerun()  # the whole app, once: the sidebar drops the clock
        st.caption(f"Loading the model ({loading.seconds():.0f} s)… Pages draw meanwhile; "
                   "only what needs the model (uploads, text queries) waits for it.")

    clock()


def main() -> None:
    # Local files only: a material-icon favicon would be fetched from a font CDN.
    st.set_page_config(page_title="SceneScope", page_icon=str(ASSETS / "icon.svg"), layout="wide")
    st.logo(str(ASSETS / "logo.svg"), size="large", icon_image=str(ASSETS / "icon.svg"))
    groups = {
        section: [st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url_path, default=p.default)
                  for p in specs]
        for section, specs in navigation.sections().items()
    }
    page = st.navigation(groups)
    loading = sidebar()
    try:
        page.run()
    finally:  # also after st.stop() (no st call here: after it, they raise): the model loads once
        if loading is not None:  # the browser has had a moment to draw the page (issue 21)
            loading.start(after=MODEL_AFTER_PAGE_S)


main()
