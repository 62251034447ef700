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
from typing import Any

import numpy as np
import streamlit as st

from app.handlers import default_index, is_demo, list_indexes, prepare_demo  # noqa: F401 (list_indexes re-exported)
from core.index import IndexStore
from core.models import SceneModel

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
    def schema(self) -> Any:
        return self.store.schema

    @property
    def key(self) -> str:
        """Identifies this index's contents for cache keys (rebuilt index -> new key)."""
        return f"{self.index_dir.resolve()}|{self.store.manifest.get('created')}|{len(self.store)}"


def ensure_index(index_dir: Path) -> None:
    """Build the embedded demo on first use (the only index the app makes by itself)."""
    if (index_dir / "manifest.json").is_file() or not is_demo(index_dir):
        return
    with st.status("Preparing the demo dataset and index (first start only)…", expanded=True) as status:
        st.write("Rendering the synthetic demo scenes and clips, then embedding them with the bundled "
                 "model. `make run` does this before the server starts; here it takes a few minutes.")
        with st.spinner("Working…", show_time=True):
            prepare_demo(progress=False)
        status.update(label="Demo ready", state="complete", expanded=False)


@st.cache_resource(show_spinner="Loading model and index…", max_entries=4)
def _open(index_dir: str, model_name: str | None, stamp: float) -> tuple[SceneModel, IndexStore]:
    from core.pipeline import open_index

    return open_index(index_dir, model_name)


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
@st.cache_data(show_spinner=False, max_entries=2000)
def thumbnail(path: str, width: int = 320) -> np.ndarray | None:
    """A small RGB copy of a dataset frame, or None when the file is gone."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.draft("RGB", (width, width))  # JPEG: decode at reduced scale, much faster
            im = im.convert("RGB")
            im.thumbnail((width, width * 2))
            return np.asarray(im)
    except (OSError, ValueError):
        return None


def thumb_of(store: IndexStore, row: int, width: int = 320) -> np.ndarray | None:
    try:
        return thumbnail(str(store.abspath(int(row))), width)
    except ValueError:  # a manifest path escaping the dataset root is refused by the engine
        return None


def thumb_of_path(store: IndexStore, rel: str | None, width: int = 320) -> np.ndarray | None:
    from core.data import resolve_inside

    if not rel:
        return None
    try:
        return thumbnail(str(resolve_inside(store.data_root, rel)), width)
    except ValueError:
        return None


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
