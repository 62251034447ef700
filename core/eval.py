"""Evaluation of predicted labels: per-attribute precision/recall/F1, confusions, failures."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.predict import Vote
from core.schema import UNKNOWN, Schema, default_schema

META_KEYS = ("path", "clip_id", "frame_index", "timestamp_s")


def evaluate(
    truth: Sequence[Mapping[str, str]],
    pred: Sequence[Mapping[str, str]],
    schema: Schema | None = None,
    votes: Sequence[Vote] | None = None,
    meta: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Score ``pred`` against ``truth`` (row-aligned label dicts); all numbers from scikit-learn.

    Rows whose truth is UNKNOWN are skipped for that attribute; an UNKNOWN prediction (abstention)
    is wrong. ``macro_f1`` is the mean over attributes of each attribute's macro F1. With ``votes``
    each failure lists the neighbours that misled it; with ``meta`` it names the frame.
    """
    schema = schema or default_schema()
    if len(truth) != len(pred):
        raise ValueError(f"{len(truth)} truth rows but {len(pred)} predictions")
    if votes is not None and len(votes) != len(truth):
        raise ValueError(f"{len(truth)} truth rows but {len(votes)} votes")
    rows = _meta_rows(meta, len(truth))
    attributes: dict[str, Any] = {}
    failures: list[dict[str, Any]] = []
    for attr in schema.attributes:
        keep = [i for i, t in enumerate(truth) if t.get(attr.name, UNKNOWN) != UNKNOWN]
        y_true = [str(truth[i][attr.name]) for i in keep]
        y_pred = [str(pred[i].get(attr.name, UNKNOWN)) for i in keep]
        attributes[attr.name] = score_attribute(attr.name, attr.display, attr.value_names, y_true, y_pred)
        for i, t, p in zip(keep, y_true, y_pred, strict=True):
            if t != p:
                failures.append(_failure(i, attr.name, t, p, votes, rows))
    f1s = [a["f1"] for a in attributes.values() if a["n"] > 0]
    return {
        "schema": schema.name,
        "rows": len(truth),
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "attributes": attributes,
        "failures": failures,
    }


def score_attribute(
    name: str, display: str, values: list[str], y_true: list[str], y_pred: list[str]
) -> dict[str, Any]:
    seen = set(y_true) | set(y_pred)
    labels = [v for v in values if v in seen]
    n = len(y_true)
    out: dict[str, Any] = {
        "display": display, "n": n, "accuracy": 0.0, "abstained": y_pred.count(UNKNOWN),
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "per_class": {},
        "confusion": {"labels": [], "matrix": []},
    }
    if n == 0 or not labels:
        return out
    # imported here: ~1 s that the workbench's first page need not wait for
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    cm_labels = labels + ([UNKNOWN] if UNKNOWN in seen else [])
    with warnings.catch_warnings():
        # sklearn warns about a single class even when ``labels`` is given, as it is here.
        warnings.filterwarnings("ignore", message="A single label was found")
        # Predictions outside ``labels`` (abstentions) count as misses for their true class.
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
        mp, mr, mf, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average="macro", zero_division=0
        )
        cm = confusion_matrix(y_true, y_pred, labels=cm_labels)
    out.update(
        accuracy=float(np.mean([t == q for t, q in zip(y_true, y_pred, strict=True)])),
        precision=float(mp), recall=float(mr), f1=float(mf),
        per_class={
            v: {"precision": float(p[j]), "recall": float(r[j]), "f1": float(f[j]), "support": int(s[j])}
            for j, v in enumerate(labels)
        },
        confusion={"labels": cm_labels, "matrix": cm.astype(int).tolist()},
    )
    return out


def _meta_rows(meta: pd.DataFrame | Sequence[Mapping[str, Any]] | None, n: int) -> list[dict] | None:
    if meta is None:
        return None
    records = pd.DataFrame(meta).reset_index(drop=True).to_dict("records")
    if len(records) != n:
        raise ValueError(f"{n} truth rows but {len(records)} meta rows")
    return records


def _failure(
    row: int, attr: str, truth: str, prediction: str, votes: Sequence[Vote] | None, rows: list | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"row": row, "attribute": attr, "truth": truth, "prediction": prediction}
    if rows is not None:
        out.update({k: _plain(rows[row][k]) for k in META_KEYS if k in rows[row]})
    misleading: list[dict[str, Any]] = []
    if votes is not None:
        pool = votes[row].attributes[attr].pool(votes[row])
        if prediction != UNKNOWN:  # these neighbours outvoted the truth
            misleading = [nb.to_dict() for nb in pool if nb.labels.get(attr) == prediction]
        else:  # abstained: every neighbour that voted for something other than the truth
            misleading = [nb.to_dict() for nb in pool if nb.labels.get(attr, UNKNOWN) not in (UNKNOWN, truth)]
    out["misleading"] = misleading
    return out


def _plain(x: Any) -> Any:
    """numpy scalars -> Python ones, so the report serialises to JSON."""
    return x.item() if isinstance(x, np.generic) else x


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def report_markdown(report: Mapping[str, Any]) -> str:
    """A Markdown report: one summary table, then a per-class table for each attribute."""
    lines = [
        "# Evaluation",
        "",
        f"Rows: {report['rows']} · macro F1 (mean over attributes): **{_fmt(report['macro_f1'])}** · "
        f"failures: {len(report['failures'])}",
        "",
        "| Attribute | Precision | Recall | F1 | Accuracy | N | Abstained |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, a in report["attributes"].items():
        lines.append(
            f"| {a.get('display', name)} | {_fmt(a['precision'])} | {_fmt(a['recall'])} | {_fmt(a['f1'])} "
            f"| {_fmt(a['accuracy'])} | {a['n']} | {a['abstained']} |"
        )
    for name, a in report["attributes"].items():
        lines += ["", f"## {a.get('display', name)}", ""]
        if not a["per_class"]:
            lines.append("_No rows with a known value._")
            continue
        lines += ["| Value | Precision | Recall | F1 | Support |", "|---|---:|---:|---:|---:|"]
        for v, c in a["per_class"].items():
            lines.append(
                f"| {v} | {_fmt(c['precision'])} | {_fmt(c['recall'])} | {_fmt(c['f1'])} | {c['support']} |"
            )
    return "\n".join(lines) + "\n"


__all__ = ["evaluate", "report_markdown"]
