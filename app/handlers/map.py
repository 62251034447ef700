"""The map: layouts, colours, selections, placing an upload, exports."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
