"""The demo's start-up asset: an index and map rebuilt from shipped vectors, only when they match."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import core.maps as maps
from core import demo
from core.data import read_manifest
from core.index import IndexStore, build_index
from core.models import load_model
from core.synth import write_synth_dataset
from core.synth.dataset import FPS, SIZE, SPLITS_70_15_15, _stamp


@pytest.fixture
def cheap_umap(monkeypatch):
    calls = []

    def layout(x, params=None, progress=None):
        calls.append(len(x))
        return np.ascontiguousarray(x[:, :2] * 10, dtype=np.float32)

    monkeypatch.setattr(maps.layout, "compute_layout", layout)
    return calls


def test_index_and_map_come_from_a_matching_asset(tmp_path, small_index, cheap_umap):
    data = write_synth_dataset(tmp_path / "data", scenes=16, clips=0, seed=3, progress=False)
    model = load_model(small_index.model)
    built = build_index(read_manifest(data), model, tmp_path / "index", split="all", progress=False)
    asset = demo.write_demo_asset(tmp_path / "asset", index_dir=tmp_path / "index", data_dir=data)
    layout = maps.umap_projection(built)
    assert cheap_umap == [len(built)]

    shutil.rmtree(tmp_path / "index")
    maps.layout._LAYOUTS.clear()
    assert demo.index_from_asset(asset, read_manifest(data), model, tmp_path / "index")
    store = IndexStore.load(tmp_path / "index", model=model)  # the model identity check holds
    np.testing.assert_allclose(store.embeddings(), built.embeddings(), atol=1e-6)
    assert store.meta.equals(built.meta) and store.manifest["familiarity"]["quantiles"]
    np.testing.assert_array_equal(maps.umap_projection(store), layout)
    assert cheap_umap == [len(built)]  # the map came from the asset, not a new fit

    record = json.loads((asset / demo.ASSET_RECORD).read_text())
    # The familiarity calibration ships too (no scikit-learn fit at start-up): the same record a
    # fresh calibration of these vectors gives, and the one the rebuilt index carries.
    from core.familiarity import calibrate

    assert record[demo.CALIBRATION] == calibrate(store) == store.manifest["familiarity"]
    (asset / demo.ASSET_RECORD).write_text(json.dumps({**record, demo.CALIBRATION: {"marker": 1}}))
    assert demo.index_from_asset(asset, read_manifest(data), model, tmp_path / "shipped")
    assert IndexStore.load(tmp_path / "shipped").manifest["familiarity"] == {"marker": 1}  # used, not refit
    for change in ({"model": "other@1"}, {"frames": 3}, {"fingerprint": "0"}):
        (asset / demo.ASSET_RECORD).write_text(json.dumps({**record, **change}))
        assert not demo.index_from_asset(asset, read_manifest(data), model, tmp_path / "other")
        assert not (tmp_path / "other").exists()


def test_shipped_asset_matches_the_bundled_model_and_renderer():
    record = json.loads((demo.DEMO_ASSET / demo.ASSET_RECORD).read_text())
    assert record["model"] == load_model("scenescope-tiny").identity, "run `scenescope demo --write-asset`"
    assert record["synth"] == _stamp(demo.DEMO_SCENES, demo.DEMO_CLIPS, demo.DEMO_SEED, SIZE, FPS, SPLITS_70_15_15), \
        "the renderer changed: run `scenescope demo --write-asset`"
    vectors = np.load(demo.DEMO_ASSET / demo.ASSET_VECTORS)
    assert vectors.shape == (record["frames"], 256) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
