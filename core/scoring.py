"""The one way to score k-NN votes, used by every page, command, the model card, fine-tuning
validation and the benchmarks. How we score changes here and nowhere else.

Two kinds of query:
- Outside queries (a test split embedded by a model, an upload): ``score_queries`` votes each
  with its ``k`` nearest stored frames (``core.predict.vote_batch``) and scores the votes against
  the truth with ``core.eval.evaluate``.
- Indexed frames (Triage, the Map's correctness colours, a scene picked from the index): they
  are voted under one leave-out rule, ``LEAVE_OUT``: no frame of the query's own clip may vote
  (adjacent frames of a clip are near-duplicates that would flatter every score), and only
  train-split frames vote (``VOTER_SPLIT``; every frame when the index holds no train split).
  ``index_votes`` gives those votes, ``score_index`` their report for one split.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from core.eval import evaluate
from core.neighbours import neighbours, voters_of
from core.predict import Vote, vote_batch

if TYPE_CHECKING:
    import pandas as pd

    from core.data import Dataset
    from core.index import IndexStore
    from core.models import SceneModel
    from core.schema import Schema

DEFAULT_K = 5
LEAVE_OUT = "clip"  # the leave-out rule for indexed frames (see core.neighbours.LEAVE_OUT)
VOTER_SPLIT = "train"  # the split whose frames vote for indexed frames
CHUNK = 1024  # indexed frames voted per step (a progress tick each)

Progress = Callable[[float, str], None]
_VOTES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # store -> {(k, space): votes}


def score_queries(
    store: IndexStore,
    embeddings: np.ndarray,
    truth: Sequence[Mapping[str, str]],
    *,
    k: int = DEFAULT_K,
    prompt_space: Mapping[str, np.ndarray] | None = None,
    meta: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
    schema: Schema | None = None,
    **vote_kw: Any,
) -> dict[str, Any]:
    """k-NN vote outside queries against ``store`` and score them against ``truth`` (row-aligned)."""
    schema = schema or store.schema
    votes = vote_batch(store, embeddings, k=k, prompt_space=prompt_space, schema=schema, **vote_kw)
    return score_votes(truth, votes, schema, meta=meta)


def score_votes(truth: Sequence[Mapping[str, str]], votes: Sequence[Vote], schema: Schema,
                meta: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The report of ``votes`` against ``truth``: every number scores the plurality vote (the
    CLIP scene paper's k-NN vote, ``Vote.leaning``), and ``decided`` adds, per attribute, the share
    of frames the vote decided (``coverage``) and the macro F1 on those frames alone. Each failure
    says whether its vote was decided."""
    report = evaluate(truth, [v.leaning() for v in votes], schema, votes=votes, meta=meta)
    for f in report["failures"]:
        f["decided"] = not votes[f["row"]].attributes[f["attribute"]].abstained
    report["decided"] = decided_scores(truth, votes, schema)
    return report


def decided_scores(truth: Sequence[Mapping[str, str]], votes: Sequence[Vote], schema: Schema) -> dict[str, Any]:
    """Coverage against accuracy: per attribute the share of labelled frames decided and the
    macro F1 on them; overall their means."""
    from core.eval import score_attribute
    from core.schema import UNKNOWN

    per = {}
    for a in schema.attributes:
        rows = [i for i, t in enumerate(truth) if t.get(a.name, UNKNOWN) != UNKNOWN]
        kept = [i for i in rows if not votes[i].attributes[a.name].abstained]
        scored = score_attribute(a.name, a.display, a.value_names, [str(truth[i][a.name]) for i in kept],
                                 [votes[i].attributes[a.name].value for i in kept])
        per[a.name] = {"coverage": len(kept) / len(rows) if rows else 0.0, "f1": scored["f1"], "n": len(kept)}
    judged = [p for p in per.values() if p["n"]]
    return {"coverage": float(np.mean([p["coverage"] for p in per.values()])) if per else 0.0,
            "macro_f1": float(np.mean([p["f1"] for p in judged])) if judged else 0.0, "attributes": per}


def score_dataset(
    part: Dataset, model: SceneModel, store: IndexStore, *, k: int = DEFAULT_K, progress: bool = True,
    **vote_kw: Any,
) -> dict[str, Any]:
    """Embed every frame of a dataset (split) with ``model`` and score it with ``score_queries``."""
    from core.index import embed_dataset

    emb = embed_dataset(part, model, progress=progress)
    truth = [part.labels(i) for i in range(len(part))]
    return score_queries(store, emb, truth, k=k, meta=part.frames, schema=part.schema, **vote_kw)


def index_voters(store: IndexStore) -> np.ndarray | None:
    """The rows that vote for indexed frames: the train split, or every row when there is none."""
    voters = voters_of(store, VOTER_SPLIT)
    return voters if voters is not None and len(voters) else None


def vote_rows(
    store: IndexStore, rows: Sequence[int] | np.ndarray, *, k: int = DEFAULT_K,
    prompt_space: Mapping[str, np.ndarray] | None = None, progress: Progress | None = None,
) -> list[Vote]:
    """Votes of indexed frames ``rows`` under the leave-out rule (other clips, train-split voters)."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    voters = index_voters(store)
    emb = store.embeddings()
    votes: list[Vote] = []
    for s in range(0, len(rows), CHUNK):
        q = rows[s : s + CHUNK]
        votes += vote_batch(store, np.asarray(emb[q], dtype=np.float32), k=k, prompt_space=prompt_space,
                            exclude=LEAVE_OUT, query_rows=q, among=voters)
        if progress is not None:
            done = min(len(rows), s + CHUNK)
            progress(done / max(len(rows), 1), f"voting {done:,}/{len(rows):,} frames")
    return votes


def index_votes(store: IndexStore, *, k: int = DEFAULT_K, prompt_space: Mapping[str, np.ndarray] | None = None,
                progress: Progress | None = None) -> list[Vote]:
    """``vote_rows`` of every indexed frame, cached per store, k and vote space (the Map colours)."""
    key = (int(k), None if prompt_space is None else tuple(sorted(
        (a, np.asarray(p, np.float32).tobytes()) for a, p in prompt_space.items())))
    cache = _VOTES.setdefault(store, {})
    if key not in cache:
        cache[key] = vote_rows(store, np.arange(len(store)), k=k, prompt_space=prompt_space, progress=progress)
    return cache[key]


def split_rows(store: IndexStore, split: str) -> np.ndarray:
    """Rows of ``split``; a clear error when the index holds none."""
    rows = voters_of(store, split)
    if rows is None or not len(rows):
        raise ValueError(f"the index holds no {split!r} frames; it has "
                         f"{sorted(set(store.meta['split'].astype(str)))}")
    return rows


def score_index(
    store: IndexStore, split: str, *, k: int = DEFAULT_K, prompt_space: Mapping[str, np.ndarray] | None = None,
    progress: Progress | None = None, among: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per-attribute metrics and failures of ``split``'s indexed frames, voted by ``vote_rows``.

    ``among``: score only these rows of the split (a view); the voters stay the same, so each
    frame's vote is the one it gets when the whole split is scored. Each failure gains ``id``, its
    row in the index.
    """
    rows = split_rows(store, split)
    if among is not None:
        rows = rows[np.isin(rows, np.asarray(among, dtype=np.int64))]
    votes = vote_rows(store, rows, k=k, prompt_space=prompt_space, progress=progress)
    truth = [store.labels(int(i)) for i in rows]
    meta = store.meta.iloc[rows].reset_index(drop=True)
    report = score_votes(truth, votes, store.schema, meta=meta)
    for f in report["failures"]:
        f["id"] = int(rows[f["row"]])
    report.update(split=split, k=int(k), leave_out=LEAVE_OUT, voters=VOTER_SPLIT)
    return report


__all__ = [
    "DEFAULT_K", "LEAVE_OUT", "VOTER_SPLIT", "index_voters", "index_votes", "neighbours", "score_dataset",
    "decided_scores", "score_index", "score_queries", "score_votes", "split_rows", "vote_rows",
]
