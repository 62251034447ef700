"""The embedded demo: a synthetic dataset, a demo clip and their index, made once on first use."""

from __future__ import annotations

import random
from pathlib import Path

import av
import numpy as np

from core.data import read_manifest
from core.index import IndexStore, IndexStoreError, build_index
from core.models import DEFAULT_MODEL, SceneModel, load_model
from core.schema import Schema, default_schema
from core.synth import clip_plan, ensure_synth_dataset, render_clip
from core.synth.dataset import synth_dataset_is_current
from core.workspace import DEMO_DATA, DEMO_INDEX

DEMO_SCENES, DEMO_CLIPS, DEMO_SEED = 1500, 40, 2024


def write_clip_video(out: Path, schema: Schema, feature: str, seed: int, fps: int = 10,
                     duration_s: float = 8.0, size: tuple[int, int] = (320, 180)) -> Path:
    """Render a clip through the place whose render ``feature`` is given, as an H.264 mp4."""
    attr = next(a for a in schema.attributes if any(v.render.get("feature") for v in a.values))
    place = next(v.name for v in attr.values if v.render.get("feature") == feature)
    plan = clip_plan(schema, random.Random(seed), fps=fps, duration_s=duration_s, place=place)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for _, img in render_clip(plan, seed, size, schema):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    tmp.replace(out)
    return out


def _index_matches(index_dir: Path, model: SceneModel) -> bool:
    try:
        IndexStore.load(index_dir, model=model)
    except IndexStoreError:
        return False
    return True


def demo_clip(data_dir: Path = DEMO_DATA) -> Path:
    return data_dir / "clips" / "demo_construction.mp4"


def ensure_demo(progress: bool = True, data_dir: Path = DEMO_DATA, index_dir: Path = DEMO_INDEX,
                model_name: str = DEFAULT_MODEL) -> tuple[Path, Path]:
    """Make the demo dataset and index if missing (or built with another model or renderer);
    reuse them after."""
    schema = default_schema()
    rendered = not synth_dataset_is_current(data_dir, DEMO_SCENES, DEMO_CLIPS, DEMO_SEED)
    ensure_synth_dataset(data_dir, scenes=DEMO_SCENES, clips=DEMO_CLIPS, seed=DEMO_SEED, progress=progress)
    if rendered or not demo_clip(data_dir).is_file():
        write_clip_video(demo_clip(data_dir), schema, "construction", seed=DEMO_SEED)
    model = load_model(model_name)
    if rendered or not _index_matches(index_dir, model):
        build_index(read_manifest(data_dir), model, index_dir, split="all", progress=progress)
    return data_dir, index_dir
