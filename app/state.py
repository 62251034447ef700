"""Cached engine resources and the session's shared choices (index, model, k).

Streamlit reruns every page script on each click; the model and the index are loaded once per
process (``st.cache_resource``) and the results of slow engine calls once per input
(``st.cache_data``), so a rerun only redraws.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
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


class ModelLoad:
    """A model loading in a background thread: importing torch and open_clip and reading the
    weights take ~10 s, and a page draws what needs no model (the index, its frames, the map)
    meanwhile. The workbench starts it a moment after its first page's script has run (a thread
    started earlier would hold the GIL, and a core, against that page while the browser draws it:
    issue 21); ``get`` starts it at once if need be and waits, with a spinner."""

    def __init__(self, load: Callable[[], SceneModel]) -> None:
        self.started: float | None = None
        self.future: Future[SceneModel] = Future()
        self._load, self._lock = load, threading.Lock()
        self._begun, self._now, self._later = False, False, False

    def start(self, after: float = 0.0) -> None:
        """Start the load now, or ``after`` seconds from now; idempotent, and a start now wins over
        one scheduled for later."""
        with self._lock:
            if self.started is None:
                self.started = time.monotonic()
            if self._begun or self._now or (after > 0 and self._later):
                return
            if after > 0:
                self._later = True
                timer = threading.Timer(after, self._run, args=(self._load,))
                timer.name, timer.daemon = "scenescope-model", True
                timer.start()
            else:
                self._now = True
                threading.Thread(target=self._run, args=(self._load,), name="scenescope-model", daemon=True).start()

    def _run(self, load: Callable[[], SceneModel]) -> None:
        with self._lock:  # the scheduled start and a start now: whichever comes first loads
            if self._begun:
                return
            self._begun = True
        try:
            self.future.set_result(load())
        except BaseException as e:  # kept for the page that asks, which shows it
            self.future.set_exception(e)

    def seconds(self) -> float:
        return 0.0 if self.started is None else time.monotonic() - self.started

    def get(self) -> SceneModel:
        self.start()
        if not self.future.done():
            with st.spinner(f"Loading the model (started {self.seconds():.0f} s ago)…", show_time=True):
                self.future.result()
        return self.future.result()


@dataclass
class Engine:
    """What every page works on: one index, the model that reads it, and the vote size. The model
    is loaded in the background; ``model`` waits for it, so only what needs it waits."""

    index_dir: Path
    store: IndexStore
    k: int
    loading: ModelLoad

    @property
    def model(self) -> SceneModel:
        try:
            return self.loading.get()
        except Exception as e:  # the index opened, its model did not: say why, keep the app alive
            _cannot_open(self.index_dir, e)
            raise  # unreachable (st.stop raises)

    @property
    def model_ready(self) -> bool:
        return self.loading.future.done()

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


@st.cache_resource(show_spinner="Opening the index…", max_entries=4)
def _store(index_dir: str, stamp: float) -> IndexStore:
    return handlers.open_store(index_dir)


@st.cache_resource(show_spinner=False, max_entries=4)
def _model(index_dir: str, model_name: str | None, build: str, _stamp: float) -> ModelLoad:
    """Keyed by the index's model and build (``_build``), not by its manifest's mtime (``_stamp``,
    not hashed): a label correction rewrites the manifest, and reloading the model for it cost a
    model load, a clock ticking in the sidebar and a whole-app rerun while the user went on."""
    store = _store(index_dir, _stamp)
    return ModelLoad(lambda: handlers.open_model(store, model_name))


def _build(index_dir: str, stamp: float) -> str:
    """What the model load depends on: the index's model identity and when it was built."""
    m = _store(index_dir, stamp).manifest
    return f"{m.get('model')}|{m.get('created')}"


def _stamp(index_dir: Path) -> float:
    """Manifest mtime: a rebuilt index reopens instead of serving the cached old one."""
    try:
        return (index_dir / "manifest.json").stat().st_mtime
    except OSError:
        return 0.0


def engine() -> Engine:
    """The session's engine; on failure shows the reason and stops the page."""
    index_dir, name = _choice()
    k = int(st.session_state.get(KEY_K) or DEFAULT_K)
    try:
        ensure_index(index_dir)
        stamp = _stamp(index_dir)
        s = _store(str(index_dir), stamp)
        loading = _model(str(index_dir), name, _build(str(index_dir), stamp), stamp)
    except Exception as e:  # any load failure: say which index and why, keep the app alive
        _cannot_open(index_dir, e)
        raise  # unreachable (st.stop raises); keeps type checkers honest
    if loading.future.done() and loading.future.exception() is not None:
        _model.clear(str(index_dir), name, _build(str(index_dir), stamp), stamp)  # tried again next run
    return Engine(index_dir, s, k, loading)


def _choice() -> tuple[Path, str | None]:
    """The session's index folder and model name (None: the index's own)."""
    model = st.session_state.get(KEY_MODEL)
    return Path(st.session_state.get(KEY_INDEX) or default_index()), None if model in (None, INDEX_MODEL) else model


def model_loading() -> ModelLoad | None:
    """The session's model load (started or not) when its index is on disk, for the sidebar to
    show and the workbench to start; None when the index is not there yet or does not open."""
    index_dir, name = _choice()
    if handlers.demo_missing(index_dir):
        return None
    try:
        stamp = _stamp(index_dir)
        _store(str(index_dir), stamp)
        return _model(str(index_dir), name, _build(str(index_dir), stamp), stamp)
    except Exception:  # the page says why
        return None


def _cannot_open(index_dir: Path, e: Exception) -> None:
    st.error(f"Cannot open index **{index_dir}**: {e}")
    st.info("Pick another index in the sidebar, or build one: "
            "`scenescope index --data DATA --out indexes/NAME --split all`.")
    st.stop()


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
