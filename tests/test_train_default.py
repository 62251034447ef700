"""The bundled-model recipe end to end on a tiny synthetic set: contrastive, refine and
distillation stages, a loadable model folder, and frames left out on request (the fine-tuning
bench's weak start).

One finished TINY run is shared by the module; tests that train more work in a hard-linked copy
of its folder (cheap, and safe: every write the recipe makes replaces a file by rename, core.atomic,
so a linked original is never changed in place)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from core.data import read_manifest
from core.models import load_model
from core.schema import SchemaError
from core.train.default import DefaultRecipe, train_default

# 24 scenes: 16 train frames (10 of them fog or snow, so exclusion leaves 6) and 4 val frames,
# two batches a stage; enough for every property below, none of which needs a better model.
TINY = DefaultRecipe(scenes=24, clips=0, data_seed=3, epochs=1, batch_size=8, val_index_frames=8,
                     refine_epochs=1, grow_epochs=0, distill_epochs=1)
SYNTH = f"synth-{TINY.scenes}-{TINY.clips}-s{TINY.data_seed}"
DEFAULTS = '{"lr": {"value": 0.0005, "source": "a bench"}}'


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    """One finished TINY run (its work folder and summary), written over a model folder that
    held fine-tuning defaults (model ``a``)."""
    work = tmp_path_factory.mktemp("tiny-run")
    (work / "a").mkdir()
    (work / "a" / "finetune_defaults.json").write_text(DEFAULTS)
    return work, train_default(TINY, out=work / "a", work=work, progress=False)


def _linked(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def _copy_of(trained: tuple[Path, dict], tmp_path: Path) -> Path:
    return _linked(trained[0], tmp_path / "w")


def test_tiny_recipe_trains_distils_and_writes_a_loadable_model(trained):
    work, summary = trained
    assert (work / "a" / "finetune_defaults.json").read_text() == DEFAULTS  # a retrained model keeps its defaults
    assert [r["epoch"] for r in summary["log"]] == [1]
    assert [r["epoch"] for r in summary["refine_log"]] == [1]
    assert [r["epoch"] for r in summary["distill_log"]] == [1]
    row = summary["distill_log"][0]
    assert 0 <= row["val_knn_macro_f1_spread25"] <= 1 and 0 <= row["val_knn_macro_f1"] <= 1
    assert json.loads((work / "a" / "training.json").read_text())["recipe"]["distill_epochs"] == 1
    model = load_model(f"file:{work / 'a'}")
    assert model.embed_texts(["a road"]).shape == (1, model.embed_dim)
    assert not any(k.startswith("attribute_heads") for k in model.clip.state_dict())


def test_excluded_values_leave_training_and_get_their_own_state(trained, tmp_path):
    work = _copy_of(trained, tmp_path)
    summary = train_default(TINY, out=work / "weak", work=work, progress=False, exclude={"weather": ["fog", "snow"]})
    frames = read_manifest(work / SYNTH).frames
    train = frames[frames["split"] == "train"]
    assert summary["train_frames"] == int((~train["weather"].isin(["fog", "snow"])).sum()) < len(train)
    assert summary["excluded"] == {"weather": ["fog", "snow"]}
    assert len(list(work.glob("state-*"))) == 6  # contrastive + refine + distillation, for each run
    with pytest.raises(SchemaError, match="hail"):
        train_default(TINY, out=work / "bad", work=work, progress=False, exclude={"weather": ["hail"]})


def test_a_changed_refine_stage_reuses_the_contrastive_stage(trained, tmp_path):
    first, tmp_path = trained[1], _copy_of(trained, tmp_path)
    states = {p.name for p in tmp_path.glob("state-*")}
    second = train_default(replace(TINY, refine_head_weights=(1.0,) * 6), out=tmp_path / "b", work=tmp_path,
                           progress=False)
    new = {p.name for p in tmp_path.glob("state-*")} - states
    stage1 = {n for n in states if "-" not in n.removeprefix("state-")}
    assert len(stage1) == 1 and not any("-" not in n.removeprefix("state-") for n in new)
    assert len(new) == 2 and all(n.startswith(f"{min(stage1)}-") for n in new)  # refine + its distillation
    assert second["log"] == first["log"]  # loaded, not retrained
    assert second["refine_log"][0]["loss"] != first["refine_log"][0]["loss"]


def test_frames_from_another_renderer_version_start_the_recipe_over(trained, tmp_path, monkeypatch):
    import core.synth.dataset as synth_dataset

    tmp_path = _copy_of(trained, tmp_path)
    before = {p.name for p in tmp_path.glob("state-*")}
    monkeypatch.setattr(synth_dataset, "RENDERER_VERSION", synth_dataset.RENDERER_VERSION + 1)
    train_default(TINY, out=tmp_path / "b", work=tmp_path, progress=False)
    new = {p.name for p in tmp_path.glob("state-*")} - before
    assert len(new) == 3  # contrastive, refine and distillation all trained again, none resumed
    stamp = json.loads((tmp_path / SYNTH / "synth.json").read_text())
    assert stamp["renderer"] == synth_dataset.RENDERER_VERSION  # the frames were rendered again
    # and the shared run, whose files the copy links, still holds the frames of the current renderer
    assert json.loads((trained[0] / SYNTH / "synth.json").read_text())["renderer"] == stamp["renderer"] - 1


def test_the_recipe_trains_at_another_input_size_and_grows_to_a_finer_grid(trained, tmp_path):
    import numpy as np

    _linked(trained[0] / SYNTH, tmp_path / SYNTH)  # the same frames: only the stages train here
    recipe = replace(TINY, image_size=(32, 64), grow_epochs=1, grow_image_size=(48, 96))
    summary = train_default(recipe, out=tmp_path / "m", work=tmp_path, progress=False)
    assert [r["epoch"] for r in summary["grow_log"]] == [1]
    assert len(list(tmp_path.glob("state-*-grow-*"))) == 1
    cfg = json.loads((tmp_path / "m" / "open_clip_config.json").read_text())
    assert cfg["model_cfg"]["vision_cfg"]["image_size"] == [48, 96]
    model = load_model(f"file:{tmp_path / 'm'}")
    assert tuple(model.clip.visual.grid_size) == (3, 6)
    emb = model.embed_images([np.zeros((180, 320, 3), np.uint8)])
    assert emb.shape == (1, model.embed_dim) and np.isfinite(emb).all()
    for bad in ({"image_size": (50, 96)}, {"grow_image_size": (48, 0)}):
        with pytest.raises(ValueError, match="multiple of the 16-pixel patch"):
            train_default(replace(TINY, **bad), out=tmp_path / "bad", work=tmp_path / "nothing", progress=False)
    assert not (tmp_path / "nothing").exists()  # refused before anything was rendered
