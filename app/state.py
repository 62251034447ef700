"""Cached engine resources and the session's shared choices (index, model, k).

Streamlit reruns every page script on each click; the model and the index are loaded once per
process (``st.cache_resource``) and the results of slow engine calls once per input
(``st.cache_data``), so a rerun only redraws.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from app import handlers
from app.handlers import default_index, list_indexes  # noqa: F401 (list_indexes re-exported for the sidebar)

if TYPE_CHECKING:
    from core.schema import Schema
    from core.types import IndexStore, SceneModel

DEFAULT_K = 5
INDEX_MODEL = "(index's own model)"  # sidebar choice: load whatever model built the index

# session_state keys shared by the sidebar and the pages
KEY_INDEX, KEY_MODEL, KEY_K = "ss_index", "ss_model", "ss_k"


@dataclass
class Engine:
    """What every page works on: one index, the model that reads it, and the vote size."""

    index_dir: Path
    model: SceneModel
    store: IndexStore
    k: int

    @property
    def schema(self) -> Schema:
        return self.store.schema

    @property
    def key(self) -> str:
        """Identifies this index's contents for cache keys (rebuilt index -> new key; a label
        correction bumps ``labels_version``, so votes and metrics made before it are recomputed)."""
        m = self.store.manifest
        return f"{self.index_dir.resolve()}|{m.get('created')}|{len(self.store)}|{m.get('labels_version', 0)}"


def ensure_index(index_dir: Path) -> None:
    """Build the embedded demo on first use (the only index the app makes by itself)."""
    if not handlers.demo_missing(index_dir):
        return
    with st.status("Preparing the demo dataset and index (first start only)…", expanded=True) as status:
        st.write("Rendering the synthetic demo scenes and clips, then embedding them with the bundled "
                 "model. `make run` does this before the server starts; here it takes a few minutes.")
        with st.spinner("Working…", show_time=True):
            handlers.prepare_demo(progress=False)
        status.update(label="Demo ready", state="complete", expanded=False)


@st.cache_resource(show_spinner="Loading model and index…", max_entries=4)
def _open(index_dir: str, model_name: str | None, stamp: float) -> tuple[SceneModel, IndexStore]:
    return handlers.open_engine(index_dir, model_name)


def _stamp(index_dir: Path) -> float:
    """Manifest mtime: a rebuilt index reopens instead of serving the cached old one."""
    try:
        return (index_dir / "manifest.json").stat().st_mtime
    except OSError:
        return 0.0


def engine() -> Engine:
    """The session's engine; on failure shows the reason and stops the page."""
    index_dir = Path(st.session_state.get(KEY_INDEX) or default_index())
    model = st.session_state.get(KEY_MODEL)
    k = int(st.session_state.get(KEY_K) or DEFAULT_K)
    try:
        ensure_index(index_dir)
        m, s = _open(str(index_dir), None if model in (None, INDEX_MODEL) else model, _stamp(index_dir))
    except Exception as e:  # any load failure: say which index and why, keep the app alive
        st.error(f"Cannot open index **{index_dir}**: {e}")
        st.info("Pick another index in the sidebar, or build one: "
                "`scenescope index --data DATA --out indexes/NAME --split all`.")
        st.stop()
        raise  # unreachable (st.stop raises); keeps type checkers honest
    return Engine(index_dir, m, s, k)


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads((index_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


# ---- cached engine results --------------------------------------------------------------------
def thumbnail(path: str, width: int = 320) -> np.ndarray | None:
    """``handlers.thumbnail``, cached per file and width across reruns and sessions. A file not
    there yet is not cached: the demo's frames appear while the workbench runs."""
    import os

    return _thumbnail(path, width) if os.path.isfile(path) else None


@st.cache_data(show_spinner=False, max_entries=2000)
def _thumbnail(path: str, width: int = 320) -> np.ndarray | None:
    return handlers.thumbnail(path, width)


def thumb_of(store: IndexStore, row: int, width: int = 320) -> np.ndarray | None:
    path = handlers.frame_file(store, row=row)
    return thumbnail(str(path), width) if path else None


def thumb_of_path(store: IndexStore, rel: str | None, width: int = 320) -> np.ndarray | None:
    path = handlers.frame_file(store, rel=rel)
    return thumbnail(str(path), width) if path else None


# Slow engine results keyed by index contents: module-level (shared by sessions, survives reruns)
# rather than st.cache_data, because they take live progress callbacks that must not be hashed.
_RESULTS: OrderedDict[tuple, Any] = OrderedDict()
_RESULTS_MAX = 16


def memo(key: tuple, compute: Callable[[], Any]) -> Any:
    if key not in _RESULTS:
        _RESULTS[key] = compute()
        while len(_RESULTS) > _RESULTS_MAX:
            _RESULTS.popitem(last=False)
    _RESULTS.move_to_end(key)
    return _RESULTS[key]
