"""Drawing helpers shared by the pages: vote table, thumbnail grids, timeline, heatmaps.

They only draw what the engine returned; labels come from the schema (``display`` /
``display_of``), never from attribute names spelled here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import streamlit as st

from app import handlers, sample_open, state
from app.figures import (  # noqa: F401  (re-exported for the pages)
    PALETTE,
    confusion_figure,
    timeline_figure,
    value_colors,
)
from core.schema import UNKNOWN

if TYPE_CHECKING:
    from app.handlers import SceneAnalysis
    from core.predict import Vote
    from core.schema import Schema
    from core.types import IndexStore


def manifest_caption(manifest: Mapping[str, Any]) -> str:
    created = str(manifest.get("created", "?")).replace("T", " ").split("+")[0]
    return (f"**Model** `{manifest.get('model_name') or manifest.get('model', '?')}`  \n"
            f"**Frames** {int(manifest.get('count', 0)):,} · {manifest.get('split', 'all')} · "
            f"{manifest.get('factory', '?')}  \n**Created** {created}")


def analysis_or_stop(cached: tuple[Any, SceneAnalysis | None, str | None] | None, signature: Any,
                     hint: str) -> SceneAnalysis:
    """The page's analysed scene (``cached``: signature, analysis, error). Until one matches
    ``signature`` the page stops with ``hint``; an error stops it with the error; an unfamiliar scene
    gets the familiarity banner above whatever the page draws."""
    if signature is None or cached is None or cached[0] != signature:
        st.info(hint, icon=":material/upload:")
        st.stop()
    _, analysis, error = cached
    if error or analysis is None:
        st.error(error or "Nothing to analyse.", icon=":material/error:")
        st.stop()
    banner = analysis.familiarity_banner()
    if banner:
        st.warning(banner, icon=":material/help:")
    return analysis


def page_header(title: str, caption: str) -> None:
    st.title(title)
    st.caption(caption)


# ---- votes ------------------------------------------------------------------------------------
def vote_table(vote: Vote, schema: Schema, truth: Mapping[str, str] | None = None,
               key: str | None = None) -> None:
    df = handlers.vote_frame(vote, schema, truth)
    st.dataframe(
        df, hide_index=True, width="stretch", key=key,
        column_config={
            "Share": st.column_config.ProgressColumn("Vote share", min_value=0.0, max_value=1.0,
                                                     format="percent", color="blue"),
            "Status": st.column_config.TextColumn("Status", help="A vote abstains when the top two "
                                                  "values are too close; it shows what it leaned to."),
        },
    )


# ---- thumbnails -------------------------------------------------------------------------------
@dataclass
class Thumb:
    image: np.ndarray | None
    title: str
    lines: list[str] = field(default_factory=list)  # Markdown, one per line
    flag: str | None = None  # short warning shown as a red badge
    row: int | None = None  # its index row: with a grid ``source``, an "Open" button opens the sample view


VOTE_SPACE_SHORT = {"embedding": "Embedding", "prompts": "Prompts"}  # for narrow columns


def vote_space_picker(eng: state.Engine, key: str, short: bool = False) -> tuple[str, dict[str, np.ndarray] | None]:
    """A "Voters found by" control: the chosen space's name and ``vote_batch``'s ``prompt_space``."""
    name = st.segmented_control(
        "Voters found by", list(handlers.VOTE_SPACE_LABELS), default="embedding", key=key,
        format_func=(VOTE_SPACE_SHORT if short else handlers.VOTE_SPACE_LABELS).get,
        help="Whole embedding: the k nearest scenes vote on every attribute (the CLIP scene paper's "
             "vote). Each attribute's prompts: every attribute votes among its own k nearest scenes, "
             "nearest by their similarity to that attribute's value prompts.") or "embedding"
    # The whole embedding needs no model: the page votes while its model is still loading.
    return name, handlers.vote_space_of(None if name == "embedding" else eng.model, name, eng.schema)


def image(where: Any, img: np.ndarray | None) -> None:
    """An image filling its column, or a quiet note when the file is not there (gone, or one of
    the demo's frames still rendering in the background: the note says how far it is)."""
    if img is None:
        where.caption(handlers.missing_image_note(st.session_state.get(state.KEY_INDEX)))
    else:
        where.image(img, width="stretch")


def thumbnail_grid(items: Sequence[Thumb], columns: int = 5, key: str | None = None,
                   source: str | None = None) -> None:
    """Thumbnails in rows of ``columns`` bordered cards; ``key`` gives the grid a stable CSS hook.
    With ``source`` (words for the list, e.g. "Map selection"), each card with a ``row`` gets an
    "Open" button: the sample view opens on it and the arrow keys walk this grid's rows."""
    rows = [t.row for t in items if t.row is not None]
    places = iter(range(len(rows)))  # each card's place in ``rows`` (cards without a row have none)
    with st.container(key=key):
        for start in range(0, len(items), columns):
            cols = st.columns(columns)
            for col, item in zip(cols, items[start : start + columns], strict=False):
                with col, st.container(border=True):
                    image(st, item.image)
                    st.markdown(f"**{item.title}**" + (f" :red-badge[{item.flag}]" if item.flag else ""))
                    if item.lines:
                        st.caption("  \n".join(item.lines))
                    if source is not None and item.row is not None:

                        place = next(places)
                        sample_open.open_button(rows, place, source, f"{key or 'grid'}-open-{place}")


def neighbor_thumbs(vote: Vote, schema: Schema, store: IndexStore) -> list[Thumb]:
    """One card per neighbour: similarity, its labels, disagreements with the vote in red."""
    out = []
    for card in handlers.neighbour_cards(vote):
        lines = []
        for a in schema.attributes:
            text = f"{a.display}: {a.display_of(card.labels.get(a.name, UNKNOWN))}"
            lines.append(f":red[**{text}**]" if a.name in card.against else text)
        flag = f"disagrees on {len(card.against)}" if card.against else None
        out.append(Thumb(state.thumb_of_path(store, card.path), card.title, lines, flag, row=card.id))
    return out


def compact_labels(meta: pd.DataFrame, schema: Schema) -> np.ndarray:
    """One "Value · Value · ..." string per row of an index's frame table (map hover text). Each
    distinct value is looked up once and the columns joined as whole columns: the Map builds this on
    every run, and a join row by row took ~0.5 s for the demo's 2,141 frames (issue 21)."""
    cols = []
    for a in schema.attributes:
        values = meta[a.name].astype(str)
        cols.append(values.map({v: a.display_of(v) for v in values.unique()}))
    return cols[0].str.cat(cols[1:], sep=" · ").to_numpy()


def failure_card(f: Any, store: IndexStore, schema: Schema, k: int,
                 browse: tuple[Sequence[int], int] | None = None) -> None:
    """One failure: the scene, truth vs prediction, and the neighbours that out-voted the truth.
    ``browse`` (the listed failures' rows, this one's place): an "Open" button for the sample view."""
    with st.container(border=True):
        c_scene, c_nb = st.columns([1, 4], gap="medium")
        with c_scene:
            image(st, state.thumb_of(store, f.id))
            st.caption(f"#{f.id} · {f.clip_id} · {f.timestamp_s:.1f} s")
            if browse is not None:

                sample_open.open_button(browse[0], browse[1], "Triage failures", f"triage-open-{browse[1]}")
        with c_nb:
            st.markdown(f"**{f.Attribute}** — truth **{f.Truth}**, predicted :red[**{f.Prediction}**]")
            if not f.misleading:
                st.caption("No neighbour voted against the truth (the vote abstained).")
                return
            for col, nb in zip(st.columns(max(k, 5)), f.misleading, strict=False):
                image(col, state.thumb_of_path(store, nb.get("path"), 200))
                col.caption(f"#{nb['id']} · sim {nb['similarity']:.2f}  \n"
                            f"{schema.display(f.attribute, nb['labels'].get(f.attribute, UNKNOWN))}")


def label_lines(labels: Mapping[str, str], schema: Schema, compact: bool = False) -> list[str]:
    if compact:
        return [" · ".join(a.display_of(labels.get(a.name, UNKNOWN)) for a in schema.attributes)]
    return [f"{a.display}: {a.display_of(labels.get(a.name, UNKNOWN))}" for a in schema.attributes]


def data_and_model_pickers(eng: state.Engine, keys: tuple[str, str], data: tuple[str, str],
                           model: tuple[str, str]) -> tuple[str, str]:
    """A job form's two pickers side by side: a dataset under the index's data root and a registry
    model (each ``(label, help)``; both accept a typed value). Returns (dataset, model name)."""
    c1, c2 = st.columns([3, 2])
    datasets = [str(d) for d in handlers.list_datasets([eng.store.data_root])]
    chosen = c1.selectbox(data[0], datasets, key=keys[0], accept_new_options=True, help=data[1])
    name = c2.selectbox(model[0], handlers.list_models([eng.model.name]), key=keys[1], accept_new_options=True,
                        help=model[1])
    return chosen, name


def metric_table(df: pd.DataFrame, key: str | None = None) -> None:
    cfg = {c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0, format="%.3f", color="blue")
           for c in ("Precision", "Recall", "F1", "Accuracy") if c in df.columns}
    if "Decided" in df.columns:
        cfg["Decided"] = st.column_config.NumberColumn("Decided", format="percent",
                                                       help="Share of frames a majority of voters agreed on")
    if "F1 when decided" in df.columns:
        cfg["F1 when decided"] = st.column_config.NumberColumn("F1 when decided", format="%.3f")
    st.dataframe(df, hide_index=True, width="stretch", column_config=cfg, key=key)


def progress_reporter(bar: Any) -> Callable[[float, str], None]:
    """An engine ``progress(fraction, message)`` callback drawing into an ``st.progress`` bar."""

    def report(fraction: float, message: str) -> None:
        bar.progress(float(min(max(fraction, 0.0), 1.0)), text=message)

    return report


# ---- map hover preview --------------------------------------------------------------------------
# Plotly's hover labels cannot hold images, and st.plotly_chart reports selections, not hovers. This
# script-only component finds the map's Plotly element on the page, reports the hovered point id
# (debounced), and shows the thumbnail Python sends back in a small card at the pointer.
_HOVER_HTML = '<div class="ss-hover"><img alt=""/><div class="cap"></div></div>'
_HOVER_CSS = """
.ss-hover { position: fixed; display: none; z-index: 100000; pointer-events: none; background: #fff;
  border: 1px solid #d0d7de; border-radius: 8px; padding: 6px; box-shadow: 0 4px 16px rgba(0,0,0,.18);
  font: 12px/1.35 "Source Sans", "Source Sans Pro", sans-serif; color: #31333f; width: 240px; }
.ss-hover img { display: block; width: 100%; height: auto; border-radius: 4px; }
.ss-hover .cap { margin-top: 4px; white-space: pre-line; }
"""
_HOVER_JS = """
export default function (component) {
  const { data, setTriggerValue, parentElement } = component;
  const g = (window.__ssMapHover = window.__ssMapHover || { x: 0, y: 0, id: null, over: false });
  g.box = parentElement.querySelector('.ss-hover');
  const show = () => {
    const b = g.box;
    if (!b) return;
    if (g.over && data && data.img && data.id === g.id) {
      b.querySelector('img').src = data.img;
      b.querySelector('.cap').textContent = data.caption || '';
      // Up and to the left of the pointer, clear of Plotly's own label (which opens to the right).
      const w = b.offsetWidth || 256, h = b.offsetHeight || 230;
      const main = document.querySelector('[data-testid=stMain]');
      const minLeft = main ? main.getBoundingClientRect().left + 8 : 8;
      b.style.left = (g.x - w - 14 >= minLeft ? g.x - w - 14 : g.x + 14) + 'px';
      b.style.top = (g.y > h + 24 ? g.y - h - 14 : g.y + 14) + 'px';
      b.style.display = 'block';
    } else {
      b.style.display = 'none';
    }
  };
  const attach = () => {
    const gd = document.querySelector('.st-key-' + data.chart + ' .js-plotly-plot');
    if (!gd || typeof gd.on !== 'function') return false;
    if (gd.__ssHover) return true;
    gd.__ssHover = true;
    let timer = null;
    gd.on('plotly_hover', (ev) => {
      const p = ev.points && ev.points[0];
      if (!p) return;
      const id = Array.isArray(p.customdata) ? p.customdata[0] : p.customdata;
      if (id === undefined || id === null || id < 0) return;
      g.x = ev.event.clientX; g.y = ev.event.clientY; g.over = true; g.id = id;
      clearTimeout(timer);
      timer = setTimeout(() => setTriggerValue('hovered', id), 90);
    });
    gd.on('plotly_unhover', () => { g.over = false; clearTimeout(timer); if (g.box) g.box.style.display = 'none'; });
    return true;
  };
  show();
  attach();
  // Streamlit may replace the chart's element on a rerun (e.g. after a selection): keep checking.
  const t = setInterval(attach, 500);
  return () => clearInterval(t);
}
"""
_hover_component = st.components.v2.component(
    "scenescope.map_hover", html=_HOVER_HTML, css=_HOVER_CSS, js=_HOVER_JS)


def hover_preview(chart_key: str, key: str, describe: Callable[[int], tuple[np.ndarray | None, str]]) -> None:
    """Show a thumbnail card when the pointer rests on a point of the chart with ``chart_key``.

    ``describe(row)`` returns the point's thumbnail and caption. Runs as a fragment, so a hover
    reruns only this small piece, not the page and its map.
    """
    payload_key = f"{key}_payload"

    def on_hover() -> None:
        row = (st.session_state.get(key) or {}).get("hovered")
        if row is None:
            return
        image, caption = describe(int(row))
        st.session_state[payload_key] = {"id": int(row), "img": data_uri(image), "caption": caption}

    @st.fragment
    def mount() -> None:
        payload = st.session_state.get(payload_key) or {}
        _hover_component(key=key, data={"chart": chart_key, **payload}, on_hovered_change=on_hover,
                         height=0)

    mount()


def data_uri(image: np.ndarray | None, width: int = 240) -> str | None:
    """A small JPEG of ``image`` as a data: URI (the hover card needs no server round trip)."""
    if image is None:
        return None
    import base64
    import io

    from PIL import Image

    im = Image.fromarray(np.asarray(image, dtype=np.uint8))
    im.thumbnail((width, width))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
