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
