"""k-NN voting and zero-shot: parity with brute force, tie-breaks, weights, abstention."""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict

import numpy as np
import pytest

from core.index import IndexStore
from core.predict import class_text_embeddings, knn_vote, vote_batch, vote_space, zero_shot
from core.schema import UNKNOWN, default_schema

SCHEMA = default_schema()
ATTR = SCHEMA.attributes[0]
A, B, C = ATTR.value_names[:3]


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def random_store(n: int = 300, d: int = 24, seed: int = 0, unknown_rate: float = 0.2):
    """A Flat store over random unit vectors with random schema labels (some UNKNOWN)."""
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    x = unit(rng.normal(size=(n, d)))
    rows = []
    for i in range(n):
        labels = SCHEMA.sample(prng)
        for a in SCHEMA.names:
            if prng.random() < unknown_rate:
                labels[a] = UNKNOWN
        rows.append({"path": f"f{i:04d}.png", **labels})
    return IndexStore.from_embeddings(x, rows, model="random"), x, rows


def hand_vote(sims: np.ndarray, labels: list[str], order: list[str]) -> str:
    """Majority, ties by summed similarity, then schema order; UNKNOWN does not vote."""
    count, simsum = defaultdict(int), defaultdict(float)
    for s, lab in zip(sims, labels, strict=True):
        if lab != UNKNOWN:
            count[lab] += 1
            simsum[lab] += float(s)
    if not count:
        return UNKNOWN
    return min(count, key=lambda v: (-count[v], -simsum[v], order.index(v)))


def test_vote_batch_matches_bruteforce_knn_and_hand_vote():
    store, x, rows = random_store()
    q = unit(np.random.default_rng(1).normal(size=(40, x.shape[1])))
    k = 7
    votes = vote_batch(store, q, k=k)
    ties = 0
    for r, vote in enumerate(votes):
        sims = x @ q[r]
        top = np.argsort(-sims)[:k]
        assert [nb.id for nb in vote.neighbors] == top.tolist()
        np.testing.assert_allclose([nb.similarity for nb in vote.neighbors], sims[top], atol=1e-5)
        for a in SCHEMA.attributes:
            labels = [rows[i][a.name] for i in top]
            expect = hand_vote(sims[top], labels, a.value_names)
            got = vote.attributes[a.name]
            assert got.lean == expect, (r, a.name)
            assert got.value == (expect if got.share > 0.5 else UNKNOWN)
            assert [nb.id for nb in got.voters] == [i for i in top if rows[i][a.name] == expect] \
                if expect != UNKNOWN else got.voters == []
            counts = sorted((labels.count(v) for v in set(labels) - {UNKNOWN}), reverse=True)
            ties += len(counts) > 1 and counts[0] == counts[1]
    assert ties > 10  # the tie-break path really ran
    assert vote.labels() == {a: v.value for a, v in vote.attributes.items()}


def test_exclude_frame_drops_only_the_query_itself():
    store, x, _ = random_store(n=120)
    votes = vote_batch(store, x[:15], k=4, exclude="frame", query_rows=np.arange(15))
    for r, vote in enumerate(votes):
        sims = x @ x[r]
        expect = [i for i in np.argsort(-sims) if i != r][:4]
        assert [nb.id for nb in vote.neighbors] == expect
    with_self = vote_batch(store, x[:3], k=4)
    assert [v.neighbors[0].id for v in with_self] == [0, 1, 2]


def random_prompt_space(d: int, seed: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {a.name: unit(rng.normal(size=(len(a.value_names), d))) for a in SCHEMA.attributes}


def test_prompt_space_votes_match_bruteforce_in_each_attributes_prompt_cosines():
    store, x, rows = random_store()
    space = random_prompt_space(x.shape[1])
    q = unit(np.random.default_rng(1).normal(size=(30, x.shape[1])))
    k = 5
    plain = vote_batch(store, q, k=k)
    votes = vote_batch(store, q, k=k, prompt_space=space)
    differ = 0
    for r, vote in enumerate(votes):
        assert [nb.id for nb in vote.neighbors] == [nb.id for nb in plain[r].neighbors]  # nearest scenes unchanged
        for a in SCHEMA.attributes:
            px, pq = unit(x @ space[a.name].T), unit(q[r] @ space[a.name].T)  # cosines to the value prompts
            sims = px @ pq
            top = np.argsort(-sims, kind="stable")[:k]
            expect = hand_vote(sims[top], [rows[i][a.name] for i in top], a.value_names)
            got = vote.attributes[a.name]
            assert got.lean == expect, (r, a.name)
            assert got.value == (expect if got.share > 0.5 else UNKNOWN)
            assert {nb.id for nb in got.voters} <= set(top.tolist())
            np.testing.assert_allclose(sorted(nb.similarity for nb in got.voters),
                                       sorted(sims[[nb.id for nb in got.voters]]), atol=1e-5)
            differ += got.lean != plain[r].attributes[a.name].lean
    assert differ > 20  # the prompt space really picks other voters than the whole embedding


def test_prompt_space_votes_see_past_a_dominant_direction():
    # Whole-embedding similarity is dominated by dims 2-3 ("weather"); the first attribute's
    # value prompts point along dims 0 and 1. The query leans to A on them.
    emb = unit(np.array([[0.1, 0.3, 1, 0]] * 5 + [[0.3, 0.1, 0, 1]] * 5, np.float32))
    rows = [{"path": f"f{i}.png", **dict.fromkeys(SCHEMA.names, UNKNOWN), ATTR.name: B if i < 5 else A}
            for i in range(10)]
    store = IndexStore.from_embeddings(emb, rows, model="toy")
    query = unit(np.array([[0.3, 0.1, 1, 0]], np.float32))
    prompts = random_prompt_space(4)
    prompts[ATTR.name] = np.zeros((len(ATTR.value_names), 4), np.float32) + 0.01
    prompts[ATTR.name][ATTR.value_names.index(A), 0] = 1
    prompts[ATTR.name][ATTR.value_names.index(B), 1] = 1
    assert vote_batch(store, query, k=5)[0].attributes[ATTR.name].value == B
    assert vote_batch(store, query, k=5, prompt_space=prompts)[0].attributes[ATTR.name].value == A


def test_prompt_space_exclude_frame_drops_the_query_in_every_attribute():
    store, x, _ = random_store(n=120)
    rows = np.arange(10)
    votes = vote_batch(store, x[:10], k=4, exclude="frame", query_rows=rows,
                       prompt_space=random_prompt_space(x.shape[1]))
    for r, vote in enumerate(votes):
        assert r not in [nb.id for nb in vote.neighbors]
        for av in vote.attributes.values():
            assert r not in [nb.id for nb in av.voters]
    first = SCHEMA.names[0]
    partial = vote_batch(store, x[:10], k=4, exclude="frame", query_rows=rows,
                         prompt_space={first: random_prompt_space(x.shape[1])[first]})
    plain = vote_batch(store, x[:10], k=4, exclude="frame", query_rows=rows)
    for p, v in zip(partial, plain, strict=True):  # only the named attribute leaves the whole embedding
        assert p.attributes[first].neighbors is not None
        assert all(p.attributes[a] == v.attributes[a] for a in SCHEMA.names[1:])
    with pytest.raises(ValueError, match="vote space 'pixels'"):
        vote_space(None, "pixels")


def test_tie_broken_by_summed_similarity():
    labels = [{ATTR.name: v} for v in (A, B, B, A)]
    # 2 votes each; B's voters sum to 1.3 > A's 1.1, although the nearest neighbour says A.
    vote = knn_vote([0.9, 0.7, 0.6, 0.2], labels, SCHEMA).attributes[ATTR.name]
    assert vote.lean == B and vote.abstained and vote.value == UNKNOWN  # a tie is no majority
    assert [nb.id for nb in vote.voters] == [1, 2]
    assert vote.scores[A] == vote.scores[B] == 0.5
    vote = knn_vote([0.9, 0.5, 0.4, 0.3], labels, SCHEMA).attributes[ATTR.name]
    assert vote.lean == A


def test_weighted_votes_follow_similarity():
    labels = [{ATTR.name: v} for v in (A, B, B)]
    sims = [0.9, 0.2, 0.2]
    plain = knn_vote(sims, labels, SCHEMA).attributes[ATTR.name]
    assert plain.value == B and plain.share == pytest.approx(2 / 3)
    weighted = knn_vote(sims, labels, SCHEMA, weighted=True).attributes[ATTR.name]
    assert weighted.value == A
    assert weighted.share == pytest.approx(0.9 / 1.3)
    assert weighted.scores[B] == pytest.approx(0.4 / 1.3)
    assert sum(weighted.scores.values()) == pytest.approx(1.0)


def test_abstention_margin():
    sims = [0.9, 0.8, 0.7, 0.6, 0.5]
    split = [{ATTR.name: v} for v in (A, A, B, B, C)]  # shares .4 .4 .2: margin 0
    vote = knn_vote(sims, split, SCHEMA, abstain_margin=0.1, decide_share=0.0).attributes[ATTR.name]
    assert vote.abstained and vote.value == UNKNOWN and vote.lean == A
    assert vote.share == pytest.approx(0.4)
    clear = [{ATTR.name: v} for v in (A, A, A, B, C)]  # .6 - .2 = .4
    assert knn_vote(sims, clear, SCHEMA, abstain_margin=0.5).attributes[ATTR.name].value == UNKNOWN
    kept = knn_vote(sims, clear, SCHEMA, abstain_margin=0.3).attributes[ATTR.name]
    assert kept.value == A and not kept.abstained and kept.share == pytest.approx(0.6)
    # margin 0 and no majority needed: never abstains, even on an exact tie
    assert not knn_vote(sims, split, SCHEMA, decide_share=0.0).attributes[ATTR.name].abstained


def test_default_rule_decides_only_a_majority():
    sims = [0.9, 0.8, 0.7, 0.6, 0.5]
    spread = [{ATTR.name: v} for v in ATTR.value_names[:5]]  # five voters, five values: 20% is no decision
    vote = knn_vote(sims, spread, SCHEMA).attributes[ATTR.name]
    assert vote.abstained and vote.value == UNKNOWN and vote.lean == ATTR.value_names[0] and vote.share == 0.2
    plurality = knn_vote(sims, [{ATTR.name: v} for v in (A, A, B, C, C)], SCHEMA).attributes[ATTR.name]
    assert plurality.abstained and plurality.share == pytest.approx(0.4)
    three = knn_vote(sims, [{ATTR.name: v} for v in (A, B, A, C, A)], SCHEMA).attributes[ATTR.name]
    assert three.value == A and not three.abstained and three.share == pytest.approx(0.6)


def test_unknown_neighbours_do_not_vote():
    labels = [{ATTR.name: v} for v in (A, UNKNOWN, UNKNOWN, B, B)]
    vote = knn_vote([0.9, 0.9, 0.9, 0.1, 0.1], labels, SCHEMA).attributes[ATTR.name]
    assert vote.value == B and vote.share == pytest.approx(2 / 3)
    assert [nb.id for nb in vote.voters] == [3, 4]
    # a neighbour without the attribute at all also abstains from it
    other = SCHEMA.attributes[1]
    empty = knn_vote([0.5, 0.4], [{ATTR.name: A}, {}], SCHEMA).attributes[other.name]
    assert empty.value == UNKNOWN and empty.abstained and empty.voters == []


class FakeTextModel:
    """embed_texts: a fixed random unit vector per prompt string; counts calls."""

    identity = "fake-text@1"

    def __init__(self, d: int = 32) -> None:
        self.d, self.calls, self.table = d, 0, {}

    def embed_texts(self, texts):
        self.calls += 1
        out = []
        for t in texts:
            if t not in self.table:
                seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
                self.table[t] = unit(np.random.default_rng(seed).normal(size=self.d))
            out.append(self.table[t])
        return np.stack(out)


def test_zero_shot_prompt_ensemble_argmax_and_cache():
    model = FakeTextModel()
    texts = class_text_embeddings(model, SCHEMA)
    calls = model.calls
    for a in SCHEMA.attributes:
        assert texts[a.name].shape == (len(a.values), model.d)
        mean = np.mean([model.table[p] for p in a.prompts(a.value_names[1])], axis=0)
        np.testing.assert_allclose(texts[a.name][1], mean / np.linalg.norm(mean), atol=1e-6)
    # an embedding equal to a value's ensemble vector is predicted as that value
    assert zero_shot(model, texts[ATTR.name][-1:], SCHEMA)[0][ATTR.name] == ATTR.value_names[-1]
    rng = np.random.default_rng(0)
    e = unit(rng.normal(size=(5, model.d)))
    preds = zero_shot(model, e, SCHEMA)
    for r in range(5):
        for a in SCHEMA.attributes:
            assert preds[r][a.name] == a.value_names[int(np.argmax(texts[a.name] @ e[r]))]
    assert model.calls == calls  # text embeddings came from the cache
