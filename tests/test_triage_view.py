"""Triage follows the sidebar's view: its metrics score only the view's frames of the split, and
equal scikit-learn on those frames with the votes of the whole index (``core.scoring.index_votes``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SmallIndex
from sklearn.metrics import f1_score
from streamlit.testing.v1 import AppTest

from core.index import IndexStore
from core.schema import UNKNOWN
from core.scoring import DEFAULT_K, index_votes

WORKBENCH = str(Path(__file__).resolve().parents[1] / "app" / "workbench.py")


def _metrics(at: AppTest) -> pd.DataFrame:
    for df in at.dataframe:
        if "F1 when decided" in df.value.columns:
            return df.value.set_index("Attribute")
    raise AssertionError("no metrics table")


def _scope(at: AppTest) -> str:
    return next(c.value for c in at.main.caption if c.value.startswith("Metrics on "))


def _reference(store: IndexStore, rows: np.ndarray) -> dict[str, dict[str, float]]:
    """Per attribute on ``rows``: macro F1 (sklearn) of the plurality vote, labelled frames, share decided."""
    votes = index_votes(store, k=DEFAULT_K)  # every frame, the Map's cached leave-out votes
    out = {}
    for a in store.schema.attributes:
        kept = [int(i) for i in rows if store.labels(int(i)).get(a.name, UNKNOWN) != UNKNOWN]
        y_true = [str(store.labels(i)[a.name]) for i in kept]
        y_pred = [str(votes[i].leaning()[a.name]) for i in kept]
        labels = sorted((set(y_true) | set(y_pred)) - {UNKNOWN})
        out[a.display] = {
            "F1": f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0) if kept else 0.0,
            "Frames": len(kept), "wrong": sum(t != p for t, p in zip(y_true, y_pred, strict=True)),
            "Decided": np.mean([not votes[i].attributes[a.name].abstained for i in kept]) if kept else 0.0,
        }
    return out


def _check(at: AppTest, store: IndexStore, rows: np.ndarray) -> pd.DataFrame:
    table, ref = _metrics(at), _reference(store, rows)
    for name, r in ref.items():
        if not r["Frames"]:
            continue
        assert table.loc[name, "F1"] == pytest.approx(r["F1"], abs=1e-9), name
        assert table.loc[name, "Frames"] == r["Frames"], name
        assert table.loc[name, "Decided"] == pytest.approx(r["Decided"], abs=1e-9), name
    metric = {m.label: m.value for m in at.metric}
    assert metric["Frames"] == f"{len(rows):,}"
    assert metric["Failures"] == f"{sum(r['wrong'] for r in ref.values()):,}"
    return table


def test_triage_metrics_follow_the_sidebar_view(mapped_index: SmallIndex, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCENESCOPE_INDEX", str(mapped_index.index))
    monkeypatch.setenv("SCENESCOPE_WORKSPACE", str(tmp_path))
    store = IndexStore.load(mapped_index.index)
    meta, schema = store.meta, store.schema
    test_rows = np.flatnonzero(meta["split"].astype(str).to_numpy() == "test")
    at = AppTest.from_file(WORKBENCH, default_timeout=120)
    at.run()
    at.switch_page("views/triage.py").run()
    assert not at.exception, [e.value for e in at.exception]
    n = len(test_rows)
    assert _scope(at) == f"Metrics on {n:,} of {n:,} test frames (view: every frame)."
    whole = _check(at, store, test_rows)

    # A view of one value of the first attribute: its most common value among the test frames.
    attr = schema.attributes[0]
    value = meta[attr.name].iloc[test_rows].astype(str).value_counts().index[0]
    at.multiselect(key=f"fv_{attr.name}").select(value).run()
    assert not at.exception, [e.value for e in at.exception]
    in_view = test_rows[meta[attr.name].iloc[test_rows].astype(str).to_numpy() == value]
    assert 0 < len(in_view) < n
    assert re.fullmatch(rf"Metrics on {len(in_view):,} of {n:,} test frames \(view: {attr.display}: "
                        rf"{re.escape(schema.display(attr.name, value))}\)\.", _scope(at)), _scope(at)
    viewed = _check(at, store, in_view)
    assert not np.allclose(viewed["F1"].to_numpy(float), whole["F1"].to_numpy(float))
    # The per-class table of that attribute holds only the view's frames: one class.
    per_class = next(df.value for df in at.dataframe if "Support" in df.value.columns)
    assert per_class["Support"].sum() == len(in_view)
    assert per_class.loc[per_class["Support"] > 0, "Class"].tolist() == [schema.display(attr.name, value)]

    # A view with no test frame: a sentence, not an error.
    at.multiselect(key="fv_split").select("train").run()
    assert not at.exception and not at.error
    assert any(i.value.startswith(f"Metrics on 0 of {n:,} test frames") for i in at.info)
