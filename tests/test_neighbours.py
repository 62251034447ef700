"""The one neighbour search and its leave-out rules, against numpy brute force."""

from __future__ import annotations

import random

import numpy as np
import pytest

from core.index import IndexStore
from core.neighbours import neighbours, prompt_coordinates
from core.schema import default_schema

SCHEMA = default_schema()


def store_of(n: int = 90, d: int = 12, seed: int = 0, factory: str = "Flat"):
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rows = [{"path": f"f{i}.png", "clip_id": f"c{i // 6}", "split": ("train", "test")[i % 2], **SCHEMA.sample(prng)}
            for i in range(n)]
    return IndexStore.from_embeddings(x, rows, model="toy", factory=factory), x


def brute(x: np.ndarray, q: np.ndarray, k: int, allowed) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the k best allowed rows by inner product (-1 / -inf padding)."""
    ids, sims = [], []
    for r in range(len(q)):
        cand = [j for j in range(len(x)) if allowed(r, j)]
        s = x[cand] @ q[r]
        top = [cand[j] for j in np.argsort(-s, kind="stable")[:k]]
        ids.append(top + [-1] * (k - len(top)))
        sims.append([float(x[j] @ q[r]) for j in top] + [-np.inf] * (k - len(top)))
    return np.array(sims, np.float32), np.array(ids, np.int64)


@pytest.mark.parametrize("exclude", ["nothing", "frame", "clip"])
def test_leave_out_rules_match_brute_force(exclude):
    store, x = store_of()
    rows = np.arange(0, 90, 7)
    clips = store.meta["clip_id"].to_numpy()
    train = store.meta["split"].to_numpy() == "train"
    rule = {"nothing": lambda r, j: True, "frame": lambda r, j: j != rows[r],
            "clip": lambda r, j: clips[j] != clips[rows[r]]}[exclude]
    for among in (None, train):
        ok = rule if among is None else (lambda r, j, mask=among: rule(r, j) and mask[j])
        sims, ids = neighbours(store, x[rows], 5, exclude=exclude, query_rows=rows if exclude != "nothing" else None,
                          among=among)
        bsims, bids = brute(x, x[rows], 5, ok)
        np.testing.assert_array_equal(ids, bids)
        np.testing.assert_allclose(sims, bsims, atol=1e-5)


def test_prompt_space_search_and_padding():
    store, x = store_of(n=30)
    space = np.random.default_rng(4).normal(size=(3, x.shape[1])).astype(np.float32)
    px = prompt_coordinates(x, space)
    rows = np.arange(5)
    clips = store.meta["clip_id"].to_numpy()
    sims, ids = neighbours(store, x[rows], 4, exclude="clip", query_rows=rows, space=space)
    bsims, bids = brute(px, px[rows], 4, lambda r, j: clips[j] != clips[rows[r]])
    np.testing.assert_array_equal(ids, bids)
    # more neighbours asked for than may answer: -1 ids, -inf similarities
    only = np.zeros(30, bool)
    only[[10, 20]] = True
    sims, ids = neighbours(store, x[:1], 4, among=only)
    assert ids[0].tolist()[2:] == [-1, -1] and set(ids[0, :2].tolist()) == {10, 20} and np.all(np.isinf(sims[0, 2:]))


def test_plain_search_is_the_index_own_and_errors_are_clear():
    store, x = store_of(factory="HNSW32")
    sims, ids = neighbours(store, x[:3], 4)
    ssims, sids = store.search(x[:3], 4)
    np.testing.assert_array_equal(ids, sids)
    with pytest.raises(ValueError, match="query_rows"):
        neighbours(store, x[:3], 4, exclude="clip")
    with pytest.raises(ValueError, match="choose one of"):
        neighbours(store, x[:3], 4, exclude="group")
