"""A clip playing in the Scene page: the browser's video player with the per-frame votes as
captions, beside the vote timeline, whose cursor follows the playing video.

Playback never reruns the page: the captions are a WebVTT track (``handlers.vote_captions``) the
player shows by itself, and a small script-only component moves a line over the timeline chart on
the video's ``timeupdate`` events (Streamlit reports no media events to Python).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from app import figures, handlers

if TYPE_CHECKING:
    from app.handlers import SceneAnalysis
    from core.schema import Schema

PLAYER_KEY, CHART_KEY = "scene-player", "scene_timeline"

# Finds the player and the chart by their containers' keys, then keeps a red line on the chart at
# the video's time (on timeupdate, and every animation frame while playing, for a smooth line).
_CURSOR_JS = """
export default function (component) {
  const { data } = component;
  let raf = null;
  const place = () => {
    const v = document.querySelector('.st-key-' + data.player + ' video');
    const gd = document.querySelector('.st-key-' + data.chart + ' .js-plotly-plot');
    if (!v || !gd || !gd._fullLayout || !gd._fullLayout.xaxis) return;
    let line = gd.querySelector('.ss-play-cursor');
    if (!line) {
      line = document.createElement('div');
      line.className = 'ss-play-cursor';
      line.style.cssText = 'position:absolute;width:2px;background:#d62728;pointer-events:none;z-index:10';
      gd.style.position = 'relative';
      gd.appendChild(line);
    }
    const fl = gd._fullLayout;
    const [x0, x1] = fl.xaxis.range;
    const t = Math.min(Math.max(v.currentTime, x0), x1);
    line.style.left = (fl._size.l + fl.xaxis.l2p(t) - 1) + 'px';
    line.style.top = fl._size.t + 'px';
    line.style.height = fl._size.h + 'px';
    line.dataset.t = v.currentTime.toFixed(2);
  };
  const tick = () => { place(); const v = document.querySelector('.st-key-' + data.player + ' video');
    raf = v && !v.paused ? requestAnimationFrame(tick) : null; };
  const attach = () => {
    const v = document.querySelector('.st-key-' + data.player + ' video');
    if (!v) return;
    if (!v.__ssCursor) {
      v.__ssCursor = true;
      v.addEventListener('timeupdate', place);
      v.addEventListener('seeked', place);
      v.addEventListener('play', () => { if (!raf) raf = requestAnimationFrame(tick); });
    }
    place();
  };
  attach();
  // Streamlit may replace the chart's or the player's element on a rerun: keep checking.
  const timer = setInterval(attach, 500);
  return () => { clearInterval(timer); if (raf) cancelAnimationFrame(raf); };
}
"""
_cursor = st.components.v2.component("scenescope.play_cursor", js=_CURSOR_JS)


def clip_player(video: bytes | None, analysis: SceneAnalysis, schema: Schema) -> None:
    """The clip playing with its votes as captions (left) and the timeline with a live cursor
    (right); without the clip's bytes, the timeline alone."""
    captions = handlers.vote_captions(analysis.times, analysis.votes, schema, analysis.duration)
    fig = figures.timeline_figure(analysis.segments, schema, analysis.duration,
                                  unfamiliar=analysis.unfamiliar_stretches())
    left, right = st.columns([2, 3], gap="medium") if video else (None, st.container())
    if left is not None:
        with left, st.container(key=PLAYER_KEY):
            st.video(video, subtitles={"Votes": captions}, muted=True)
    with right:
        st.plotly_chart(fig, width="stretch", config={"displayModeBar": False}, key=CHART_KEY)
        st.caption("Captions on the video: each sampled frame's votes. The red line on the timeline "
                   "follows the video; hover a segment for its value and time span.")
    if video:
        _cursor(key="scene_play_cursor", data={"player": PLAYER_KEY, "chart": CHART_KEY}, height=0)
