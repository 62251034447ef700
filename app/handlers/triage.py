"""Triage: leakage, focus classes, failures and metrics tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.schema import Schema

if TYPE_CHECKING:
    from core.types import IndexStore


# ---- triage --------------------------------------------------------------------------------------
def leakage_pairs(store: IndexStore, threshold: float = 0.97) -> pd.DataFrame:
    """Near-duplicate frames in different splits (``core.data.find_leakage``), with both paths."""
    from core.data import find_leakage

    pairs = find_leakage(np.asarray(store.embeddings()), store.meta["split"].astype(str).to_numpy(),
                         threshold=threshold)
    paths = store.meta["path"].to_numpy()
    i, j = (pairs[c].to_numpy(np.int64) for c in ("i", "j"))
    return pairs.assign(path_i=paths[i], path_j=paths[j])


def focus_values(schema: Schema, fragments: Iterable[str] = ("intersection", "construction")) -> dict[str, list[str]]:
    """Values the failure list opens on (junctions and road works), found by name in the schema.

    Returns attribute name -> matching value names; empty when the schema has none.
    """
    out: dict[str, list[str]] = {}
    for a in schema.attributes:
        hits = [v for v in a.value_names if any(f in v for f in fragments)]
        if hits:
            out[a.name] = hits
    return out


def class_key(attribute: str, value: str) -> str:
    """One class of one attribute as a filter option (values repeat across attributes)."""
    return f"{attribute}={value}"


def focus_classes(schema: Schema) -> list[str]:
    return [class_key(a, v) for a, vals in focus_values(schema).items() for v in vals]


def failure_table(report: Mapping[str, Any], schema: Schema, attributes: Sequence[str] | None = None,
                  classes: Sequence[str] | None = None) -> pd.DataFrame:
    """The report's failures as rows, filtered by attribute and by class (``class_key``, matching
    the truth or the prediction); empty filters keep everything."""
    cols = ["id", "attribute", "truth", "prediction", "path", "clip_id", "timestamp_s", "misleading"]
    wanted = set(classes or ())
    recs = []
    for f in report.get("failures", []):
        a = f["attribute"]
        if attributes and a not in attributes:
            continue
        if wanted and class_key(a, f["truth"]) not in wanted and class_key(a, f["prediction"]) not in wanted:
            continue
        recs.append({c: f.get(c) for c in cols})
    df = pd.DataFrame(recs, columns=cols)
    df["Attribute"] = [schema[a].display for a in df["attribute"]]
    df["Truth"] = [schema.display(a, v) for a, v in zip(df["attribute"], df["truth"], strict=True)]
    df["Prediction"] = [schema.display(a, v) for a, v in zip(df["attribute"], df["prediction"], strict=True)]
    return df


def metrics_table(report: Mapping[str, Any], schema: Schema) -> pd.DataFrame:
    """Per-attribute precision / recall / F1 of the plurality vote in schema order, then coverage
    against accuracy: the share of frames the vote decided (a majority of voters agreed) and the
    F1 on those frames alone."""
    rows = []
    decided = (report.get("decided") or {}).get("attributes", {})
    for a in schema.attributes:
        m = report["attributes"].get(a.name)
        if not m:
            continue
        d = decided.get(a.name, {})
        rows.append({"Attribute": a.display, "Precision": m["precision"], "Recall": m["recall"],
                     "F1": m["f1"], "Accuracy": m["accuracy"], "Frames": m["n"],
                     "Decided": d.get("coverage"), "F1 when decided": d.get("f1")})
    return pd.DataFrame(rows)


def per_class_table(report: Mapping[str, Any], schema: Schema, attribute: str) -> pd.DataFrame:
    a = schema[attribute]
    per = report["attributes"][attribute]["per_class"]
    return pd.DataFrame([{"Class": a.display_of(v), "Precision": c["precision"], "Recall": c["recall"],
                          "F1": c["f1"], "Support": c["support"]} for v, c in per.items()])


def index_splits(store: IndexStore) -> list[str]:
    """Splits present in the index, in the usual order."""
    from core.data import SPLITS

    present = set(store.meta["split"].astype(str))
    return [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))


def evaluate_index_split(store: IndexStore, split: str, k: int = 5, progress: Any = None,
                         prompt_space: Mapping[str, np.ndarray] | None = None,
                         among: np.ndarray | None = None) -> dict[str, Any]:
    """Triage metrics for ``split`` (``among``: only these rows of it, the sidebar's view); see
    ``core.scoring.score_index`` for the protocol."""
    from core.scoring import score_index

    return score_index(store, split, k=k, progress=progress, prompt_space=prompt_space, among=among)


def split_in_view(store: IndexStore, split: str, among: np.ndarray | None) -> tuple[int, int]:
    """(frames of ``split`` in the view, frames of ``split``): what the Triage metrics cover."""
    in_split = store.meta["split"].astype(str).to_numpy() == split
    total = int(in_split.sum())
    if among is None:
        return total, total
    return int(in_split[np.asarray(among, dtype=np.int64)].sum()), total


def view_words(filters: Mapping[str, Sequence[str]], schema: Schema, limit: int = 4) -> str:
    """The sidebar's filter in a few words ("Split: test · Weather: Snow, Rain"); "every frame" without one."""
    from app.handlers.views import field_label, value_label

    parts = []
    for f, values in filters.items():
        shown = [value_label(f, v, schema) for v in values[:limit]]
        more = f" +{len(values) - limit}" if len(values) > limit else ""
        parts.append(f"{field_label(f, schema)}: {', '.join(shown)}{more}")
    return " · ".join(parts) or "every frame"


def metrics_scope(scored: int, total: int, split: str, view: str) -> str:
    """What the metrics cover, said on the page: "Metrics on 312 of 640 test frames (view: ...)"."""
    return f"Metrics on {scored:,} of {total:,} {split} frames (view: {view})."


def leakage_table(pairs: pd.DataFrame, store: IndexStore) -> pd.DataFrame:
    """``leakage_pairs`` with its columns named for people: each frame's index row, split, clip
    and file, then the pair's similarity."""
    clips = store.meta["clip_id"].astype(str).to_numpy()
    out = {}
    for side, name in (("i", "First"), ("j", "Second")):
        rows = pairs[side].to_numpy(np.int64)
        out.update({f"{name} frame (row)": rows, f"{name} split": pairs[f"split_{side}"].to_numpy(),
                    f"{name} clip": clips[rows], f"{name} file": pairs[f"path_{side}"].to_numpy()})
    return pd.DataFrame({**out, "Similarity": pairs["similarity"].to_numpy()})
