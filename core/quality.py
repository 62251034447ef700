"""How good is a model? k-NN vote F1, zero-shot F1 and text-to-image recall on fresh synthetic data."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.data import Dataset
from core.eval import evaluate
from core.index import IndexStore, build_index, embed_dataset
from core.models import SceneModel
from core.predict import class_text_embeddings, zero_shot
from core.schema import Schema
from core.scoring import score_queries


def text_to_image_recall(model: SceneModel, emb: np.ndarray, test: Dataset, k: int = 5) -> float:
    """Recall@k of schema captions: a query is a hit when a top-k image has exactly its labels.

    Frames with identical labels are interchangeable for a caption, so each distinct label set is
    one query and every frame carrying it is relevant.
    """
    labels = [tuple(sorted(test.labels(i).items())) for i in range(len(test))]
    queries = sorted(set(labels))
    texts = model.embed_texts([test.schema.caption(dict(q)) for q in queries])
    top = np.argsort(-(texts @ emb.T), axis=1)[:, :k]
    hits = [any(labels[j] == q for j in row) for q, row in zip(queries, top, strict=False)]
    return float(np.mean(hits))


def nested_index_rows(n: int, fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Rows kept of an ``n``-frame index at each fraction: prefixes of one random order, so every
    smaller index lies inside the larger ones and the curve shows density, not a new draw."""
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(order[: max(1, round(float(f) * n))]) for f in fractions]


def _knn_scores(store: IndexStore, emb: np.ndarray, truth: list[dict[str, str]], schema: Schema, k: int,
                prompts: dict[str, np.ndarray]) -> dict:
    out = {}
    for prefix, space in (("knn", None), ("prompt_knn", prompts)):
        r = score_queries(store, emb, truth, k=k, prompt_space=space, schema=schema)
        out |= {f"{prefix}_macro_f1": r["macro_f1"], f"{prefix}_f1": {a: x["f1"] for a, x in r["attributes"].items()}}
    return out


def measure(model: SceneModel, index_data: Dataset, test: Dataset, k: int = 5, progress: bool = True,
            index_fractions: Sequence[float] = ()) -> dict:
    """k-NN voting against an index of ``index_data`` (in the whole embedding and, ``prompt_knn_*``,
    in each attribute's prompt space), zero-shot, and recall@5 on ``test``.

    ``index_fractions`` adds ``index_curve``: the k-NN scores of the same queries against nested
    random subsets of the index (k-NN quality grows with how densely the index covers the world).
    """
    truth = [test.labels(i) for i in range(len(test))]
    prompts = class_text_embeddings(model, test.schema)
    with tempfile.TemporaryDirectory() as tmp:
        store = build_index(index_data, model, Path(tmp) / "index", split=None, progress=progress)
        emb = embed_dataset(test, model, progress=progress)
        knn = _knn_scores(store, emb, truth, test.schema, k, prompts)
        curve = []
        for rows in nested_index_rows(len(store), index_fractions):
            sub = IndexStore.from_embeddings(store.embeddings()[rows], store.meta.iloc[rows].reset_index(drop=True),
                                             model=model.name, schema=store.schema)
            curve.append({"index_frames": len(rows), **_knn_scores(sub, emb, truth, test.schema, k, prompts)})
    zs = evaluate(truth, zero_shot(model, emb, test.schema), test.schema)
    return {
        **knn,
        "zero_shot_macro_f1": zs["macro_f1"],
        "zero_shot_f1": {a: r["f1"] for a, r in zs["attributes"].items()},
        "text_to_image_recall@5": text_to_image_recall(model, emb, test),
        "index_frames": len(index_data),
        "test_frames": len(test),
        "k": k,
        **({"index_curve": curve} if curve else {}),
    }
