"""Clip vectors beside an index (core.index.clips), clip and moment search (core.retrieval.clipsearch),
and the Search page's clip results and Retrieval panel."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.index import IndexStore
from core.index.clips import CLIPS_MANIFEST, build_clips, clips_of, load_clips
from core.index.errors import IndexMismatchError
from core.retrieval.clipsearch import best_moment, rank_clips
from tests.conftest import SmallIndex

WORKBENCH = str(Path(__file__).resolve().parents[1] / "app" / "workbench.py")


@pytest.fixture(scope="module")
def store(small_index: SmallIndex) -> IndexStore:
    return IndexStore.load(small_index.index)


def _reference(store: IndexStore, weights: np.ndarray | None) -> dict[str, np.ndarray]:
    """Clip vectors by numpy: each multi-frame clip's frames weighted (equal weights without any), unit length."""
    emb = np.asarray(store.embeddings(), np.float64)
    clip = store.meta["clip_id"].astype(str).to_numpy()
    out = {}
    for c in set(clip[clip != ""]):
        rows = np.flatnonzero(clip == c)
        if len(rows) < 2:
            continue
        w = np.ones(len(rows)) if weights is None else weights[rows]
        v = (w[:, None] * emb[rows]).sum(0)
        out[c] = v / np.linalg.norm(v)
    return out


def test_clip_vectors_are_stored_at_build_and_pool_their_frames(store: IndexStore) -> None:
    clips = load_clips(store)
    assert clips is not None and len(clips) == 3  # the small index's three clips
    assert clips.manifest["model"] == store.manifest["model"]
    ref = _reference(store, clips.frame_weight.astype(np.float64))
    for i, c in enumerate(clips.table["clip_id"]):
        np.testing.assert_allclose(clips.vectors[i], ref[c], atol=1e-5)
        w = clips.frame_weight[clips.frame_clip == i]
        assert w.sum() == pytest.approx(1.0, abs=1e-5) and (w > 0).all()
    assert (clips.frame_weight[clips.frame_clip < 0] == 0).all()
    # mean pooling is the plain average of the frames
    meanp = build_clips(store, "meanp")
    ref = _reference(store, None)
    for i, c in enumerate(meanp.table["clip_id"]):
        np.testing.assert_allclose(meanp.vectors[i], ref[c], atol=1e-5)


def test_clip_vectors_refuse_another_model(store: IndexStore, small_index: SmallIndex, tmp_path: Path) -> None:
    other = SimpleNamespace(identity="other-model@0000")
    with pytest.raises(IndexMismatchError, match="other-model"):
        load_clips(store, other)
    # a clip file left by another model's build beside these frame vectors is refused too
    copy = tmp_path / "index"
    shutil.copytree(small_index.index, copy)
    m = json.loads((copy / CLIPS_MANIFEST).read_text())
    (copy / CLIPS_MANIFEST).write_text(json.dumps({**m, "model": "other-model@0000"}))
    with pytest.raises(IndexMismatchError, match="rebuild"):
        load_clips(IndexStore.load(copy))


def test_clip_search_ranks_like_numpy_and_finds_the_moment(store: IndexStore) -> None:
    clips = clips_of(store)
    rng = np.random.default_rng(0)
    for q in rng.normal(size=(5, store.dim)).astype(np.float32):
        ranked = rank_clips(store, clips, q, k=3)
        qn = q / np.linalg.norm(q)
        expect = np.argsort(-(clips.vectors.astype(np.float64) @ qn), kind="stable")
        assert ranked["clip_row"].tolist() == expect.tolist()
        np.testing.assert_allclose(ranked["similarity"], clips.vectors[expect] @ qn, atol=1e-5)
        row = ranked.iloc[0]
        times = store.meta["timestamp_s"].to_numpy()[row["frame_ids"]]
        assert (np.diff(times) >= 0).all()
        assert row["start_s"] <= row["moment_start_s"] < row["moment_end_s"]


def test_best_moment_is_the_run_above_the_baseline() -> None:
    times = np.arange(8) * 0.5
    scores = np.array([0.1, 0.1, 0.1, 0.9, 0.8, 0.85, 0.1, 0.1])
    start, end, mean = best_moment(times, scores)
    assert (start, end) == (1.5, 3.0)  # frames 3-5, the last one lasting one 0.5 s step
    assert mean == pytest.approx(np.mean([0.9, 0.8, 0.85]))


def test_an_index_without_clips_has_none() -> None:
    rows = [{"path": f"f{i}.png", "clip_id": f"s{i}"} for i in range(4)]
    from core.schema import default_schema

    schema = default_schema()
    rows = [{**r, **{a.name: a.value_names[0] for a in schema.attributes}} for r in rows]
    st = IndexStore.from_embeddings(np.eye(4, 8, dtype=np.float32), rows, model="m@1")
    assert build_clips(st) is None


# ---- the Search page (AppTest) -----------------------------------------------------------------------------
def _search_page(monkeypatch: pytest.MonkeyPatch, ws: Path) -> AppTest:
    monkeypatch.setenv("SCENESCOPE_WORKSPACE", str(ws))
    at = AppTest.from_file(WORKBENCH, default_timeout=120)
    at.run()
    at.switch_page("views/search.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_search_page_shows_clips_with_weights_and_moments(index_env: SmallIndex, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    at = _search_page(monkeypatch, tmp_path)
    at.text_input(key="search_text").set_value("approaching a roundabout").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Clips · top 3" in [s.value for s in at.subheader]
    assert any(str(m.value).startswith("**#1 ·") for m in at.markdown)
    # the strips: frames of the three clips (up to 8 + the moment's each), captioned with their weight
    captions = [c for im in at.get("image") for c in im.captions if " · w " in c]
    clips = clips_of(IndexStore.load(index_env.index))
    assert len(captions) >= 3 * min(8, int(clips.table["n_frames"].min()))
    stored = clips.frame_weight[clips.frame_clip >= 0]
    for c in captions:
        assert np.abs(stored - float(c.split(" · w ")[1])).min() <= 0.005, c
    assert any(c.startswith("▶") for c in captions)  # each clip's best moment is marked
    moments = next(df.value for df in at.dataframe if "moment_start_s" in df.value.columns)
    assert len(moments) == 3 and (moments["moment_end_s"] > moments["moment_start_s"]).all()


def test_retrieval_panel_shows_the_saved_report_and_computes_one(index_env: SmallIndex, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from app.handlers import clips as clip_handlers

    monkeypatch.setitem(clip_handlers.RETRIEVAL_CLIPS, "train", 4)
    monkeypatch.setitem(clip_handlers.RETRIEVAL_CLIPS, "test", 6)
    at = _search_page(monkeypatch, tmp_path)
    assert any("No retrieval report" in c.value for c in at.caption)
    at.button(key="retrieval_compute").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(df.value for df in at.dataframe if "text→clip R@1" in df.value.columns)
    assert list(table["clip vectors"]) == ["AFA student", "meanP (mean of frames)"]
    saved = json.loads(next((tmp_path / "retrieval").glob("*.json")).read_text())
    assert saved["clips"] == 6 and set(saved["methods"]["afa"]["t2v"]) >= {"r1", "r5", "r10", "mdr", "mnr"}
    # the saved report is what a fresh session shows
    at = _search_page(monkeypatch, tmp_path)
    table = next(df.value for df in at.dataframe if "text→clip R@1" in df.value.columns)
    assert isinstance(table, pd.DataFrame)
    assert table["text→clip R@1"].iloc[0] == pytest.approx(saved["methods"]["afa"]["t2v"]["r1"])
