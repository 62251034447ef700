"""The map: layouts, colours, selections, placing an upload, exports."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from app.handlers.scene import analyze_upload
from core.schema import Schema

if TYPE_CHECKING:
    from core.types import IndexStore, SceneModel


# ---- map selections and exports ----------------------------------------------------------------
def selected_ids(selection: Mapping[str, Any] | None) -> list[int]:
    """Index rows picked on the map (box, lasso or click), from Plotly's selection state.

    Every trace carries the index row in ``customdata``; point numbers alone are per-trace and
    would mix rows of different colour groups. Points without a row (the placed upload) are ignored.
    """
    if not selection:
        return []
    points = selection.get("points") if isinstance(selection, Mapping) else None
    if points is None and isinstance(selection, Mapping):
        points = (selection.get("selection") or {}).get("points", [])
    out: list[int] = []
    seen: set[int] = set()
    for p in points or []:
        cd = p.get("customdata")
        if isinstance(cd, list | tuple):
            cd = cd[0] if cd else None
        if cd is None:
            continue
        try:
            row = int(cd)
        except (TypeError, ValueError):
            continue
        if row >= 0 and row not in seen:
            seen.add(row)
            out.append(row)
    return out


PLACE_TRANSFORM_MAX = 50_000  # umap's transform refits in memory; beyond this, place by k-NN


def place_upload(name: str, data: bytes, model: SceneModel, store: IndexStore, layout: np.ndarray, k: int = 5,
                 ) -> tuple[np.ndarray | None, np.ndarray | None, str | None, str | None]:
    """Map positions of an uploaded image or clip's frames: ``(xy, times, banner, None)`` or
    ``(None, None, None, error)``. ``banner`` (else None) warns that the upload is unlike the index
    (core.familiarity), where its map position means little: the Scene page's words."""
    from app import map_cache

    analysis, error = analyze_upload(name, data, model, store, k=k)
    if analysis is None:
        return None, None, None, error
    method = "transform" if len(store) <= PLACE_TRANSFORM_MAX else "knn"
    xy = map_cache.place(store, model.embed_images(analysis.frames), method=method, layout=layout)
    return xy, analysis.times, analysis.familiarity_banner(), None


EXPORT_FORMATS: dict[str, str] = {"csv": "text/csv", "jsonl": "application/jsonl"}


def export_rows(table: pd.DataFrame, fmt: str) -> bytes:
    """Selected rows as a downloadable file (the engine decides the columns and encoding)."""
    from core.maps import export_selection

    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; one of {list(EXPORT_FORMATS)}")
    return export_selection(table, fmt=fmt)


# ---- the map ---------------------------------------------------------------------------------------
def map_layout(store: IndexStore, progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """(N, 2) map positions of the index's frames (UMAP, computed once per index however many ask)."""
    from app import map_cache

    return map_cache.layout(store, progress=progress)


def color_options(store: IndexStore) -> list[str]:
    """What the map can be coloured by (attributes, split, correctness), as option names."""
    from core import maps

    return maps.color_options(store)


def color_label(option: str, schema: Schema) -> str:
    """A colour option as people read it."""
    from core import maps

    if option == maps.COLOR_SPLIT:
        return "Split"
    if option == maps.COLOR_CORRECT:
        return "Prediction correctness (all attributes)"
    if option.startswith(maps.COLOR_CORRECT + ":"):
        return f"Prediction correctness · {schema[option.split(':', 1)[1]].display}"
    return schema[option].display


def colors_need_votes(option: str) -> bool:
    """Whether colouring by ``option`` votes every indexed frame first (correctness colours)."""
    from core import maps

    return option.startswith(maps.COLOR_CORRECT)


def map_categories(store: IndexStore, option: str, k: int = 5) -> np.ndarray:
    """One category per indexed frame for colouring by ``option`` (correctness: its vote's)."""
    from core import maps

    predictions = maps.loo_predictions(store, k=k) if colors_need_votes(option) else None
    return np.asarray(maps.color_values(store, option, predictions=predictions))


def selection_table(store: IndexStore, ids: Sequence[int]) -> pd.DataFrame:
    """The picked frames' rows (id, split, path, labels...), in the order picked."""
    from core import maps

    return maps.selection_table(store, ids)


def labelled(table: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """``table`` with its attribute columns and values named for people."""
    out = table.rename(columns={a.name: a.display for a in schema.attributes})
    for a in schema.attributes:
        if a.display in out:
            out[a.display] = [a.display_of(v) for v in out[a.display]]
    return out


# ---- maps of more points than the page draws: density and sampling on the server (issue 23) -----
Box = tuple[float, float, float, float]  # (x0, x1, y0, y1) in map coordinates


@dataclass(frozen=True)
class DensityView:
    """What the Map draws for a map of more points than it can draw as markers."""

    counts: np.ndarray  # (bins, bins) points per cell over ``box``, indexed [x, y]
    x_edges: np.ndarray
    y_edges: np.ndarray
    rows: np.ndarray  # index rows drawn as points: at most the point budget, all inside ``box``
    inside: int  # points inside ``box`` (all of them, drawn or not)
    box: Box  # the view: a zoom box, or the whole map's extent


def draw_budget() -> int:
    """Most points the Map draws as markers (WebGL); above it the page draws a density grid instead.
    Read at call time so that one constant (``core.maps.DRAW_POINTS``) decides both."""
    from core import maps

    return int(maps.DRAW_POINTS)


def draws_density(count: int) -> bool:
    """Whether a map of ``count`` points is drawn as a density grid plus a sample of points."""
    return count > draw_budget()


def density_view(layout: np.ndarray, box: Box | None = None, rows: np.ndarray | None = None) -> DensityView:
    """The density grid of the map's points inside ``box`` (None: all of them) and the sample of
    them to draw, re-queried on the server for every zoom. ``rows``: only these index rows (the
    sidebar's view; None: every frame)."""
    from core import maps
    from core.maps.points import DENSITY_BINS

    xy = np.asarray(layout, dtype=np.float32)
    ids = np.arange(len(xy), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    xy = xy[ids] if rows is not None else xy
    counts, xe, ye = maps.density_grid(xy, DENSITY_BINS, box=box)
    drawn = ids[maps.view_points(xy, box, limit=draw_budget())]
    view = box if box is not None else (float(xe[0]), float(xe[-1]), float(ye[0]), float(ye[-1]))
    return DensityView(counts, xe, ye, drawn, int(counts.sum()), view)


def zoom_box(selection: Mapping[str, Any] | None) -> Box | None:
    """The last box dragged on the map, from Plotly's selection state, as (x0, x1, y0, y1); None
    when the selection has no box (nothing picked, a lasso or clicked points)."""
    if not isinstance(selection, Mapping):
        return None
    sel = selection.get("selection", selection)
    boxes = sel.get("box") if isinstance(sel, Mapping) else None
    if not boxes:
        return None
    last = boxes[-1]
    try:
        x0, x1 = sorted(float(v) for v in last["x"][:2])
        y0, y1 = sorted(float(v) for v in last["y"][:2])
    except (KeyError, TypeError, ValueError):
        return None
    return (x0, x1, y0, y1)
