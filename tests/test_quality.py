"""The bundled model on a freshly rendered world: a floor that a broken model or renderer falls below."""

import pytest

from core.data import read_manifest
from core.models import load_model
from core.quality import measure
from core.synth import write_synth_dataset

FRESH_SEED = 4242  # never used to train the bundled model (its data seed is in its model card)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    root = write_synth_dataset(tmp_path_factory.mktemp("fresh"), scenes=700, clips=0, seed=FRESH_SEED,
                               progress=False)
    return read_manifest(root)


# Regression floors, not the goal. On this 700-scene set (490 index frames) the bundled model
# (e0d9880a) measures k-NN macro F1 0.80 and zero-shot 0.92; on the model card's 3000 scenes 0.88
# and 0.95. Issue 3 asks for k-NN >= 0.85 here (>= 0.90 on the card), which this model does not
# reach: place (0.66), road type (0.75) and stage (0.76) are its weak attributes with so small an
# index (weather 0.82, surface 0.89, lighting 0.90). The floors sit ~0.07 below the measured
# values so that a broken model or renderer fails, not seed-to-seed noise.
KNN_FLOOR = 0.72
ZERO_SHOT_FLOOR = 0.85


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
