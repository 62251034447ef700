"""core.read_ahead runs an iterator in a thread, a few items ahead; the clip path decodes in such a
thread while it embeds, and gives the same vectors as the same batches one after the other."""

from __future__ import annotations

import threading
from contextlib import closing

import numpy as np
import pytest
from media import encode_video

from core.read_ahead import read_ahead


def _counting(n: int, seen: list, fail_at: int | None = None):
    try:
        for i in range(n):
            if i == fail_at:
                raise OSError(f"item {i} unreadable")
            seen.append((i, threading.current_thread().name))
            yield i
    finally:
        seen.append(("closed", threading.current_thread().name))


def test_items_in_order_from_another_thread_and_the_source_closed_there():
    seen: list = []
    assert list(read_ahead(_counting(50, seen), depth=3, name="t-ahead")) == list(range(50))
    assert {name for _, name in seen} == {"t-ahead"} and seen[-1][0] == "closed"


def test_the_source_error_reaches_the_consumer_unchanged():
    seen: list = []
    got = []
    with pytest.raises(OSError, match="item 7 unreadable"):
        for i in read_ahead(_counting(20, seen, fail_at=7), depth=2):
            got.append(i)
    assert got == list(range(7)) and seen[-1][0] == "closed"


def test_leaving_early_stops_the_thread_and_closes_the_source_before_returning():
    seen: list = []
    with closing(read_ahead(_counting(10**6, seen), depth=4, name="t-early")) as items:
        for i in items:
            if i == 5:
                break
    # Closed in the producer's thread, and before close() returned: at most depth + 2 items read.
    assert seen[-1] == ("closed", "t-early") and len(seen) <= 5 + 4 + 3
    assert not any(t.name == "t-early" for t in threading.enumerate())
    with pytest.raises(ValueError, match="depth must be at least 1"):
        next(read_ahead([], depth=0))


def test_threaded_clip_path_gives_the_same_vectors_as_sequential(tmp_path, small_index):
    from core import pipeline
    from core.index import IndexStore
    from core.models import load_model

    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (64, 160, 3), dtype=np.uint8)
    frames = [np.roll(base, 3 * i, axis=1)[:, :96].copy() for i in range(60)]  # 6 s at 10 fps
    clip = encode_video(tmp_path / "c.mp4", frames, (96, 64), codec="libx264", options={"g": "10", "bf": "0"})
    model = load_model(small_index.model)
    store = IndexStore.load(small_index.index, model=model)
    sims = []
    for threaded in (True, False):
        r = pipeline.classify_path(clip, model, store, fps=3.0, threaded=threaded)
        sims.append([[(n.id, n.similarity) for n in v.neighbors] for v in r.votes])
        assert len(r.times) == 18 and r.decode.complete  # 3 batches of CLIP_BATCH, the last short
    assert sims[0] == sims[1]
    # Whole-clip batches (12c's path) give the same neighbours, at similarities equal up to float
    # rounding (a batch's size may change the matmul's summation order).
    from core.video import sample_frames

    emb = model.embed_images([f for _, f in sample_frames(clip, fps=3.0)])
    direct = pipeline._vote(store, np.asarray(emb, np.float32), 5)
    assert [[n.id for n in v.neighbors] for v in direct] == [[i for i, _ in row] for row in sims[0]]
    np.testing.assert_allclose([[s for _, s in row] for row in sims[0]],
                               [[n.similarity for n in v.neighbors] for v in direct], atol=1e-5)
