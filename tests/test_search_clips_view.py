"""Search's clip and moment results follow the sidebar's view: only clips with a frame in the view,
in the order of the unrestricted ranking (numpy cosine over the clip vectors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SmallIndex
from streamlit.testing.v1 import AppTest

from app import handlers
from core.index import IndexStore
from core.index.clips import clips_of
from core.models import load_model

WORKBENCH = str(Path(__file__).resolve().parents[1] / "app" / "workbench.py")
QUERY = "approaching a roundabout"


def test_clip_results_keep_only_clips_in_the_view_in_rank_order(small_index: SmallIndex) -> None:
    store, model = IndexStore.load(small_index.index), load_model(small_index.model)
    clips = clips_of(store, model)
    q = model.embed_texts([QUERY])[0]
    order = np.argsort(-(clips.vectors @ (q / np.linalg.norm(q))), kind="stable")  # numpy reference ranking
    assert len(order) >= 3
    # A view holding one frame of the 1st and of the 3rd ranked clip, and every still.
    one = [int(np.flatnonzero(clips.frame_clip == c)[0]) for c in order[[0, 2]]]
    stills = np.flatnonzero(clips.frame_clip < 0)
    among = np.sort(np.concatenate([one, stills]))
    assert handlers.clips_in_view(model, store, among).tolist() == sorted(order[[0, 2]].tolist())
    ranked = handlers.search_clip_results(model, store, QUERY, k=6, among=among)
    assert ranked["clip_row"].tolist() == order[[0, 2]].tolist()
    assert handlers.search_clip_results(model, store, QUERY, k=1, among=among)["clip_row"].tolist() == [order[0]]
    assert handlers.search_clip_results(model, store, QUERY, among=stills).empty
    assert handlers.search_clip_results(model, store, QUERY, k=6)["clip_row"].tolist() == order[:6].tolist()


def test_search_page_clips_follow_the_sidebar_view(index_env: SmallIndex, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCENESCOPE_WORKSPACE", str(tmp_path))
    store = IndexStore.load(index_env.index)
    clips = clips_of(store)
    at = AppTest.from_file(WORKBENCH, default_timeout=120)
    at.run()
    at.switch_page("views/search.py").run()
    at.text_input(key="search_text").set_value(QUERY).run()
    assert not at.exception, [e.value for e in at.exception]
    assert f"Clips · top {len(clips)}" in [s.value for s in at.subheader]

    picked = str(clips.table["clip_id"].iat[1])
    at.multiselect(key="fv_clip").select(picked).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Clips · top 1" in [s.value for s in at.subheader]
    assert any(f"**#1 · {picked}**" in str(m.value) for m in at.markdown)
    assert any(c.value.startswith(f"Clips with frames in the sidebar's view: 1 of {len(clips)} clips")
               for c in at.main.caption)
    moments = next(df.value for df in at.dataframe if "moment_start_s" in df.value.columns)
    assert moments["clip_id"].tolist() == [picked]

    at.multiselect(key="fv_clip").set_value([]).run()
    at.multiselect(key="fv_split").select("train").run()  # a view with only some clips' frames
    meta = store.meta
    expected = {str(c) for c in meta.loc[(meta["split"] == "train") & (meta["clip_id"].astype(str) != ""),
                                         "clip_id"]} & set(clips.table["clip_id"].astype(str))
    moments = next(df.value for df in at.dataframe if "moment_start_s" in df.value.columns)
    assert set(moments["clip_id"]) == expected
