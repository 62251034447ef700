"""The embedded demo: a synthetic dataset, a demo clip and their index, made once on first use."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import av
import numpy as np

from core.atomic import atomic_path, atomic_write_text
from core.data import Dataset, read_manifest
from core.familiarity import calibrate
from core.index import IndexStore, IndexStoreError
from core.model_names import DEFAULT_MODEL, bundled_identity
from core.schema import Schema, default_schema
from core.synth import clip_plan, ensure_synth_dataset, render_clip
from core.synth.dataset import FPS, SIZE, SPLITS_70_15_15, STAMP, _stamp, synth_dataset_is_current
from core.synth.pending import pending_frames, render_pending, spawn_render
from core.workspace import DEMO_DATA, DEMO_INDEX, ROOT

if TYPE_CHECKING:
    from core.models import SceneModel

DEMO_SCENES, DEMO_CLIPS, DEMO_SEED = 1500, 40, 2024
DEMO_ASSET = ROOT / "assets" / "demo"
ASSET_VECTORS, ASSET_LAYOUT, ASSET_RECORD = "embeddings.npy", "umap.npy", "demo.json"
CALIBRATION = "familiarity"  # the asset record's copy of the index's familiarity calibration


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


class ModelId(NamedTuple):
    """A model's name and identity: all that checking the shipped vectors or an index against it
    needs (``IndexStore.load`` reads ``.identity``), without loading it."""

    name: str
    identity: str


def _model_id(name: str) -> ModelId | SceneModel:
    """A bundled model's identity from its weights file (no torch); any other model, loaded."""
    identity = bundled_identity(name)
    if identity:
        return ModelId(name, identity)
    from core.models import load_model

    return load_model(name)


def _index_matches(index_dir: Path, model: ModelId | SceneModel) -> bool:
    try:
        IndexStore.load(index_dir, model=model)
    except IndexStoreError:
        return False
    return True


def demo_clip(data_dir: Path = DEMO_DATA) -> Path:
    return data_dir / "clips" / "demo_construction.mp4"


def ensure_demo(progress: bool = True, data_dir: Path = DEMO_DATA, index_dir: Path = DEMO_INDEX,
                model_name: str = DEFAULT_MODEL, asset: Path = DEMO_ASSET,
                frames_later: bool = False) -> tuple[Path, Path]:
    """Make the demo dataset and index if missing (or built with another model or renderer);
    reuse them after. When the shipped start-up asset (``asset``) was made by this model from this
    very dataset, the index and its map come from it instead of embedding every frame again.
    ``frames_later`` (`make run`): when the index comes from the asset, the frames (~25 CPU s) are
    rendered by a background process (core.synth.pending) while the workbench already works."""
    schema = default_schema()
    rendered = not synth_dataset_is_current(data_dir, DEMO_SCENES, DEMO_CLIPS, DEMO_SEED)
    model = _model_id(model_name)  # torch loads only when the frames must be embedded
    # Frames can wait only when the vectors need none: a matching asset, or an index already built.
    later = frames_later and (_asset_matches(asset, model) or (not rendered and _index_matches(index_dir, model)))
    ensure_synth_dataset(data_dir, scenes=DEMO_SCENES, clips=DEMO_CLIPS, seed=DEMO_SEED, progress=progress,
                         frames=not later)
    if not later:  # frames a deferred render left (killed, or still at work: waits for it)
        render_pending(data_dir, progress=progress)
    if rendered or not demo_clip(data_dir).is_file():
        write_clip_video(demo_clip(data_dir), schema, "construction", seed=DEMO_SEED)
    if rendered or not _index_matches(index_dir, model):
        dataset = read_manifest(data_dir, check_files=pending_frames(data_dir) is None)
        if not index_from_asset(asset, dataset, model, index_dir):
            from core.index import build_index
            from core.models import load_model

            render_pending(data_dir, progress=progress)  # embedding needs every frame
            build_index(dataset, load_model(model_name), index_dir, split="all", progress=progress)
    if later:
        spawn_render(data_dir)
    return data_dir, index_dir


def _asset_matches(asset: Path, model: ModelId | SceneModel) -> bool:
    """Whether the asset was made by this model from the demo dataset this renderer makes (its
    frame table is checked again, row by row, when the index is built from it)."""
    try:
        record = json.loads((asset / ASSET_RECORD).read_text())
    except (OSError, ValueError):
        return False
    return record.get("model") == model.identity and record.get("synth") == _stamp(
        DEMO_SCENES, DEMO_CLIPS, DEMO_SEED, SIZE, FPS, SPLITS_70_15_15)


# ---- the start-up asset -----------------------------------------------------------------------
# The demo's embeddings and map layout ship in assets/demo, tagged with the model identity and the
# dataset's stamp and fingerprint, so a fresh clone need not embed 2,141 frames and fit UMAP before
# the workbench is usable. Any mismatch (another model, renderer or dataset) ignores the asset.
def _fingerprint(dataset: Dataset) -> str:
    """What the asset's rows must line up with: the frame table's paths and labels, in order."""
    table = dataset.frames[["path", *dataset.schema.names]].astype(str)
    return hashlib.sha1(table.to_csv(index=False).encode()).hexdigest()


def _asset_record(dataset: Dataset, model: ModelId | SceneModel) -> dict:
    stamp = json.loads((Path(dataset.root) / STAMP).read_text())
    return {"model": model.identity, "synth": stamp, "frames": len(dataset), "fingerprint": _fingerprint(dataset)}


def write_demo_asset(asset: Path = DEMO_ASSET, index_dir: Path = DEMO_INDEX, data_dir: Path = DEMO_DATA) -> Path:
    """Save the demo index's vectors and map layout as the start-up asset (after a model or
    renderer change: ``scenescope demo --write-asset``)."""
    from core.maps import umap_projection
    from core.models import load_model

    store = IndexStore.load(index_dir)
    model = load_model(store.manifest.get("model_name") or DEFAULT_MODEL)
    dataset = read_manifest(data_dir)
    if store.manifest["model"] != model.identity or len(store) != len(dataset):
        raise IndexStoreError(f"{index_dir} does not hold the demo built by {model.identity}; run `scenescope demo` first")
    layout = umap_projection(store)
    asset.mkdir(parents=True, exist_ok=True)
    with atomic_path(asset / ASSET_VECTORS) as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(store.embeddings(), np.float32))
    with atomic_path(asset / ASSET_LAYOUT) as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(layout, np.float32))
    # The familiarity calibration too: it depends on the vectors alone, and fitting it (scikit-learn's
    # import and two PCA fits) was the largest part of building the index from the asset.
    record = {**_asset_record(dataset, model), CALIBRATION: store.manifest.get("familiarity") or calibrate(store)}
    atomic_write_text(asset / ASSET_RECORD, json.dumps(record, indent=2) + "\n")
    return asset


def index_from_asset(asset: Path, dataset: Dataset, model: ModelId | SceneModel, index_dir: Path) -> bool:
    """Build the demo index from the asset when it matches; False (nothing written) when not."""
    from core.maps import seed_layout

    try:
        record = json.loads((asset / ASSET_RECORD).read_text())
        vectors = np.load(asset / ASSET_VECTORS, allow_pickle=False)
        layout = np.load(asset / ASSET_LAYOUT, allow_pickle=False)
    except (OSError, ValueError):
        return False
    calibration = record.pop(CALIBRATION, None)
    if record != _asset_record(dataset, model) or vectors.shape[0] != len(dataset) or layout.shape != (len(dataset), 2):
        return False
    store = IndexStore.from_embeddings(vectors, dataset.frames, model=model.identity, dataset=dataset.root,
                                       split="all", schema=dataset.schema, model_name=model.name,
                                       precision="fp32", from_asset=str(asset))
    store.manifest["familiarity"] = calibration or calibrate(store)
    store.save(index_dir)
    seed_layout(store, layout)
    return True
