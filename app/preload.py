"""Warm the browser for the Map (issue 21: the first Map must draw within 5 s).

Streamlit fetches and evaluates Plotly's chunk (~4.7 MB of JavaScript: PlotlyChart.<hash>.js) only
when a page first shows a Plotly chart, and evaluating it is the largest single piece of the first
Map's wall time in the browser. The sidebar mounts this script-only component on every page; once
the page has drawn and Streamlit has been idle for a second, it imports that chunk once per browser
tab, in an idle moment. Streamlit's own import of the same URL later finds it in the module map, so
the Map (or Triage's, Train's and Ask's charts) skips that work. Nothing is drawn.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import streamlit as st

_JS = """
export default function (component) {
  const { data } = component;
  if (!data || !data.chunk || window.__ssPreload) return;
  window.__ssPreload = true;
  const main = [...document.querySelectorAll('script[src]')].find((s) => /\\/static\\/js\\/index\\.[^/]+\\.js/.test(s.src));
  if (!main) return;
  const url = new URL(data.chunk, main.src).href;
  const busy = '[data-testid=stStatusWidgetRunningIcon], [data-testid=stStatusWidgetRunningManIcon], '
    + '[data-testid=stSpinner], [data-testid=stProgress]';
  let quiet = 0;
  // Not torn down on a rerun: one import per tab, whenever the page first sits quiet for a second.
  const timer = setInterval(() => {
    quiet = document.querySelector(busy) ? 0 : quiet + 1;
    if (quiet < 4) return;
    clearInterval(timer);
    const later = window.requestIdleCallback || ((f) => setTimeout(f, 0));
    later(() => import(url).catch(() => {}), { timeout: 3000 });
  }, 250);
}
"""
_component = st.components.v2.component("scenescope.preload", js=_JS)


@cache
def plotly_chunk() -> str | None:
    """The file name of Streamlit's Plotly chunk in this install, or None (another build layout)."""
    js = Path(st.__file__).resolve().parent / "static" / "static" / "js"
    found = sorted(js.glob("PlotlyChart.*.js"))
    return found[0].name if len(found) == 1 else None


def preload_plotly() -> None:
    """Mount the preloader (call once per run, e.g. in the sidebar)."""
    chunk = plotly_chunk()
    if chunk:
        _component(key="ss_preload", data={"chunk": chunk}, height=0)
