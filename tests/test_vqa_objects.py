"""Object annotations (core.synth.objects) and DriveLM's important-objects question: the annotations
are where the objects are drawn, the bank's answers say the annotations in DriveLM's form, the
challenge's match F1 reads them back, and the retrieval answerer names kinds by neighbour vote only."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import numpy as np
import pytest

from core.schema import default_schema
from core.synth import objects as objs
from core.synth.render import render_scene
from core.vqa.answer import answer
from core.vqa.metrics_match import MATCH_RADIUS_PX, challenge_points, match_f1
from core.vqa.questions import (
    Intent,
    important_objects,
    object_point,
    objects_answer,
    question_bank,
    questions_of,
)

SCHEMA = default_schema()
PLACE = "place"  # tests may spell schema names
SIZE = (320, 180)


def _scene(place: str, seed: int = 3) -> dict:
    stage = "driving" if place == "background" else "approaching"
    return SCHEMA.sample(random.Random(seed), {PLACE: place, "stage": stage, "weather": "sunny", "lighting": "day"})


def test_annotations_leave_the_pixels_alone_and_stay_in_the_frame():
    for place in ("construction_zone", "rail_crossing", "intersection_4way", "zebra_crossing"):
        labels = _scene(place)
        img, mask, found = render_scene(labels, 21, SIZE, return_mask=True, return_objects=True)
        assert np.array_equal(img, render_scene(labels, 21, SIZE))
        assert np.array_equal(mask, render_scene(labels, 21, SIZE, return_mask=True)[1])
        assert found and {o["class"] for o in found} <= set(objs.CLASSES)
        for o in found:
            x0, y0, x1, y1 = o["box"]
            assert 0 <= x0 < x1 <= SIZE[0] and 0 <= y0 < y1 <= SIZE[1]
            assert x0 <= o["centre"][0] <= x1 and y0 <= o["centre"][1] <= y1
            assert o["pixels"] >= objs.MIN_PIXELS
        assert [o["distance"] for o in found] == sorted(o["distance"] for o in found)


def test_cone_and_barrel_boxes_cover_what_they_draw(monkeypatch):
    """Each cone's and barrel's box differs from the same scene rendered without them, and holds place
    pixels (they are part of the construction zone's mask)."""
    from core.synth.places.works import WorksMixin

    labels = _scene("construction_zone", 8)
    img, mask, found = render_scene(labels, 4, SIZE, return_mask=True, return_objects=True)
    works = [o for o in found if o["class"] in (objs.CONE, objs.BARREL)]
    assert len(works) >= 3
    monkeypatch.setattr(WorksMixin, "_cone", lambda *a, **k: None)
    monkeypatch.setattr(WorksMixin, "_barrel", lambda *a, **k: None)
    bare, left = render_scene(labels, 4, SIZE, return_objects=True)
    assert not any(o["class"] in (objs.CONE, objs.BARREL) for o in left)
    for o in works:
        x0, y0, x1, y1 = o["box"]
        diff = np.abs(img[y0:y1, x0:x1].astype(int) - bare[y0:y1, x0:x1].astype(int)).sum(axis=2) > 0
        # a box is that of the visible pixels (a cone half behind a sign keeps only its edges)
        assert diff.sum() >= 0.8 * o["pixels"], o
        assert mask[y0:y1, x0:x1].any(), o


def test_a_nearer_car_hides_what_is_behind_it():
    """Visible pixels only: no annotated pixel count exceeds its box, and a hidden object is dropped."""
    labels = _scene("background", 5)
    _, found = render_scene(labels, 12, SIZE, return_objects=True)
    for o in found:
        x0, y0, x1, y1 = o["box"]
        assert o["pixels"] <= (x1 - x0) * (y1 - y0)
    # painted far to near: a nearer item hides what it covers, tagged or not
    from types import SimpleNamespace

    from PIL import Image

    from core.synth.canvas import Canvas

    def square(y1: int) -> list:
        return [("p", [(0, 0), (10, 0), (10, y1), (0, y1)], (200, 0, 0))]

    for near_kind, near_rows, want in ((objs.VEHICLE, 5, [(objs.VEHICLE, [0, 0, 11, 6]), (objs.CONE, [0, 6, 11, 11])]),
                                       (None, 5, [(objs.CONE, [0, 6, 11, 11])]),
                                       (objs.VEHICLE, 10, [(objs.VEHICLE, [0, 0, 11, 11])])):
        cv = Canvas(SimpleNamespace(width=20, height=16), SimpleNamespace(wet=False), random.Random(0), {},
                    want_objects=True)
        cv.start(Image.new("RGB", (20, 16)))
        cv.item(10.0, square(10), kind=objs.CONE)
        cv.item(5.0, square(near_rows), kind=near_kind)
        cv.flush()
        assert [(o["class"], o["box"]) for o in cv.objects()] == want


def test_schema_phrases_exactly_the_renderer_classes():
    assert set(SCHEMA.qa.objects.classes) == set(objs.CLASSES)


def _fake(n: int, rng: random.Random) -> list[dict]:
    out = []
    for i in range(n):
        x, y = rng.uniform(5, 315), rng.uniform(5, 175)
        out.append({"class": rng.choice(objs.CLASSES), "centre": [x, y], "box": [int(x) - 2, int(y) - 2, int(x) + 3,
                                                                                 int(y) + 3],
                    "distance": 5.0 + i, "pixels": 500})
    return out


def test_the_answer_says_the_important_objects_in_drivelm_form():
    rng = random.Random(0)
    f = SCHEMA.qa.objects
    for n in (0, 1, 2, 7):
        ann = _fake(n, rng)
        text = objects_answer(SCHEMA, ann, SIZE)
        imp = important_objects(SCHEMA, ann, SIZE)
        assert len(imp) == min(n, f.most)
        pts = challenge_points(text)
        want = np.array([object_point(SCHEMA, o, SIZE) for o in imp]).reshape(-1, 2)
        assert np.allclose(pts, want, atol=0.051)  # one decimal
        assert np.allclose(want / [f.frame[0] / SIZE[0], f.frame[1] / SIZE[1]],
                           np.array([o["centre"] for o in imp]).reshape(-1, 2))
        assert text.count(f"{f.camera},") == len(imp)
        for o in imp:
            assert f.classes[o["class"]] in text
        if n == 0:
            assert text == f.none
        # the challenge's match F1: a perfect answer finds every object, a 20 px shift none
        assert match_f1(text, text) == pytest.approx(1.0 if n else 0.0, abs=1e-6)
        shifted = text
        for x, y in pts:
            shifted = shifted.replace(f"{x:.1f},{y:.1f}", f"{x + 20:.1f},{y:.1f}")
        if n:
            assert 20 > MATCH_RADIUS_PX and match_f1(shifted, text) == pytest.approx(0.0, abs=1e-6)


def test_the_bank_asks_about_objects_only_with_annotations_and_leaves_the_rest_alone():
    rows = [{"path": f"images/s{i}.jpg", "clip_id": f"s{i}", "frame_index": 0, "split": "test",
             **SCHEMA.sample(random.Random(i))} for i in range(6)]
    ann = {r["path"]: {"size": list(SIZE), "objects": _fake(3, random.Random(i))} for i, r in enumerate(rows)}
    plain = question_bank(rows, SCHEMA, seed=4)
    with_objects = question_bank(rows, SCHEMA, seed=4, objects=ann)
    extra = [r for r in with_objects if r["intent"]["kind"] == "objects"]
    assert [r for r in with_objects if r["intent"]["kind"] != "objects"] == plain
    assert len(extra) == len(rows)
    for r in extra:
        a = ann[f"images/{r['scene']}.jpg"]
        assert r["tag"] == [3] and r["group"] == "perception" and r["type"] == "free_form"
        assert r["question"] in questions_of(SCHEMA, Intent("objects"))
        assert r["answer"] == objects_answer(SCHEMA, a["objects"], a["size"])


def test_synth_writes_annotations_and_object_questions(tmp_path):
    from core.synth import write_synth_dataset

    root = write_synth_dataset(tmp_path / "d", scenes=3, clips=1, seed=11, progress=False, qa=True, objects=True)
    manifest = [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines()]
    ann = objs.read_objects(root)
    assert set(ann) == {r["path"] for r in manifest}
    qa = [json.loads(x) for x in (root / "qa.jsonl").read_text().splitlines()]
    asked = [r for r in qa if r["intent"]["kind"] == "objects"]
    assert len(asked) == 3
    for r in asked:
        a = ann[f"images/{r['scene']}.jpg"]
        assert r["answer"] == objects_answer(SCHEMA, a["objects"], a["size"])
    # the annotations are those of the frame as rendered (same seed, same layout)
    plain = write_synth_dataset(tmp_path / "p", scenes=3, clips=1, seed=11, progress=False, qa=True)
    assert not (plain / objs.OBJECTS_FILE).exists()
    assert [r for r in qa if r["intent"]["kind"] != "objects"] == \
        [json.loads(x) for x in (plain / "qa.jsonl").read_text().splitlines()]
    for r in manifest:
        assert (root / r["path"]).read_bytes() == (plain / r["path"]).read_bytes()
    # annotating a dataset written without them afterwards gives the same annotations
    from core.synth.dataset import dataset_objects

    assert dataset_objects(plain) == ann


@pytest.fixture(scope="module")
def votes(small_index):
    from core.index import IndexStore
    from core.predict import vote_batch

    store = IndexStore.load(small_index.index)
    rows = np.arange(0, len(store), 11)
    return vote_batch(store, store.embeddings()[rows], k=5, exclude="clip", query_rows=rows)


def test_retrieval_names_kinds_by_neighbour_vote_and_never_positions(votes):
    q = questions_of(SCHEMA, Intent("objects"))[0]
    rng = random.Random(2)
    paths = {n.path for v in votes for n in v.neighbors}
    ann = {p: {"size": list(SIZE), "objects": _fake(rng.randrange(0, 4), rng)} for p in sorted(paths)}
    for vote in votes:
        a = answer(q, vote, threshold=0.0, objects=ann)
        assert a.intent == Intent("objects") and not challenge_points(a.text).size
        if any(av.reason for av in vote.attributes.values()):
            assert not a.definite
            continue
        shown = [{o["class"] for o in important_objects(SCHEMA, ann[n.path]["objects"], SIZE)} for n in vote.neighbors]
        tally = Counter(c for s in shown for c in s)
        named = [c for c in SCHEMA.qa.objects.classes if tally[c] / len(shown) > 0.5]
        for c in SCHEMA.qa.objects.classes:
            said = re.search(rf"\b{re.escape(SCHEMA.qa.objects.classes[c])}\b", a.text) is not None
            assert said == (c in named), (a.text, tally)
        if named:
            assert a.confidence == pytest.approx(min(tally[c] for c in named) / len(shown))
        without = answer(q, vote, objects=None)
        assert not without.definite and without.text == SCHEMA.qa.no_answer and "annotations" in without.reason


def test_the_vlm_answerer_gives_no_object_answer_without_positions():
    """A generated text about objects that names no <cN,CAMERA,x,y> is no definite answer; one that does
    is kept (a VLM trained on object questions)."""
    from types import SimpleNamespace

    from core.vqa.vlm_answerer import VLMAnswerer

    q = questions_of(SCHEMA, Intent("objects"))[0]
    placed = objects_answer(SCHEMA, _fake(2, random.Random(1)), SIZE)
    for text, definite in (("The ego vehicle a gamp ahead.", False), (placed, True)):
        stub = SimpleNamespace(answer_patches=lambda *a, t=text: (t, 0.9, None, None))
        a = VLMAnswerer(stub, schema=SCHEMA).answer_tokens(q, None)
        assert a.definite == definite and a.intent == Intent("objects")
        assert a.text == (placed if definite else SCHEMA.qa.no_answer)
        if not definite:
            assert "positions" in a.reason
