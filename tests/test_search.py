"""Text/image search ranks like brute force; clip hits group into time windows."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from core.index import IndexStore
from core.schema import default_schema
from core.search import clip_windows, search_clip_windows, search_image, search_text, search_vector

SCHEMA = default_schema()
D = 32


def make_store(frames: list[tuple[str, float]], seed: int = 0) -> tuple[IndexStore, np.ndarray]:
    """One orthonormal vector per frame; ``frames`` are (clip_id, timestamp_s), clip "" = a still."""
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(D, D)))
    x = basis[: len(frames)].astype(np.float32)
    rows = [
        {"path": f"f{i:03d}.png", "clip_id": c, "frame_index": i, "timestamp_s": t, "split": "train",
         **SCHEMA.sample(prng)}
        for i, (c, t) in enumerate(frames)
    ]
    return IndexStore.from_embeddings(x, rows, model="fake@0"), x


class FakeModel:
    identity = "fake@0"

    def __init__(self, vector: np.ndarray) -> None:
        self.vector = np.asarray(vector, np.float32)
        self.texts: list[str] = []

    def embed_texts(self, texts):
        self.texts.extend(texts)
        return np.tile(self.vector, (len(texts), 1))

    def embed_images(self, images):
        return np.tile(self.vector, (len(images), 1))


def query_over(x: np.ndarray, weights: dict[int, float]) -> np.ndarray:
    q = sum(w * x[i] for i, w in weights.items())
    return (q / np.linalg.norm(q)).astype(np.float32)


STILLS = [("", 0.0)] * 20


def test_search_text_ranking_equals_numpy_argsort():
    store, x = make_store(STILLS)
    rng = np.random.default_rng(3)
    q = query_over(x, {i: float(w) for i, w in enumerate(rng.permutation(20) + 1.0)})  # distinct sims
    model = FakeModel(q)
    hits = search_text(model, store, "  snowy night, approaching a 5-way intersection ", k=7)
    assert model.texts == ["snowy night, approaching a 5-way intersection"]
    expected = np.argsort(-(x @ q))[:7]
    assert hits["id"].tolist() == expected.tolist()
    np.testing.assert_allclose(hits["similarity"], (x @ q)[expected], atol=1e-5)
    assert list(hits.columns[:7]) == ["id", "similarity", "path", "clip_id", "frame_index", "timestamp_s", "split"]
    assert list(hits.columns[7:]) == SCHEMA.names
    assert hits["path"].tolist() == [f"f{i:03d}.png" for i in expected]
    for a in SCHEMA.names:
        assert hits[a].tolist() == store.meta[a].iloc[expected].tolist()


def test_search_image_and_k_larger_than_index():
    store, x = make_store(STILLS[:5])
    hits = search_image(FakeModel(x[3]), store, np.zeros((8, 8, 3), np.uint8), k=50)
    assert len(hits) == 5 and hits["id"].iat[0] == 3
    assert hits["similarity"].iat[0] == pytest.approx(1.0, abs=1e-5)


def test_search_rejects_empty_text_and_zero_vector():
    store, x = make_store(STILLS[:5])
    with pytest.raises(ValueError, match="empty"):
        search_text(FakeModel(x[0]), store, "   ")
    with pytest.raises(ValueError, match="zero"):
        search_vector(store, np.zeros(D, np.float32))


# Clip "a": 8 frames at 0.5 s; clip "b": 4 frames; clip "solo": one frame; plus two stills.
CLIPS = ([("a", 0.5 * i) for i in range(8)] + [("b", 0.5 * i) for i in range(4)]
         + [("solo", 0.0), ("", 0.0), ("", 0.0)])


def hits_for(store: IndexStore, sims: dict[int, float]) -> pd.DataFrame:
    return pd.DataFrame({"id": list(sims), "similarity": list(sims.values())})


def test_windows_merge_consecutive_frames_and_split_at_gaps():
    store, _ = make_store(CLIPS)
    # clip a: frames 0,1,2 (0.0-1.0 s) ; gap (frames 3,4 miss: 1.0 -> 2.5 s > 1 s) ; frames 5,7
    # (2.5 and 3.5 s: one missed frame, 1.0 s apart, still one window); clip b: frame 9 alone.
    sims = {0: 0.30, 1: 0.50, 2: 0.40, 5: 0.60, 7: 0.35, 9: 0.45, 12: 0.99, 13: 0.98}
    w = clip_windows(hits_for(store, sims), store, gap_s=1.0)
    assert list(w.columns) == ["clip_id", "start_s", "end_s", "best_similarity", "n_frames", "best_id",
                               "best_timestamp_s"]
    got = [(r.clip_id, r.start_s, r.end_s, r.n_frames, r.best_id) for r in w.itertuples()]
    assert got == [("a", 2.5, 3.5, 2, 5), ("a", 0.0, 1.0, 3, 1), ("b", 0.5, 0.5, 1, 9)]
    np.testing.assert_allclose(w["best_similarity"], [0.60, 0.50, 0.45])
    # Stills (clip "") and one-frame clips are not clips: their 0.99/0.98 hits make no window.
    assert "solo" not in set(w["clip_id"]) and "" not in set(w["clip_id"])


def test_windows_gap_and_min_similarity():
    store, _ = make_store(CLIPS)
    sims = {0: 0.30, 1: 0.50, 2: 0.40, 5: 0.60, 7: 0.35}
    tight = clip_windows(hits_for(store, sims), store, gap_s=0.5)
    assert [(r.start_s, r.end_s) for r in tight.itertuples()] == [(2.5, 2.5), (0.0, 1.0), (3.5, 3.5)]
    strict = clip_windows(hits_for(store, sims), store, gap_s=1.0, min_similarity=0.45)
    assert [(r.start_s, r.end_s, r.n_frames) for r in strict.itertuples()] == [(2.5, 2.5, 1), (0.5, 0.5, 1)]
    empty = clip_windows(hits_for(store, {0: 0.1}), store, min_similarity=0.5)
    assert empty.empty and "best_similarity" in empty.columns


def test_search_clip_windows_end_to_end():
    store, x = make_store(CLIPS)
    q = query_over(x, {8 + 4: 1.0, 3: 0.9, 4: 0.8, 10: 0.5})  # the "solo" frame is best; then a 1.5-2.0 s
    w = search_clip_windows(FakeModel(q), store, "a query", k=4)
    assert w["clip_id"].tolist() == ["a", "b"]
    assert (w["start_s"].iat[0], w["end_s"].iat[0], w["n_frames"].iat[0]) == (1.5, 2.0, 2)
