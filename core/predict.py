"""Label prediction: k-NN majority voting over an index, and zero-shot prompting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from core.neighbours import prompt_coordinates
from core.schema import UNKNOWN, Schema, default_schema

if TYPE_CHECKING:
    from core.index import IndexStore
    from core.models import SceneModel

# A value is decided only when more than half of the voters that voted on the attribute chose it
# (3 of 5 at k=5); below that the vote abstains and says what it leaned to. Five neighbours holding
# five different places are not a decision, whatever the plurality says.
DECIDE_SHARE = 0.5


@dataclass
class Neighbor:
    id: int
    similarity: float
    path: str | None
    labels: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "similarity": self.similarity, "path": self.path, "labels": dict(self.labels)}


@dataclass
class AttributeVote:
    """One attribute's decision. When ``abstained``, ``value`` is UNKNOWN while ``share`` and
    ``voters`` still describe the leading value (so a UI can say what it leaned towards)."""

    attribute: str
    value: str
    share: float
    abstained: bool
    voters: list[Neighbor]
    scores: dict[str, float]  # every value of the attribute -> its share of the votes
    # the neighbours this attribute voted among when they are not the Vote's (prompt-space votes)
    neighbors: list[Neighbor] | None = None
    reason: str | None = None  # why it abstained, when not for a split vote (e.g. "unlike this index")
    lean: str = UNKNOWN  # the value the voters leaned to, decided or not (the plurality vote)

    def pool(self, vote: Vote) -> list[Neighbor]:
        """The neighbours this attribute voted among."""
        return self.neighbors if self.neighbors is not None else vote.neighbors


@dataclass
class Vote:
    attributes: dict[str, AttributeVote]
    neighbors: list[Neighbor] = field(default_factory=list)
    familiarity: float | None = None  # core.familiarity: how well the index knows this query (0-1)

    def abstain(self, reason: str) -> None:
        """Every attribute abstains for ``reason``; shares and voters still say what it leaned to."""
        self.attributes = {a: replace(v, value=UNKNOWN, abstained=True, reason=reason)
                           for a, v in self.attributes.items()}

    def labels(self) -> dict[str, str]:
        """The decided values (UNKNOWN where the vote abstained)."""
        return {a: v.value for a, v in self.attributes.items()}

    def leaning(self) -> dict[str, str]:
        """The plurality value of every attribute, decided or not (the CLIP scene paper's vote)."""
        return {a: v.lean for a, v in self.attributes.items()}


def knn_vote(
    similarities: Sequence[float] | np.ndarray,
    neighbor_labels: Sequence[Mapping[str, str]],
    schema: Schema | None = None,
    weighted: bool = False,
    abstain_margin: float = 0.0,
    neighbor_ids: Sequence[int] | None = None,
    neighbor_paths: Sequence[str | None] | None = None,
    decide_share: float = DECIDE_SHARE,
) -> Vote:
    """Majority vote per attribute among the given neighbours (nearest first).

    Neighbours labelled UNKNOWN for an attribute do not vote on it. Equal tallies go to the value
    whose voters have the larger summed similarity, then to the earlier value in the schema.
    ``weighted`` weighs each vote by its (non-negative) similarity. The vote abstains when the
    winner's share is not above ``decide_share`` or exceeds the runner-up's by less than
    ``abstain_margin``; it still records what it leaned to (``AttributeVote.lean``).
    """
    schema = schema or default_schema()
    sims = np.asarray(similarities, dtype=np.float64).reshape(-1)
    if len(sims) != len(neighbor_labels):
        raise ValueError(f"{len(sims)} similarities but {len(neighbor_labels)} neighbour label sets")
    ids = list(neighbor_ids) if neighbor_ids is not None else list(range(len(sims)))
    paths = list(neighbor_paths) if neighbor_paths is not None else [None] * len(sims)
    neighbors = [
        Neighbor(int(i), float(s), p, {a: str(lab.get(a, UNKNOWN)) for a in schema.names})
        for i, s, p, lab in zip(ids, sims, paths, neighbor_labels, strict=True)
    ]
    return Vote({a.name: _vote_one(a.name, a.value_names, neighbors, weighted, abstain_margin, decide_share)
                 for a in schema.attributes}, neighbors)


def _vote_one(
    attr: str, values: list[str], neighbors: list[Neighbor], weighted: bool, margin: float,
    decide_share: float = DECIDE_SHARE,
) -> AttributeVote:
    voting = [nb for nb in neighbors if nb.labels[attr] != UNKNOWN]
    # Negative cosine similarity means "unrelated", not "anti-vote": clip weights at zero, and
    # fall back to plain counts if nothing has positive similarity.
    weights = [max(nb.similarity, 0.0) if weighted else 1.0 for nb in voting]
    if weighted and not any(w > 0 for w in weights):
        weights = [1.0] * len(voting)
    total = sum(weights)
    tally = dict.fromkeys(values, 0.0)
    simsum = dict.fromkeys(values, 0.0)
    for nb, w in zip(voting, weights, strict=True):
        v = nb.labels[attr]
        tally[v] = tally.get(v, 0.0) + w  # .get: a label outside the schema still counts
        simsum[v] = simsum.get(v, 0.0) + nb.similarity
    scores = {v: (t / total if total else 0.0) for v, t in tally.items()}
    if not voting:
        return AttributeVote(attr, UNKNOWN, 0.0, True, [], scores)
    order = list(tally)
    ranked = sorted(order, key=lambda v: (-tally[v], -simsum[v], order.index(v)))
    winner = ranked[0]
    runner_share = scores[ranked[1]] if len(ranked) > 1 else 0.0
    abstained = scores[winner] <= decide_share or scores[winner] - runner_share < margin
    voters = [nb for nb in voting if nb.labels[attr] == winner]
    return AttributeVote(attr, UNKNOWN if abstained else winner, scores[winner], abstained, voters, scores,
                         lean=winner)


def vote_batch(
    store: IndexStore,
    embeddings: np.ndarray,
    k: int = 5,
    weighted: bool = False,
    abstain_margin: float = 0.0,
    schema: Schema | None = None,
    prompt_space: Mapping[str, np.ndarray] | None = None,
    exclude: str = "nothing",
    query_rows: np.ndarray | None = None,
    among: np.ndarray | None = None,
    decide_share: float = DECIDE_SHARE,
) -> list[Vote]:
    """Vote on each row of ``embeddings`` with its ``k`` nearest stored frames.

    Neighbours come from :func:`core.neighbours.neighbours` (``exclude``, ``query_rows`` and
    ``among`` are its leave-out rule and voter set). ``prompt_space`` (attribute -> its values'
    text embeddings, as :func:`class_text_embeddings` gives) makes each attribute it names vote
    among its own ``k`` nearest frames, nearest by their cosines to that attribute's value
    prompts rather than by the whole embedding: weather and lighting, which dominate
    whole-embedding similarity, then no longer pick the voters on road place.
    ``Vote.neighbors`` stays the whole-embedding nearest frames.
    """
    from core.neighbours import neighbours

    schema = schema or store.schema
    q = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
    rule = {"exclude": exclude, "query_rows": query_rows, "among": among}
    sims, ids = neighbours(store, q, k, **rule)
    spaced = {a: neighbours(store, q, k, space=np.asarray(prompt_space[a], np.float32), **rule)
              for a in schema.names if a in (prompt_space or {})}
    # O(k) per query: labels (integer codes) and paths of the returned rows only, never all N rows.
    hit = np.unique(np.concatenate([ids.ravel(), *(i_a.ravel() for _, i_a in spaced.values())]))
    hit = hit[hit >= 0]
    table = dict(zip(hit.tolist(), store.label_rows(hit, schema), strict=True))
    paths = dict(zip(hit.tolist(), store.paths_of(hit), strict=True))
    votes = []
    for r in range(len(q)):
        found = neighbors_of(sims[r], ids[r], paths, table, schema.names)
        vote = knn_vote([n.similarity for n in found], [n.labels for n in found], schema, weighted,
                        abstain_margin, neighbor_ids=[n.id for n in found], neighbor_paths=[n.path for n in found],
                        decide_share=decide_share)
        for a, (s_a, i_a) in spaced.items():
            vote_among(vote, a, neighbors_of(s_a[r], i_a[r], paths, table, schema.names), schema, weighted,
                       abstain_margin, decide_share)
        votes.append(vote)
    return votes


def neighbors_of(sims: np.ndarray, ids: np.ndarray, paths: np.ndarray | Mapping[int, str],
                 table: np.ndarray | Mapping[int, np.ndarray], names: Sequence[str]) -> list[Neighbor]:
    """Neighbours from search hits (-1 ids skipped): ``paths`` and ``table`` (label rows) are indexed by id
    (arrays over every row, or mappings holding just the hit rows)."""
    return [Neighbor(int(i), float(v), str(paths[i]), dict(zip(names, table[i], strict=True)))
            for v, i in zip(sims, ids, strict=True) if i >= 0]


def vote_among(vote: Vote, attribute: str, neighbors: list[Neighbor], schema: Schema, weighted: bool = False,
               abstain_margin: float = 0.0, decide_share: float = DECIDE_SHARE) -> None:
    """Decide ``attribute`` of ``vote`` among its own ``neighbors`` instead of the vote's."""
    decided = _vote_one(attribute, schema[attribute].value_names, neighbors, weighted, abstain_margin, decide_share)
    vote.attributes[attribute] = replace(decided, neighbors=neighbors)


VOTE_SPACES = ("embedding", "prompts")  # where neighbours are found: whole embedding, or per attribute


def vote_space(model: SceneModel, space: str, schema: Schema | None = None) -> dict[str, np.ndarray] | None:
    """``vote_batch``'s ``prompt_space`` for a named space: None for "embedding", the schema's
    value prompts embedded by ``model`` for "prompts"."""
    if space not in VOTE_SPACES:
        raise ValueError(f"vote space {space!r}: choose one of {', '.join(VOTE_SPACES)}")
    return class_text_embeddings(model, schema) if space == "prompts" else None


# ---- zero-shot ------------------------------------------------------------------------------
_TEXT_CACHE: dict[tuple[str, str], dict[str, np.ndarray]] = {}


def class_text_embeddings(model: SceneModel, schema: Schema | None = None) -> dict[str, np.ndarray]:
    """Per attribute a (values, d) matrix: each value's prompt ensemble, averaged and renormalised.

    Cached per (model identity, schema name): prompts are fixed, and embedding them is the slow part.
    """
    schema = schema or default_schema()
    key = (model.identity, schema.name)
    if key not in _TEXT_CACHE:
        out = {}
        for a in schema.attributes:
            rows = []
            for v in a.value_names:
                mean = np.asarray(model.embed_texts(a.prompts(v)), dtype=np.float32).mean(axis=0)
                rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
            out[a.name] = np.stack(rows)
        _TEXT_CACHE[key] = out
    return _TEXT_CACHE[key]


def zero_shot(model: SceneModel, embeddings: np.ndarray, schema: Schema | None = None) -> list[dict[str, str]]:
    """Per row and attribute, the value whose prompt ensemble is most similar (cosine)."""
    schema = schema or default_schema()
    x = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    texts = class_text_embeddings(model, schema)
    best = {a.name: np.argmax(x @ texts[a.name].T, axis=1) for a in schema.attributes}
    return [{a.name: a.value_names[best[a.name][r]] for a in schema.attributes} for r in range(len(x))]


__all__ = [
    "DECIDE_SHARE", "VOTE_SPACES", "AttributeVote", "Neighbor", "Vote", "class_text_embeddings", "knn_vote", "neighbors_of", "prompt_coordinates",
    "vote_among", "vote_batch", "vote_space", "zero_shot",
]
