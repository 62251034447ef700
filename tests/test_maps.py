"""Map engine: cached UMAP layout, placing new points, selection export, colouring, alignment."""

from __future__ import annotations

import io
import json
import random
import shutil

import numpy as np
import pandas as pd
import pytest

import core.maps as maps
from core.index import IndexStore
from core.maps import (
    UMAP_FILE,
    UMAP_META_FILE,
    aligned_layouts,
    color_options,
    color_values,
    export_selection,
    loo_predictions,
    place_points,
    selection_table,
    umap_projection,
)
from core.schema import UNKNOWN, default_schema

SCHEMA = default_schema()


def make_store(n: int = 12, d: int = 16, seed: int = 0, x: np.ndarray | None = None) -> IndexStore:
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    if x is None:
        x, _ = np.linalg.qr(rng.normal(size=(d, d)))
        x = x[:n]
    rows = [
        {"path": f"scenes/ü{i:03d}.png", "clip_id": f"c{i // 4}", "frame_index": i % 4,
         "timestamp_s": 0.5 * (i % 4), "split": ("train", "val", "test")[i % 3], **SCHEMA.sample(prng)}
        for i in range(len(x))
    ]
    return IndexStore.from_embeddings(np.asarray(x, np.float32), rows, model="fake@0")


@pytest.fixture(autouse=True)
def fresh_memory():
    """Each test starts without in-process caches, so disk caching is what gets tested."""
    maps.layout._LAYOUTS.clear()
    maps.place._fitted_reducer.cache_clear()
    yield
    maps.layout._LAYOUTS.clear()
    maps.place._fitted_reducer.cache_clear()


@pytest.fixture
def fake_umap(monkeypatch):
    """Replace the UMAP fit with a cheap deterministic layout and count the calls."""
    calls = []

    def layout(x, params=None, progress=None):
        calls.append(len(x))
        return np.ascontiguousarray(x[:, :2] * 10 + params.seed, dtype=np.float32)

    monkeypatch.setattr(maps.layout, "compute_layout", layout)
    return calls


# ---- layout cache -----------------------------------------------------------------------------
def test_umap_cache_is_written_reused_and_invalidated(tmp_path, fake_umap):
    path = tmp_path / "idx"
    make_store(12).save(path)
    store = IndexStore.load(path)
    seen = []
    first = umap_projection(store, progress=lambda f, m: seen.append(f))
    assert first.shape == (12, 2) and first.dtype == np.float32 and fake_umap == [12]
    assert seen[-1] == 1.0
    meta = json.loads((path / UMAP_META_FILE).read_text())
    assert meta["index"]["count"] == 12 and meta["params"]["n_neighbors"] == 15
    mtime = (path / UMAP_FILE).stat().st_mtime_ns

    maps.layout._LAYOUTS.clear()  # a new process: only the disk cache is left
    again = umap_projection(IndexStore.load(path))
    np.testing.assert_array_equal(again, first)
    assert fake_umap == [12] and (path / UMAP_FILE).stat().st_mtime_ns == mtime

    umap_projection(store, seed=1)  # other parameters: another layout
    assert fake_umap == [12, 12]

    # A rebuilt index with more points, even with the old cache files copied in, is recomputed.
    saved = {f: (path / f).read_bytes() for f in (UMAP_FILE, UMAP_META_FILE)}
    make_store(14, seed=1).save(path)
    for f, data in saved.items():
        (path / f).write_bytes(data)
    maps.layout._LAYOUTS.clear()
    bigger = umap_projection(IndexStore.load(path), seed=1)
    assert bigger.shape == (14, 2) and fake_umap == [12, 12, 14]
    assert json.loads((path / UMAP_META_FILE).read_text())["index"]["count"] == 14


def test_umap_cache_rejects_a_layout_that_does_not_match_its_json(tmp_path, fake_umap):
    path = tmp_path / "idx"
    make_store(12).save(path)
    umap_projection(IndexStore.load(path))
    np.save(path / UMAP_FILE, np.zeros((12, 2), np.float32))  # torn pair: new npy, old json
    maps.layout._LAYOUTS.clear()
    out = umap_projection(IndexStore.load(path))
    assert fake_umap == [12, 12] and np.any(out != 0)


def test_in_memory_store_is_not_written_anywhere(tmp_path, fake_umap, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = make_store(10)
    a, b = umap_projection(store), umap_projection(store)
    assert a is b and fake_umap == [10] and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_real_umap_layout_and_transform_placement(tmp_path):
    """The one test that pays for umap's numba compilation (~15 s): layout, cache, transform."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 4
    x = np.concatenate([c + rng.normal(size=(15, 16)) * 0.3 for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    path = tmp_path / "idx"
    make_store(x=x).save(path)
    store = IndexStore.load(path)
    seen: list[tuple[float, str]] = []
    layout = umap_projection(store, progress=lambda f, m: seen.append((f, m)), n_neighbors=8, n_epochs=60)
    assert layout.shape == (45, 2) and np.all(np.isfinite(layout))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("epochs" in m for _, m in seen)  # umap's epoch counter reaches the progress bar
    assert (path / UMAP_FILE).is_file()
    centres2d = np.stack([layout[i * 15:(i + 1) * 15].mean(0) for i in range(3)])
    spread = max(float(np.linalg.norm(layout[i * 15:(i + 1) * 15] - centres2d[i], axis=1).mean())
                 for i in range(3))
    gap = min(float(np.linalg.norm(centres2d[i] - centres2d[j])) for i in range(3) for j in range(i))
    assert gap > 2 * spread  # the three clusters stay apart on the map

    probe = x[[4, 20]] + 0.01 * rng.normal(size=(2, 16))
    for method in ("knn", "transform"):
        placed = place_points(store, probe, method=method, n_neighbors=8, n_epochs=60)
        dist = np.linalg.norm(placed[:, None] - centres2d[None], axis=2)
        assert dist.argmin(axis=1).tolist() == [0, 1], method  # joins its own cluster
        assert dist.min(axis=1).max() < gap / 2, method


# ---- placing points -------------------------------------------------------------------------------
def test_knn_place_existing_point_lands_on_it_and_blend_lands_between():
    store = make_store(12)
    x = store.embeddings()
    layout = np.random.default_rng(1).uniform(-5, 5, size=(12, 2)).astype(np.float32)
    placed = place_points(store, x[[3, 7]], layout=layout)
    np.testing.assert_allclose(placed, layout[[3, 7]], atol=1e-4)
    mix = (x[2] + x[5]) / np.linalg.norm(x[2] + x[5])
    np.testing.assert_allclose(place_points(store, mix, layout=layout)[0], layout[[2, 5]].mean(0), atol=1e-3)
    assert place_points(store, np.zeros((0, 16)), layout=layout).shape == (0, 2)
    with pytest.raises(ValueError, match="method"):
        place_points(store, x[:1], method="magic", layout=layout)


def test_place_points_uses_cached_layout_by_default(tmp_path, fake_umap):
    make_store(12).save(tmp_path / "idx")
    store = IndexStore.load(tmp_path / "idx")
    layout = umap_projection(store)
    np.testing.assert_allclose(place_points(store, store.embeddings()[5]), layout[[5]], atol=1e-4)
    assert fake_umap == [12]


def test_tiny_index_gets_a_pca_layout_without_umap():
    store = make_store(3)
    out = umap_projection(store)
    assert out.shape == (3, 2) and np.all(np.isfinite(out))
    assert umap_projection(make_store(1)).shape == (1, 2)


# ---- selection ----------------------------------------------------------------------------------
def test_selection_table_and_exports_round_trip():
    store = make_store(12)
    df = selection_table(store, [7, 2, 7, 11])
    assert df["id"].tolist() == [7, 2, 11]
    assert list(df.columns) == ["id", "path", "clip_id", "split", "timestamp_s", *SCHEMA.names]
    assert df["path"].tolist() == [store.meta["path"].iat[i] for i in (7, 2, 11)]

    back_csv = pd.read_csv(io.BytesIO(export_selection(df, "csv")), keep_default_na=False)
    pd.testing.assert_frame_equal(back_csv, df, check_dtype=False)
    back_jsonl = pd.read_json(io.BytesIO(export_selection(df, "jsonl")), lines=True, dtype=False)
    pd.testing.assert_frame_equal(back_jsonl, df, check_dtype=False)
    assert "ü" in export_selection(df, "jsonl").decode("utf-8")

    assert selection_table(store, []).empty
    with pytest.raises(ValueError, match="outside"):
        selection_table(store, [12])
    with pytest.raises(ValueError, match="format"):
        export_selection(df, "xml")


# ---- colouring ----------------------------------------------------------------------------------
def test_color_values_by_attribute_split_and_correctness():
    store = make_store(12)
    attr = SCHEMA.names[0]
    assert color_values(store, attr) == store.meta[attr].tolist()
    assert color_values(store, "split") == store.meta["split"].tolist()
    truth = [store.labels(i) for i in range(12)]
    preds = [dict(t) for t in truth]
    other = [v for v in SCHEMA[attr].value_names if v != truth[1][attr]][0]
    preds[1][attr] = other
    preds[2][SCHEMA.names[1]] = UNKNOWN
    got = color_values(store, "correct", predictions=preds)
    assert got[0] == "correct" and got[1] == "wrong" and got[2] == "abstained"
    assert color_values(store, f"correct:{SCHEMA.names[1]}", predictions=preds)[1] == "correct"
    assert set(color_options(store)) >= {attr, "split", "correct", f"correct:{attr}"}
    with pytest.raises(ValueError, match="colour"):
        color_values(store, "nonsense")
    with pytest.raises(ValueError, match="predictions"):
        color_values(store, "correct", predictions=preds[:3])


def test_map_predictions_use_the_leave_out_rule_and_are_cached():
    # Twins with identical labels in the same clip, and a look-alike in another clip with other
    # labels: the twin may not vote (same clip), so the look-alike in another clip's train frames does.
    rng = np.random.default_rng(0)
    base = np.linalg.qr(rng.normal(size=(16, 16)))[0][:6]
    x = np.repeat(base, 2, axis=0) + 0.01 * rng.normal(size=(12, 16))
    store = make_store(x=x)
    store.meta["clip_id"] = [f"c{i // 2}" for i in range(12)]  # each twin pair is one clip
    store.meta["split"] = "train"
    preds = loo_predictions(store, k=1)
    sims = x @ x.T / np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(x, axis=1))
    for i in range(12):
        other = [j for j in range(12) if j // 2 != i // 2]
        nearest = max(other, key=lambda j: sims[i, j])
        assert preds[i] == store.labels(nearest)
    assert loo_predictions(store, k=1) == preds


def test_map_colours_agree_with_triage_on_the_same_index():
    from core.scoring import score_index

    store = make_store(n=16, d=16, seed=3)
    colours = color_values(store, "correct", k=3)
    for split in ("val", "test", "train"):
        report = score_index(store, split, k=3)
        rows = np.flatnonzero(store.meta["split"].to_numpy() == split)
        failed = {f["id"] for f in report["failures"] if f["decided"]}  # the Map colours decided votes
        for r in rows:
            assert (colours[r] == "wrong") == (int(r) in failed), (split, r)


# ---- alignment ----------------------------------------------------------------------------------
@pytest.mark.parametrize("reflect", [False, True])
def test_procrustes_recovers_rotated_scaled_shifted_layout(reflect):
    rng = np.random.default_rng(2)
    before = rng.normal(size=(50, 2)).astype(np.float32)
    theta = 1.1
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    if reflect:
        rot = rot @ np.diag([1.0, -1.0])
    after = 3.7 * before @ rot + np.array([10.0, -4.0])
    b, a = aligned_layouts(before, after)
    np.testing.assert_allclose(b, before, atol=1e-6)
    np.testing.assert_allclose(a, before, atol=1e-4)
    with pytest.raises(ValueError, match="shape"):
        aligned_layouts(before, after[:-1])
    same = np.ones((4, 2))
    assert np.all(np.isfinite(aligned_layouts(same, same)[1]))


def test_cache_files_do_not_break_index_reload(tmp_path, fake_umap):
    make_store(12).save(tmp_path / "idx")
    umap_projection(IndexStore.load(tmp_path / "idx"))
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "idx", copy)
    assert len(IndexStore.load(copy)) == 12
