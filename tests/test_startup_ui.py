"""The first Map's start-up pieces (issue 21): the hover text built column-wise, and the Plotly
chunk the sidebar preloads found in this Streamlit install."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from app import preload, widgets
from core.schema import UNKNOWN, default_schema


def test_compact_labels_match_a_row_by_row_join() -> None:
    schema = default_schema()
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({a.name: rng.choice([v.name for v in a.values] + [UNKNOWN], 50)
                         for a in schema.attributes})
    want = [" · ".join(a.display_of(str(row[a.name])) for a in schema.attributes) for _, row in meta.iterrows()]
    assert widgets.compact_labels(meta, schema).tolist() == want
    assert widgets.compact_labels(meta.iloc[:0], schema).tolist() == []


def test_the_preloaded_chunk_is_the_one_streamlit_loads_for_plotly_charts() -> None:
    chunk = preload.plotly_chunk()
    assert chunk is not None, "Streamlit's Plotly chunk not found: the sidebar's preload does nothing"
    js = Path(st.__file__).resolve().parent / "static" / "static" / "js"
    assert (js / chunk).stat().st_size > 1_000_000  # Plotly itself, not a stub
    assert any(chunk in p.read_text(errors="ignore") for p in js.glob("index.*.js"))  # the name the app imports


def test_the_model_load_scheduled_after_the_page_starts_at_once_when_asked_and_runs_once() -> None:
    import time

    from app import state

    calls: list[float] = []
    load = state.ModelLoad(lambda: calls.append(time.monotonic()) or "model")
    load.start(after=0.3)  # what the workbench does after its first page
    load.start(after=0.3)
    assert load.started is not None and not calls
    t = time.monotonic()
    assert load.future.result(timeout=10) == "model" and len(calls) == 1 and calls[0] >= t + 0.25
    asked = state.ModelLoad(lambda: calls.append(time.monotonic()) or "asked")
    asked.start(after=600)
    asked.start()  # a page needs it now: it does not wait for the scheduled start
    assert asked.future.result(timeout=60) == "asked" and len(calls) == 2
    asked._run(asked._load)  # what the scheduled start does when it comes: nothing more
    assert len(calls) == 2
