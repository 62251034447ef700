"""evaluate(): numbers equal scikit-learn's, UNKNOWN handling, failures and their neighbours."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from core.eval import evaluate, report_markdown
from core.predict import knn_vote
from core.schema import UNKNOWN, default_schema

SCHEMA = default_schema()
ATTR = SCHEMA.attributes[0]
A, B, C = ATTR.value_names[:3]


def noisy_predictions(n: int = 200, seed: int = 0):
    """Truth from the schema (some UNKNOWN); predictions = truth, a random value, or UNKNOWN."""
    rng = random.Random(seed)
    truth, pred = [], []
    for _ in range(n):
        t = SCHEMA.sample(rng)
        p = {}
        for a in SCHEMA.attributes:
            r = rng.random()
            p[a.name] = t[a.name] if r < 0.6 else UNKNOWN if r < 0.7 else rng.choice(a.value_names)
            if rng.random() < 0.1:
                t[a.name] = UNKNOWN
        truth.append(t)
        pred.append(p)
    return truth, pred


def test_metrics_equal_sklearn_per_class_and_macro():
    truth, pred = noisy_predictions()
    report = evaluate(truth, pred, SCHEMA)
    f1s = []
    for a in SCHEMA.attributes:
        rows = [i for i, t in enumerate(truth) if t[a.name] != UNKNOWN]
        yt = [truth[i][a.name] for i in rows]
        yp = [pred[i][a.name] for i in rows]
        labels = [v for v in a.value_names if v in set(yt) | set(yp)]
        p, r, f, s = precision_recall_fscore_support(yt, yp, labels=labels, zero_division=0)
        mp, mr, mf, _ = precision_recall_fscore_support(yt, yp, labels=labels, average="macro",
                                                        zero_division=0)
        got = report["attributes"][a.name]
        assert got["n"] == len(rows) and got["abstained"] == yp.count(UNKNOWN)
        assert list(got["per_class"]) == labels
        for j, v in enumerate(labels):
            c = got["per_class"][v]
            assert (c["precision"], c["recall"], c["f1"], c["support"]) == pytest.approx((p[j], r[j], f[j], s[j]))
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((mp, mr, mf))
        assert got["accuracy"] == pytest.approx(np.mean(np.array(yt) == np.array(yp)))
        cm_labels = labels + [UNKNOWN]
        assert got["confusion"]["labels"] == cm_labels
        assert got["confusion"]["matrix"] == confusion_matrix(yt, yp, labels=cm_labels).tolist()
        f1s.append(mf)
    assert report["macro_f1"] == pytest.approx(np.mean(f1s))
    wrong = sum(t[a] != UNKNOWN and t[a] != p[a] for t, p in zip(truth, pred, strict=True) for a in SCHEMA.names)
    assert len(report["failures"]) == wrong
    json.dumps(report)  # plain Python types throughout


def test_small_case_by_hand_abstention_is_wrong_unknown_truth_skipped():
    other = {a.name: a.value_names[0] for a in SCHEMA.attributes[1:]}
    truth = [{ATTR.name: v, **other} for v in (A, A, B, B, UNKNOWN)]
    pred = [{ATTR.name: v, **other} for v in (A, B, B, UNKNOWN, C)]
    rep = evaluate(truth, pred, SCHEMA)["attributes"][ATTR.name]
    assert rep["n"] == 4 and rep["abstained"] == 1 and rep["accuracy"] == 0.5
    assert rep["per_class"][A] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert rep["per_class"][B] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert C not in rep["per_class"]  # the row predicting C had UNKNOWN truth: skipped
    assert rep["f1"] == pytest.approx((2 / 3 + 0.5) / 2)
    # perfect attributes
    for a in SCHEMA.attributes[1:]:
        assert evaluate(truth, pred, SCHEMA)["attributes"][a.name]["f1"] == 1.0


def test_failures_name_misleading_neighbours_and_frames():
    other = {a.name: a.value_names[0] for a in SCHEMA.attributes[1:]}
    nb_labels = [{ATTR.name: B, **other}, {ATTR.name: A, **other}, {ATTR.name: B, **other}]
    wrong = knn_vote([0.9, 0.8, 0.7], nb_labels, SCHEMA, neighbor_ids=[10, 11, 12],
                     neighbor_paths=["x.png", "y.png", "z.png"])
    nb_split = [{ATTR.name: A, **other}, {ATTR.name: B, **other}, {ATTR.name: C, **other}]
    abstain = knn_vote([0.9, 0.8, 0.7], nb_split, SCHEMA, abstain_margin=0.5, neighbor_ids=[20, 21, 22])
    right = knn_vote([0.9], [{ATTR.name: A, **other}], SCHEMA)
    truth = [{ATTR.name: A, **other}] * 3
    pred = [v.labels() for v in (wrong, abstain, right)]
    meta = pd.DataFrame({"path": ["q0.png", "q1.png", "q2.png"], "clip_id": ["c", "c", "d"],
                         "frame_index": np.arange(3), "timestamp_s": [0.0, 0.5, 1.0]})
    report = evaluate(truth, pred, SCHEMA, votes=[wrong, abstain, right], meta=meta)
    fails = report["failures"]
    assert [(f["row"], f["attribute"], f["prediction"]) for f in fails] == [(0, ATTR.name, B), (1, ATTR.name, UNKNOWN)]
    assert [m["id"] for m in fails[0]["misleading"]] == [10, 12]
    assert fails[0]["misleading"][0]["path"] == "x.png" and fails[0]["path"] == "q0.png"
    assert fails[1]["frame_index"] == 1 and isinstance(fails[1]["frame_index"], int)
    assert [m["id"] for m in fails[1]["misleading"]] == [21, 22]  # everything but the truth
    json.dumps(report)


def test_report_markdown_lists_every_attribute_and_class():
    truth, pred = noisy_predictions(60, seed=3)
    report = evaluate(truth, pred, SCHEMA)
    md = report_markdown(report)
    assert f"{report['macro_f1']:.3f}" in md
    for a in SCHEMA.attributes:
        assert f"## {a.display}" in md
        row = report["attributes"][a.name]
        assert f"| {a.display} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} |" in md
        for v, c in row["per_class"].items():
            assert f"| {v} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |" in md


def test_length_mismatch_is_refused():
    with pytest.raises(ValueError, match="2 truth rows but 1 predictions"):
        evaluate([{}, {}], [{}], SCHEMA)
