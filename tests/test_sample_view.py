"""The sample view (open a thumbnail, move with Previous/Next, find similar) and clip playback's
vote captions: plain handlers against numpy references, and the controls in Streamlit's AppTest."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import SmallIndex
from streamlit.testing.v1 import AppTest

from app import handlers
from app.figures import timeline_figure
from app.handlers.playback import UNSURE, vote_caption
from core.schema import UNKNOWN

WORKBENCH = str(Path(__file__).resolve().parents[1] / "app" / "workbench.py")
TIMEOUT = 120


@pytest.fixture(scope="module")
def store(index_env: SmallIndex) -> object:
    from core.index import IndexStore

    return IndexStore.load(index_env.index)


# ---- handlers ------------------------------------------------------------------------------------
def test_sample_info_labels_and_place_in_clip(store: object) -> None:
    meta = store.meta
    sizes = meta["clip_id"].map(meta["clip_id"].value_counts()).to_numpy()
    clip_rows = np.flatnonzero(sizes > 1)
    row = int(clip_rows[len(clip_rows) // 2])
    info = handlers.sample_info(store, row)
    truth = store.labels(row)
    assert info.labels == [(a.display, a.display_of(truth.get(a.name, UNKNOWN))) for a in store.schema.attributes]
    # reference: the row's rank by time among its clip's rows
    same = meta[meta["clip_id"] == meta["clip_id"].iat[row]]
    assert info.clip_frames == len(same)
    assert info.clip_position == int((same["timestamp_s"] < meta["timestamp_s"].iat[row]).sum()) + 1
    assert f"clip {info.clip_id} · frame {info.clip_position} of {len(same)} · " in info.where
    assert not re.search(r"\d\.\d{3,}", info.where)  # no float noise
    still = int(np.flatnonzero(sizes == 1)[0])
    assert handlers.sample_info(store, still).where.endswith("still image")
    with pytest.raises(IndexError, match=f"row {len(store)} is not in this index"):
        handlers.sample_info(store, len(store))


def test_sample_step_stops_at_the_ends() -> None:
    rows = [7, 3, 9]
    assert [handlers.sample_step(rows, p, d) for p, d in ((0, -1), (0, 1), (2, 1), (1, -1))] == [0, 1, 2, 0]
    assert handlers.sample_step([], 0, 1) == 0


def test_similar_rows_match_brute_force_under_the_leave_out_rule(store: object) -> None:
    row = 5
    got = handlers.similar_rows(store, row, k=6)
    meta = store.meta
    emb = store.embeddings().astype(np.float64)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    own = meta["clip_id"].iat[row]
    ok = (meta["split"].astype(str).to_numpy() == "train") & (np.arange(len(meta)) != row)
    if own:
        ok &= meta["clip_id"].to_numpy() != own
    sims = np.where(ok, emb @ emb[row], -np.inf)
    expect = np.argsort(-sims, kind="stable")[:6]
    assert got[0] == row and got[1:] == [int(i) for i in expect]


# ---- captions and the timeline ------------------------------------------------------------------
def _clip_votes(store: object, n: int = 7) -> tuple[np.ndarray, list]:
    from core.scoring import vote_rows

    votes = vote_rows(store, list(range(n)), k=5)
    votes[3].attributes[store.schema.names[0]].abstained = True  # one unsure attribute
    return np.arange(n) * 0.5, votes


def test_vote_cues_cover_the_clip_in_order_with_display_names(store: object) -> None:
    times, votes = _clip_votes(store)
    duration = 3.38  # shorter than the last frame + one step (3.5 s): the player's length
    cues = handlers.vote_cues(times, votes, store.schema, duration)
    assert cues[0].start_s == 0.0 and cues[-1].end_s == pytest.approx(duration)
    for a, b in zip(cues, cues[1:], strict=False):
        assert a.start_s < a.end_s == b.start_s  # monotonic, no gaps or overlaps
        assert a.text != b.text  # equal neighbours merge
    for t, vote in zip(times, votes, strict=True):  # each frame's cue says that frame's votes
        cue = next(c for c in cues if c.start_s <= t < c.end_s)
        for a in store.schema.attributes:
            av = vote.attributes[a.name]
            shown = UNSURE if av.abstained or av.value == UNKNOWN else a.display_of(av.value)
            assert f"{a.display}: {shown}" in cue.text
    assert f"{store.schema.attributes[0].display}: {UNSURE}" in vote_caption(votes[3], store.schema)

    vtt = handlers.vote_captions(times, votes, store.schema, duration)
    assert vtt.startswith("WEBVTT\n\n1\n00:00:00.000 --> ")
    stamps = re.findall(r"(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})", vtt)
    assert len(stamps) == len(cues)
    assert stamps[-1][4:] == ("00", "00", "03", "380")
    with pytest.raises(ValueError, match="7 frame times but 6 votes"):
        handlers.vote_cues(times, votes[:6], store.schema, duration)


def test_timeline_ends_with_the_clip_and_hides_squeezed_labels(store: object) -> None:
    from core.timeline import timeline

    times, votes = _clip_votes(store)
    assert handlers.clip_duration(times) == pytest.approx(3.5)
    duration = handlers.clip_duration(times, length=3.38)
    assert duration == pytest.approx(3.38)
    assert handlers.clip_duration(times, length=99.0) == pytest.approx(3.5)  # bad metadata: ignored
    segments = timeline(times, [v.labels() for v in votes], store.schema)
    fig = timeline_figure(segments, store.schema, duration)
    assert fig.layout.xaxis.range == (0, duration)
    assert max(b.base[0] + b.x[0] for b in fig.data) == pytest.approx(duration)
    assert fig.layout.uniformtext.mode == "hide" and fig.layout.uniformtext.minsize >= 10


# ---- the pages (AppTest) -----------------------------------------------------------------------
def _app() -> AppTest:
    at = AppTest.from_file(WORKBENCH, default_timeout=TIMEOUT)
    at.run()
    return at


def _open_buttons(at: AppTest, grid: str) -> list:
    return [b for b in at.button if (b.key or "").startswith(f"{grid}-open-")]


def test_scene_neighbour_opens_the_sample_view_and_moves(store: object) -> None:
    at = _app()
    at.segmented_control(key="scene_source").set_value("From the index").run()
    opens = _open_buttons(at, "neighbours-grid")
    assert len(opens) == 5  # one per neighbour (the sidebar's default k)
    opens[1].click().run()
    assert not at.exception
    view = at.session_state["sample_view"]
    assert view["pos"] == 1 and view["source"] == "Scene neighbours" and len(view["rows"]) == 5
    row = view["rows"][1]
    text = "\n".join(m.value for m in at.markdown)
    truth = store.labels(row)
    assert f"**#{row}**" in text
    for a in store.schema.attributes:
        assert f"{a.display}: **{a.display_of(truth[a.name])}**" in text
    prev, nxt = at.button(key="sample_prev"), at.button(key="sample_next")
    assert prev.proto.shortcut and nxt.proto.shortcut  # the arrow keys
    nxt.click().run()
    assert at.session_state["sample_view"]["pos"] == 2
    at.button(key="sample_prev").click().run()
    at.button(key="sample_prev").click().run()
    assert at.session_state["sample_view"]["pos"] == 0 and at.button(key="sample_prev").disabled
    first = at.session_state["sample_view"]["rows"][0]
    at.button(key="sample_similar").click().run()
    view = at.session_state["sample_view"]
    assert view["rows"][0] == first and first not in view["rows"][1:]
    assert view["pos"] == 0 and len(view["rows"]) == handlers.SIMILAR_MAX + 1
    assert "similar to" in view["source"]
