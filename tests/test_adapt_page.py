"""The Train page's adaptation job (issue 20): the job kind shows adapt's options in words, and a
finished adaptation job shows its before/after table on the target footage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import SmallIndex
from streamlit.testing.v1 import AppTest

from core.jobs.runner import jobs_dir, write_status

WORKBENCH = str(Path(__file__).resolve().parents[1] / "app" / "workbench.py")


def _frame(at: AppTest, column: str):  # noqa: ANN202
    """The first dataframe with ``column`` (AppTest does not expose st.dataframe keys)."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def _finished_adapt_job(ws: Path, job_id: str) -> None:
    d = jobs_dir(ws) / job_id
    d.mkdir(parents=True)
    (d / "spec.json").write_text(json.dumps({"kind": "adapt", "data_dir": "x", "base_model": "m", "target": ["t"]}))
    side = {"frames": 4, "familiarity_median": 0.1, "flagged_share": 0.75, "domain_probe": 0.98,
            "source_loss": 1.5, "votes": {"weather": {"rain": 0.75, "sunny": 0.25}}, "decided": {"weather": 0.0},
            "accuracy": {"weather": 0.25}, "labelled": {"weather": 4}}
    after = {**side, "familiarity_median": 0.6, "flagged_share": 0.0, "votes": {"weather": {"sunny": 1.0}},
             "accuracy": {"weather": 1.0}}
    (d / "adapt.json").write_text(json.dumps({"before": side, "after": after, "identity": "file:new@abc",
                                              "model_dir": "/m/new"}))
    write_status(d, {"state": "finished", "phase": "done", "attempts": 1})
    (d / "launch.json").write_text(json.dumps({"pid": os.getpid(), "pid_start": None, "attempt": 1}))


def test_train_page_offers_adaptation_and_shows_its_before_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  index_env: SmallIndex) -> None:
    monkeypatch.setenv("SCENESCOPE_WORKSPACE", str(tmp_path))
    _finished_adapt_job(tmp_path, "ad-20260101-000000-done")
    at = AppTest.from_file(WORKBENCH, default_timeout=120)
    at.run()
    at.switch_page("views/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    table = _frame(at, "Measure")
    row = table[table["Measure"] == "familiarity (median)"].iloc[0]
    assert (row["Before"], row["After"]) == ("10.0%", "60.0%")
    assert "accuracy: weather (4 labelled frames)" in set(table["Measure"])
    votes = _frame(at, "Votes after")
    assert list(votes["Votes after"]) == ["Sunny 100%"]  # values in the schema's display words

    at.radio(key="train_kind").set_value("adapt").run()
    assert not at.exception, [e.value for e in at.exception]
    labels = {w.label for w in at.number_input} | {w.label for w in at.checkbox}
    assert {"Alignment strength (gradient reversal)", "Weight of staying close to the start model"} <= labels
    assert at.text_area(key="adapt_target") is not None


def test_map_placement_warns_when_the_upload_is_unlike_the_index(small_index: SmallIndex,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    import numpy as np
    from PIL import Image

    from app import handlers, map_cache
    from core.familiarity import calibration_of, measure
    from core.index import IndexStore
    from core.models import load_model

    model = load_model(small_index.model)
    store = IndexStore.load(small_index.index, model=model)
    # Where the upload lands is map_cache's (UMAP) business; only the banner is checked here.
    monkeypatch.setattr(map_cache, "place", lambda _s, emb, method, layout: np.zeros((len(emb), 2)))
    buf = io.BytesIO()
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (180, 320, 3), dtype=np.uint8))
    noise.save(buf, "PNG")
    indexed = (small_index.data / store.meta["path"].iat[0]).read_bytes()
    # The small test index is sparse, so its own threshold may not flag noise (bench/familiarity.py
    # measures the real one); here the threshold sits between the two uploads' familiarity.
    low, high = measure(store, model.embed_images([noise, Image.open(io.BytesIO(indexed))]))
    assert low < high
    calibration_of(store)["flag_below"] = (low + high) / 2
    xy, _, banner, error = handlers.place_upload("noise.png", buf.getvalue(), model, store, np.zeros((len(store), 2)))
    assert error is None and xy.shape == (1, 2)
    assert banner is not None and "unlike this index" in banner
    _, _, banner, error = handlers.place_upload("frame.jpg", indexed, model, store, np.zeros((len(store), 2)))
    assert error is None and banner is None
