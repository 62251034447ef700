"""Opening the sample view: the record a thumbnail's "Open" button leaves in the session.

Kept apart from ``sample_view`` (the dialog itself) so that ``widgets``, which draws the buttons,
and ``sample_view``, which draws with ``widgets``, do not import each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

KEY = "sample_view"  # session_state: {"rows": [...], "pos": int, "source": str}


def open_sample(rows: Sequence[int], pos: int, source: str) -> None:
    """Open the view on ``rows[pos]``; Previous/Next then walk ``rows`` (a button callback)."""
    st.session_state[KEY] = {"rows": [int(r) for r in rows], "pos": int(pos), "source": source}


def open_button(rows: Sequence[int], pos: int, source: str, key: str) -> None:
    """The small "Open" button under a thumbnail."""
    st.button("Open", key=key, icon=":material/open_in_full:", type="tertiary", on_click=open_sample,
              args=(list(rows), pos, source), help="Open this sample: the frame large, its labels, "
              "its clip and its neighbours (← → move, Esc closes)")
