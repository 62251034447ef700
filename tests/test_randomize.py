"""Domain randomization (issue 20): off by default and then the renderer's output is untouched
(its code is never reached, datasets keep their stamp); on, it changes the pixels, not the labels
or the layout, deterministically; and the matching training augmentation."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

import core.synth.render as render
from core.data import read_manifest
from core.schema import default_schema
from core.synth import render_scene, write_synth_dataset
from core.synth.camera import Camera
from core.synth.dataset import synth_dataset_is_current
from core.synth.randomize import jitter_camera, lens
from core.train.adapt import SensorAugment


def test_default_render_never_reaches_the_randomization(monkeypatch):
    schema = default_schema()
    labels = schema.sample(random.Random(3))
    before = render_scene(labels, seed=11)

    def boom(*_a, **_k):  # noqa: ANN202
        raise AssertionError("randomization reached with randomize off")

    monkeypatch.setattr(render, "jitter_camera", boom)
    monkeypatch.setattr(render, "randomize_frame", boom)
    assert np.array_equal(render_scene(labels, seed=11), before)
    assert np.array_equal(render_scene(labels, seed=11, randomize=False), before)


def test_randomized_frames_differ_deterministically_with_the_same_layout():
    schema = default_schema()
    labels = schema.sample(random.Random(4))
    plain, mask = render_scene(labels, seed=5, return_mask=True)
    a, b = render_scene(labels, seed=5, randomize=True), render_scene(labels, seed=5, randomize=True)
    assert a.shape == plain.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)  # a pure function of (labels, seed)
    assert np.abs(a.astype(int) - plain.astype(int)).mean() > 5  # a visibly different camera
    assert not np.array_equal(render_scene(labels, seed=6, randomize=True), a)
    # The randomization draws from its own stream: the scene's mask (its layout) is unchanged.
    assert np.array_equal(render_scene(labels, seed=5, return_mask=True, randomize=False)[1], mask)


def test_camera_jitter_and_lens_stay_in_range():
    cam = Camera(320, 180, f=256.0, h=1.8, cx=160.0, yh=78.0)
    jitter_camera(cam, random.Random(0))
    assert 0.75 * 256 <= cam.f <= 1.35 * 256 and 0.85 * 1.8 <= cam.h <= 1.25 * 1.8
    assert 78 - 0.09 * 180 <= cam.yh <= 78 + 0.08 * 180
    flat = np.full((18, 32, 3), 100.0, np.float32)
    out = lens(flat, random.Random(1))
    assert out.shape == flat.shape and out.max() <= 100.0 + 1e-4  # vignetting only darkens a flat image
    assert out[9, 16].mean() >= out[0, 0].mean()  # the centre is the brightest


def test_synth_dataset_stamp_and_labels_with_and_without_randomization(tmp_path):
    plain = write_synth_dataset(tmp_path / "plain", scenes=3, clips=0, seed=2, progress=False)
    rand = write_synth_dataset(tmp_path / "rand", scenes=3, clips=0, seed=2, progress=False, randomize=True)
    assert "randomize" not in json.loads((plain / "synth.json").read_text())
    assert synth_dataset_is_current(plain, 3, 0, 2) and not synth_dataset_is_current(rand, 3, 0, 2)
    a, b = read_manifest(plain).frames, read_manifest(rand).frames
    assert a.equals(b)  # the same frames, labels and splits
    img = a["path"].iloc[0]
    assert (plain / img).read_bytes() != (rand / img).read_bytes()


def test_randomize_augmentation_is_seeded_changes_pixels_and_is_off_by_default():
    mean, std = torch.full((3, 1, 1), 0.5), torch.full((3, 1, 1), 0.25)
    x = torch.rand(3, 3, 28, 48) * 2 - 1
    plain, rand = SensorAugment(mean, std, p=1.0), SensorAugment(mean, std, p=1.0, randomize=True)
    assert not plain.randomize
    assert torch.equal(rand(x, 7), rand(x, 7))
    assert not torch.equal(rand(x, 7), plain(x, 7))
    raw = rand(x, 7) * std + mean
    assert float(raw.min()) >= -1e-5 and float(raw.max()) <= 1 + 1e-5
    with pytest.raises(TypeError):
        SensorAugment(mean, std, lens=True)  # no such option: the randomize flag is the switch
