"""The bundled model on a freshly rendered world: a floor that a broken model or renderer falls below."""

import pytest

from core.data import read_manifest
from core.models import load_model
from core.quality import measure
from core.synth import write_synth_dataset

FRESH_SEED = 4242  # never used to train the bundled model (its data seed is in its model card)
SCENES = 3000  # 70/15/15 split: 2100 index frames vote on 450 freshly rendered test frames


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    root = write_synth_dataset(tmp_path_factory.mktemp("fresh"), scenes=SCENES, clips=0, seed=FRESH_SEED,
                               progress=False)
    return read_manifest(root)


# Issue 3's floor: k-NN macro F1 >= 0.85 on a few hundred fresh test frames. The bundled model
# (e0d9880a) measures 0.869 here (place 0.72, stage 0.80, road type 0.85, weather 0.93, surface
# 0.94, lighting 0.98), zero-shot 0.94, recall@5 1.00; the set renders in ~10 s and is measured in
# ~20 s on 2 cores. A 700-scene set (490 index frames) measured only 0.80: k-NN votes need an index
# dense enough to hold near look-alikes of each test frame, so the index is the 2100-frame train
# split, not the test frames' few hundred. The data is deterministic (fixed seed), so a retrained or
# broken model or renderer is what moves the figure.
KNN_FLOOR = 0.85
ZERO_SHOT_FLOOR = 0.90


@pytest.mark.slow
def test_bundled_model_knn_floor(fresh):
    model = load_model()
    m = measure(model, fresh.split("train"), fresh.split("test"), k=5, progress=False)
    assert m["knn_macro_f1"] >= KNN_FLOOR, m
    # the photometric attributes are learned: a broken renderer or model loses these first
    for name, f1 in m["knn_f1"].items():
        if name in {a.name for a in fresh.schema.attributes if any("sky" in v.render or "ground" in v.render
                                                                    or "light" in v.render for v in a.values)}:
            assert f1 >= 0.80, (name, m)
    assert m["zero_shot_macro_f1"] >= ZERO_SHOT_FLOOR, m
    assert m["text_to_image_recall@5"] >= 0.9, m


def test_index_curve_matches_indexes_built_from_the_subsets(small_index):
    from core.data import Dataset
    from core.quality import nested_index_rows

    data = read_manifest(small_index.data)
    train, test = data.split("train"), data.split("test")
    model = load_model(small_index.model)
    m = measure(model, train, test, index_fractions=(0.25, 0.5, 1.0), progress=False)
    quarter, half, whole = m["index_curve"]
    assert [p["index_frames"] for p in m["index_curve"]] == [round(len(train) / 4), round(len(train) / 2), len(train)]
    assert whole["knn_f1"] == m["knn_f1"] and whole["prompt_knn_f1"] == m["prompt_knn_f1"]
    small, large = nested_index_rows(len(train), (0.25, 0.5))
    assert set(small) <= set(large)  # nested: a smaller index is a subset of the larger ones
    rebuilt = measure(model, Dataset(train.root, train.frames.iloc[large].reset_index(drop=True), train.schema),
                      test, progress=False)
    assert rebuilt["knn_f1"] == half["knn_f1"] and rebuilt["prompt_knn_f1"] == half["prompt_knn_f1"]
