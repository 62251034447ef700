"""The Search page's clip results and Retrieval panel (drawn here so the page file stays short).

Clips: each ranked clip shows a strip of its frames in time order, each frame with its weight in
the clip vector (the AFA student's attention, or equal weights for mean pooling), the frames of its
best moment marked. Moments: the ranked clips' best windows in one table. Retrieval: the current
model's ``eval-retrieval`` figures, from a saved report or computed on demand with a progress bar.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import handlers, state, words

STRIP_MAX = 8  # frames drawn per clip (longer clips: evenly spaced, the moment's frames kept)


def _strip_frames(frame_ids: np.ndarray, times: np.ndarray, start: float, end: float) -> list[int]:
    """Positions of the frames to draw: all when few, else evenly spaced plus the moment's own."""
    n = len(frame_ids)
    if n <= STRIP_MAX:
        return list(range(n))
    keep = set(np.linspace(0, n - 1, STRIP_MAX).round().astype(int).tolist())
    keep |= {i for i in range(n) if start <= times[i] < end}
    return sorted(keep)[: STRIP_MAX + 4]


def show_clips(eng: state.Engine, query: object, k: int = handlers.CLIP_RESULTS,
               among: np.ndarray | None = None) -> None:
    """Clips and moments ranked for ``query`` (text or image); ``among``: only clips with frames
    in the sidebar's view (None: every clip)."""
    store = eng.store
    ranked = handlers.search_clip_results(eng.model, store, query, k=k, among=among)
    pooling = handlers.clip_pooling(eng.model, store)
    st.subheader(f"Clips · top {len(ranked)}")
    total = handlers.clip_count(eng.model, store)
    if among is not None and total:
        n_view = len(handlers.clips_in_view(eng.model, store, among))
        st.caption(f"Clips with frames in the sidebar's view: {n_view:,} of {words.count(total, 'clip')}; "
                   "frames outside it are marked ◌.")
    if ranked.empty:
        st.caption("No clip has a frame in the sidebar's view." if total else
                   "This index holds no clips (no clip with more than one indexed frame).")
        return
    st.caption(f"Clips ranked by one vector each, pooled from their frames by the {pooling}; the weight "
               "under each frame is its share of that vector. ▶ marks the frames of the best moment.")
    shown = np.concatenate(ranked["frame_ids"].tolist())
    outside = set() if among is None else set(np.setdiff1d(shown, among).tolist())  # strip frames not in the view
    times = store.meta["timestamp_s"].to_numpy(np.float64)
    with st.container(key="search-clips"):
        for rank, c in enumerate(ranked.itertuples(), start=1):
            st.markdown(f"**#{rank} · {c.clip_id}** · sim {c.similarity:.3f} · {c.split} · "
                        f"{words.count(c.n_frames, 'frame')} · moment {c.moment_start_s:.1f}–{c.moment_end_s:.1f} s")
            t = times[c.frame_ids]
            picks = _strip_frames(c.frame_ids, t, c.moment_start_s, c.moment_end_s)
            cols = st.columns(max(len(picks), 4))
            for col, i in zip(cols, picks, strict=False):
                inside = c.moment_start_s <= t[i] < c.moment_end_s
                mark = "◌ " if int(c.frame_ids[i]) in outside else ""
                text = f"{mark}{'▶ ' if inside else ''}{t[i]:.1f} s · w {c.weights[i]:.2f}"
                thumb = state.thumb_of(store, int(c.frame_ids[i]), 160)
                if thumb is None:  # the frame file is gone: the weight still says what the clip vector used
                    col.caption(f"(missing) {text}")
                else:
                    col.image(thumb, caption=text)
    st.subheader("Moments")
    moments = handlers.clip_moments(ranked)
    st.dataframe(moments.drop(columns=["clip_row"]), hide_index=True, width="stretch", key="search_moments",
                 column_config={"clip_id": "Clip",
                                "moment_start_s": st.column_config.NumberColumn("Start (s)", format="%.1f"),
                                "moment_end_s": st.column_config.NumberColumn("End (s)", format="%.1f"),
                                "moment_similarity": st.column_config.NumberColumn("Moment similarity",
                                                                                   format="%.3f"),
                                "clip_similarity": st.column_config.NumberColumn("Clip similarity",
                                                                                 format="%.3f")})


def retrieval_panel(eng: state.Engine) -> None:
    """The current model's retrieval metrics (saved report, or computed on a button press)."""
    with st.expander(f"Retrieval · {eng.model.identity}", icon=":material/leaderboard:"):
        report = handlers.cached_retrieval_report(eng.model)
        if st.button("Compute" if report is None else "Recompute", key="retrieval_compute",
                     help="Renders a small captioned clip set once (in the workspace), embeds it with this "
                          "model and ranks its clips by their held-out captions"):
            bar = st.progress(0.0, text="Starting…")
            report = handlers.compute_retrieval_report(eng.model, lambda f, s: bar.progress(f, text=s))
        if report is None:
            st.caption("No retrieval report for this model yet: Compute measures text→clip and clip→text "
                       "recall (`scenescope eval-retrieval`).")
            return
        st.caption(f"{report['clips']} held-out clips in families that share one context (so "
                   f"captions differ in place and stages), one unseen-template caption each ({report['created']}).")
        st.dataframe(handlers.retrieval_table(report), hide_index=True, width="stretch", key="retrieval_table",
                     column_config={c: st.column_config.NumberColumn(format="%.1f")
                                    for c in ("text→clip R@1", "R@5", "R@10", "MdR", "clip→text R@1",
                                              "clip→text R@5")})
        m = report["methods"].get("afa", {}).get("moments")
        if m:
            st.caption(f"Moments in long drives ({m['queries']} queries): R1@0.5 {m['r1_05']:.3f} · "
                       f"R1@0.7 {m['r1_07']:.3f} · mAP {m['map']:.3f}")


__all__ = ["retrieval_panel", "show_clips"]
