"""Synthetic world: determinism, coverage of every schema value, place masks, clips, dataset writer.

Attribute and value names come from the schema (the place and stage attributes are found by the
render keys their values carry), so these tests follow the YAML if it changes.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from core.data.manifest import read_manifest
from core.schema import default_schema
from core.synth import clip_plan, render_clip, render_scene, write_synth_dataset
from core.synth.clips import attribute_with, value_with

SMALL = (96, 54)


@pytest.fixture(scope="module")
def schema():
    return default_schema()


def _labels(schema, rng, **fixed):
    return schema.sample(rng, fixed)


def test_deterministic_and_seed_dependent(schema):
    labels = schema.sample(random.Random(3))
    a = render_scene(labels, 7)
    b = render_scene(labels, 7)
    c = render_scene(labels, 8)
    assert a.dtype == np.uint8 and a.shape == (180, 320, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_size_is_width_height(schema):
    labels = schema.sample(random.Random(1))
    img, mask = render_scene(labels, 1, size=(200, 120), return_mask=True)
    assert img.shape == (120, 200, 3)
    assert mask.shape == (120, 200) and mask.dtype == bool


def test_every_value_of_every_attribute_renders(schema):
    rng = random.Random(0)
    for attr in schema:
        for value in attr.value_names:
            labels = schema.sample(rng, {attr.name: value})
            img = render_scene(labels, rng.randrange(1000), size=SMALL)
            assert img.shape == (SMALL[1], SMALL[0], 3)
            assert img.std() > 5, f"{attr.name}={value} rendered a flat image"


def test_place_masks_follow_stage(schema):
    place = attribute_with(schema, "feature")
    stage = attribute_with(schema, "distance")
    plain = value_with(place, "feature", "none")
    for p in place.value_names:
        stages = schema.allowed(stage.name, {place.name: p})
        for st in stages:
            for seed in (0, 1):
                labels = schema.sample(random.Random(seed), {place.name: p, stage.name: st})
                _, mask = render_scene(labels, seed, size=(160, 90), return_mask=True)
                if p == plain:
                    assert not mask.any(), f"{p} must have an empty mask"
                else:
                    assert mask.any(), f"{p} at {st} (seed {seed}) has an empty mask"


def test_nearer_places_are_larger(schema):
    place = attribute_with(schema, "feature")
    stage = attribute_with(schema, "distance")
    road = attribute_with(schema, "road")
    far = value_with(stage, "distance", "far")
    near = value_with(stage, "distance", "near")
    straight = [v for v in road.value_names if road.value(v).render["road"] in ("highway", "urban")]
    for p in place.value_names:
        if near not in schema.allowed(stage.name, {place.name: p}):
            continue
        for seed, r in enumerate(straight):
            base = schema.sample(random.Random(seed), {place.name: p, stage.name: far, road.name: r})
            _, m_far = render_scene(base, seed, size=(160, 90), return_mask=True)
            _, m_near = render_scene({**base, stage.name: near}, seed, size=(160, 90), return_mask=True)
            assert m_far.sum() < m_near.sum(), f"{p}: far mask not smaller than near"


def test_clip_plans_respect_schema(schema):
    place = attribute_with(schema, "feature")
    stage = attribute_with(schema, "distance")
    rng = random.Random(5)
    fixed_attrs = [a.name for a in schema if a.name not in (place.name, stage.name)]
    for p in place.value_names:
        plan = clip_plan(schema, rng, fps=2.0, duration_s=8.0, place=p)
        assert len(plan) == 16
        for f in plan:
            schema.check(f["labels"])
        for a in fixed_attrs:
            assert len({f["labels"][a] for f in plan}) == 1, f"{a} changes within a clip"
        keys = [f["stage_key"] for f in plan]
        shown = [k for k in keys if k != "none"]
        order = ["far", "near", "at"]
        assert shown == sorted(shown, key=order.index), "stages out of order"
        assert [f["frame_index"] for f in plan] == list(range(len(plan)))


def test_render_clip_moves_smoothly(schema):
    place = attribute_with(schema, "feature")
    p = next(v for v in place.value_names if place.value(v).render.get("feature") == "construction")
    plan = clip_plan(schema, random.Random(2), fps=2.0, duration_s=5.0, place=p)
    frames = list(render_clip(plan, 11, size=SMALL))
    assert len(frames) == len(plan)
    travel = [f["travel"] for f, _ in frames]
    assert travel == sorted(travel) and travel[0] < travel[-1]
    zs = [f["place_z"] for f, _ in frames if f["place_z"] is not None]
    assert zs == sorted(zs, reverse=True), "the place must come nearer frame by frame"
    imgs = [img for _, img in frames]
    assert all(not np.array_equal(a, b) for a, b in zip(imgs, imgs[1:], strict=False))


def test_dataset_writer(schema, tmp_path):
    root = write_synth_dataset(tmp_path / "ds", scenes=24, clips=2, seed=4, size=(128, 72), fps=1.0,
                               progress=False, schema=schema)
    ds = read_manifest(root, schema)
    frames = ds.frames
    assert (frames["clip_id"].str.startswith("s")).sum() == 24
    assert frames["clip_id"].nunique() == 26
    assert frames.groupby("clip_id")["split"].nunique().max() == 1, "a clip spans two splits"
    assert set(frames["split"]) <= {"train", "val", "test"}
    assert (root / frames["path"].iloc[0]).is_file()
    from PIL import Image

    assert Image.open(root / frames["path"].iloc[0]).size == (128, 72)
    again = write_synth_dataset(tmp_path / "ds2", scenes=24, clips=2, seed=4, size=(128, 72), fps=1.0,
                                progress=False, schema=schema)
    assert read_manifest(again, schema).frames.equals(frames)


def test_cached_datasets_are_reused_until_the_renderer_changes(tmp_path, monkeypatch):
    import core.synth.dataset as dataset

    root = dataset.ensure_synth_dataset(tmp_path / "ds", scenes=6, clips=0, seed=3, progress=False)
    manifest = root / "manifest.jsonl"
    first = manifest.stat().st_mtime_ns
    manifest.touch()
    touched = manifest.stat().st_mtime_ns
    dataset.ensure_synth_dataset(root, scenes=6, clips=0, seed=3, progress=False)
    assert manifest.stat().st_mtime_ns == touched, "a current dataset must be reused"
    monkeypatch.setattr(dataset, "RENDERER_VERSION", dataset.RENDERER_VERSION + 1)
    dataset.ensure_synth_dataset(root, scenes=6, clips=0, seed=3, progress=False)
    assert manifest.stat().st_mtime_ns not in (first, touched), "a stale dataset must be re-rendered"
    dataset.ensure_synth_dataset(root, scenes=7, clips=0, seed=3, progress=False)
    assert len(read_manifest(root).frames) == 7, "other arguments make another dataset"
