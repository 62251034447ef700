"""The Search page's clip results, moments and Retrieval panel: clips ranked by their pooled vectors
(``core.index.clips``, ``core.retrieval.clipsearch``) and the model's ``eval-retrieval`` report."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image

if TYPE_CHECKING:
    from core.types import IndexStore, SceneModel

CLIP_RESULTS = 6  # clips shown with their frame strips
RETRIEVAL_CLIPS = {"train": 40, "test": 100}  # the on-demand report's clip dataset (rendered once)
RETRIEVAL_SEED = 2400  # unused by the bench sets (2200, 2300) and by training
RETRIEVAL_FAMILY = 5  # clips per shared context: captions then differ in place and stages, where
# frame weighting matters (with random contexts both poolings score ~100 on 100 clips)
RETRIEVAL_METHODS = {"afa": "AFA student", "meanp": "meanP (mean of frames)", "teacher": "teacher (frame-text)"}


def search_clip_results(model: SceneModel, store: IndexStore, query: str | Image.Image | np.ndarray,
                        k: int = CLIP_RESULTS, among: np.ndarray | None = None) -> pd.DataFrame:
    """The top ``k`` clips for a text or an example image (``core.retrieval.clipsearch.rank_clips``
    columns: frames in time order, their pooling weights, the best moment); empty without clips.
    ``among``: only clips with at least one of these frames (the sidebar's view)."""
    from core.retrieval.clipsearch import CLIP_COLUMNS, search_clips

    if among is None:
        vector = query if isinstance(query, str) else model.embed_images([query])[0]
        return search_clips(model, store, vector, k=int(k))
    allowed = clips_in_view(model, store, among)
    if not len(allowed):
        return pd.DataFrame(columns=list(CLIP_COLUMNS))
    if isinstance(query, str):
        if not query.strip():
            raise ValueError("empty search text: describe the scene to look for")
        vector = model.embed_texts([query.strip()])[0]  # embedded once for the widening ranks below
    else:
        vector = model.embed_images([query])[0]
    # Rank ever more clips until k of them lie in the view (each rank is exact, so the order holds).
    wide, total = int(k), clip_count(model, store)
    while True:
        ranked = search_clips(model, store, vector, k=wide)
        ranked = ranked[ranked["clip_row"].isin(allowed)]
        if len(ranked) >= min(int(k), len(allowed)) or wide >= total:
            return ranked.head(int(k)).reset_index(drop=True)
        wide *= 4


def clips_in_view(model: SceneModel, store: IndexStore, among: np.ndarray) -> np.ndarray:
    """Clip rows with at least one frame among ``among`` (sorted; empty without clips)."""
    from core.index.clips import clips_of

    clips = clips_of(store, model)
    if clips is None:
        return np.zeros(0, np.int64)
    rows = clips.frame_clip[np.asarray(among, dtype=np.int64)]
    return np.unique(rows[rows >= 0]).astype(np.int64)


def clip_count(model: SceneModel, store: IndexStore) -> int:
    from core.index.clips import clips_of

    clips = clips_of(store, model)
    return 0 if clips is None else len(clips)


def clip_moments(ranked: pd.DataFrame) -> pd.DataFrame:
    """The ranked clips' best moments, best first (clip_id, start, end, similarities)."""
    from core.retrieval.clipsearch import moments_table

    return moments_table(ranked)


def clip_pooling(model: SceneModel, store: IndexStore) -> str:
    """How the index's clip vectors were pooled, in words ("" when it has no clips)."""
    from core.index.clips import clips_of

    clips = clips_of(store, model)
    if clips is None:
        return ""
    return "AFA student" if clips.manifest["pooling"] == "afa" else "mean of frames (no AFA student for this model)"


def retrieval_report_path(model: SceneModel) -> Path:
    from core.workspace import workspace

    return workspace() / "retrieval" / (re.sub(r"[^A-Za-z0-9._-]", "_", model.identity) + ".json")


def cached_retrieval_report(model: SceneModel) -> dict | None:
    """The model's saved Retrieval report (``compute_retrieval_report``), None if not computed or unreadable."""
    path = retrieval_report_path(model)
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and report.get("model") == model.identity else None


def compute_retrieval_report(model: SceneModel, progress: Callable[[float, str], None] | None = None,
                             sizes: dict[str, int] | None = None, seed: int = RETRIEVAL_SEED) -> dict:
    """``eval-retrieval`` of the model on a small rendered clip set (families of ``RETRIEVAL_FAMILY``
    clips sharing a context, made once in the workspace), for the AFA student and meanP, saved for
    ``cached_retrieval_report``."""
    from core.atomic import atomic_write_text
    from core.retrieval.data import CLIPS_FILE, frame_vectors, write_clip_dataset
    from core.retrieval.evaluate import evaluate_retrieval

    say = progress or (lambda _f, _t: None)
    sizes = sizes or RETRIEVAL_CLIPS
    root = retrieval_report_path(model).parent / f"clips-{sizes['train']}-{sizes['test']}-f{RETRIEVAL_FAMILY}-s{seed}"
    if not (root / CLIPS_FILE).is_file():
        say(0.05, f"Rendering {sizes['train'] + sizes['test']} clips with captions…")
        write_clip_dataset(root, train=sizes["train"], test=sizes["test"], seed=seed, frames=(5, 7),
                           family=RETRIEVAL_FAMILY)
    say(0.4, "Embedding the clips' frames…")
    frame_vectors(root, model)
    methods = {}
    for i, method in enumerate(("afa", "meanp")):
        say(0.7 + 0.15 * i, f"Ranking with {RETRIEVAL_METHODS[method]}…")
        methods[method] = evaluate_retrieval(root, model, method=method, moments=method == "afa")
    report = {"model": model.identity, "data": str(root), "clips": methods["afa"]["clips"],
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "methods": methods}
    path = retrieval_report_path(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    say(1.0, "Done")
    return report


def retrieval_table(report: dict) -> pd.DataFrame:
    """One row per method: text-to-clip and clip-to-text R@1/5/10 and MdR."""
    rows = []
    for method, r in report["methods"].items():
        t, v = r["t2v"], r["v2t"]
        rows.append({"clip vectors": RETRIEVAL_METHODS.get(method, method), "text→clip R@1": t["r1"],
                     "R@5": t["r5"], "R@10": t["r10"], "MdR": t["mdr"], "clip→text R@1": v["r1"],
                     "clip→text R@5": v["r5"]})
    return pd.DataFrame(rows)
