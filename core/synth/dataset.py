"""Write a balanced synthetic dataset: JPEG frames plus a validated, clip-grouped manifest.

Places are drawn uniformly (so the rarest place still gets 1/12 of the single scenes), every other
attribute uniformly among the values the schema allows. Each single scene is its own clip; a clip's
frames all land in one split. Output is a pure function of the arguments (parallel or not).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
from functools import partial
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from core.atomic import atomic_path, atomic_write_text, fsync_dir
from core.data.manifest import SPLITS, write_manifest
from core.schema import Schema, default_schema
from core.synth.clips import attribute_with, clip_frames, clip_plan
from core.synth.objects import OBJECTS_KEY, write_objects
from core.synth.render import RENDERER_VERSION, Size, render_params

STAMP = "synth.json"  # how the dataset was rendered; a cache with another stamp is stale
PENDING = "rendering.json"  # frames still to render: the write arguments and every frame's path
SIZE, FPS, SPLITS_70_15_15 = (320, 180), 2.0, (0.7, 0.15, 0.15)
PARALLEL_ABOVE = 500  # frames; below this a pool costs more than it saves
JPEG_QUALITY = 92

_schema: Schema | None = None  # per worker process
_randomize = False  # domain randomization (core.synth.randomize), per worker process
_objects = False  # also annotate each frame's objects (core.synth.objects), per worker process


def _init(schema: Schema, randomize: bool = False, objects: bool = False) -> None:
    global _schema, _randomize, _objects
    _schema, _randomize, _objects = schema, randomize, objects


def _save(img, path: Path) -> None:  # noqa: ANN001 - numpy array
    with atomic_path(path, suffix=".jpg") as tmp:
        Image.fromarray(img).save(tmp, format="JPEG", quality=JPEG_QUALITY)


def _frames_of(job: tuple, schema: Schema) -> list[tuple[dict, dict]]:
    """(manifest row, render keywords) of each frame of one unit (a single scene or a clip): the
    frame table needs no rendering, so a dataset can be listed before its frames exist."""
    kind, _, name, split, seed, size, payload = job
    if kind == "scene":
        row = {"path": f"images/{name}.jpg", "clip_id": name, "frame_index": 0, "timestamp_s": 0.0, "split": split,
               **payload}
        return [(row, {"params": schema.render_params(payload)})]
    return [({"path": f"images/{name}_f{f['frame_index']:03d}.jpg", "clip_id": name, "frame_index": f["frame_index"],
              "timestamp_s": f["timestamp_s"], "split": split, **f["labels"]},
             {"params": f["params"], "travel": f["travel"], "place_z": f["place_z"]})
            for f in clip_frames(payload, seed, size, schema)]


def _run(job: tuple, missing_only: bool = False) -> list[dict]:
    """Render one unit (a single scene or a clip) and return its manifest rows. ``missing_only``:
    keep the frames already on disk (each was written whole: writes are atomic). With object
    annotations on, each row carries them under ``OBJECTS_KEY`` (a frame kept is rendered again
    for them, unsaved: the pixels do not depend on it)."""
    schema = _schema or default_schema()
    root, seed, size = Path(job[1]), job[4], job[5]
    rows = []
    for row, kw in _frames_of(job, schema):
        target = root / row["path"]
        keep = missing_only and target.is_file()
        if _objects:
            img, row[OBJECTS_KEY] = render_params(kw.pop("params"), seed, size, randomize=_randomize,
                                                  return_objects=True, **kw)
            if not keep:
                _save(img, target)
        elif not keep:
            _save(render_params(kw.pop("params"), seed, size, randomize=_randomize, **kw), target)
        rows.append(row)
    return rows


def _split_names(n: int, splits: tuple[float, ...], rng: random.Random) -> list[str]:
    """Exact-proportion split labels for n units, shuffled."""
    total = sum(splits)
    counts = [int(round(n * s / total)) for s in splits]
    counts[0] += n - sum(counts)
    names = [SPLITS[i] for i, c in enumerate(counts) for _ in range(max(0, c))]
    rng.shuffle(names)
    return names


def write_synth_dataset(
    out: str | Path,
    scenes: int,
    clips: int,
    seed: int = 0,
    size: Size = SIZE,
    fps: float = FPS,
    splits: tuple[float, float, float] = SPLITS_70_15_15,
    progress: bool = True,
    schema: Schema | None = None,
    clip_seconds: tuple[float, float] = (6.0, 10.0),
    qa: bool = False,
    randomize: bool = False,
    frames: bool = True,
    objects: bool = False,
) -> Path:
    """Render ``scenes`` single frames and ``clips`` clips into ``out``; returns the dataset root.

    ``out/images/*.jpg`` plus ``out/manifest.jsonl`` (written by ``write_manifest``, so it is
    validated against the schema and replaced atomically). ``qa``: also the question bank,
    ``out/qa.jsonl`` (core.vqa.questions, from the labels the frames were rendered with).
    ``randomize``: domain randomization (core.synth.randomize) on every frame; the labels and
    layouts are the same as without it. ``frames=False``: write the frame table (manifest, stamp)
    and a pending record now, no image; ``core.synth.pending.render_pending`` renders the frames.
    ``objects``: also ``out/objects.jsonl``, each frame's object annotations (core.synth.objects),
    from which the question bank asks DriveLM's important-objects question (needs ``frames``).
    """
    schema = schema or default_schema()
    root = Path(out)
    (root / "images").mkdir(parents=True, exist_ok=True)
    jobs = _plan(root, scenes, clips, seed, size, fps, splits, schema, clip_seconds)
    stamp = _stamp(scenes, clips, seed, size, fps, splits)
    stamp = {**stamp, "randomize": True} if randomize else stamp
    if objects and not frames:
        raise ValueError("object annotations are made while rendering: objects=True needs frames=True")
    if frames:
        rows = render_jobs(jobs, schema, randomize, progress, objects=objects)
        if objects:
            write_objects(root, [(r["path"], size, r.pop(OBJECTS_KEY)) for r in rows])
    else:  # the frame table now, the frames later (core.synth.pending)
        rows = [r for j in jobs for r, _ in _frames_of(j, schema)]
        args = {"scenes": scenes, "clips": clips, "seed": seed, "size": list(size), "fps": fps,
                "splits": list(splits), "clip_seconds": list(clip_seconds), "randomize": randomize}
        _defer_frames(root, args, [r["path"] for r in rows])
    rows.sort(key=lambda r: r["path"])
    write_manifest(root, rows, schema, check_files=frames)
    if qa:
        from core.vqa.questions import write_question_bank

        write_question_bank(root, schema, seed)
    atomic_write_text(root / STAMP, json.dumps(stamp))
    if frames:  # every frame is there: a pending record left by an older deferred write is void
        drop_pending(root)
    return root


def _defer_frames(root: Path, args: dict, paths: list[str]) -> None:
    """Record that ``root``'s frames (``paths``, planned from ``args``) are still to render, and
    clear any frames an older dataset left there (they may not match this one). The record is
    written first: from then on a crash leaves a dataset that says its frames are pending."""
    atomic_write_text(root / PENDING, json.dumps({"args": args, "paths": paths}))
    for f in os.scandir(root / "images"):
        if f.is_file():
            os.unlink(f.path)


def drop_pending(root: str | Path) -> None:
    """Forget the pending record (every frame is on disk)."""
    path = Path(root) / PENDING
    if path.exists():
        path.unlink()
        fsync_dir(path.parent)


def _plan(root: Path, scenes: int, clips: int, seed: int, size: Size, fps: float, splits: tuple,
          schema: Schema, clip_seconds: tuple[float, float]) -> list[tuple]:
    """Every unit to render, as (kind, root, name, split, seed, size, labels or clip plan): a pure
    function of the arguments."""
    rng = random.Random(seed)
    place_attr = attribute_with(schema, "feature")
    places = place_attr.value_names
    split_of = _split_names(scenes + clips, splits, random.Random(seed ^ 0x5EED))
    jobs = []
    for i in range(scenes):
        labels = schema.sample(rng, {place_attr.name: rng.choice(places)})
        jobs.append(("scene", str(root), f"s{i:06d}", split_of[i], rng.getrandbits(31), tuple(size), labels))
    for c in range(clips):
        plan = clip_plan(schema, rng, fps, rng.uniform(*clip_seconds))
        jobs.append(("clip", str(root), f"c{c:05d}", split_of[scenes + c], rng.getrandbits(31), tuple(size), plan))
    return jobs


def render_jobs(jobs: list[tuple], schema: Schema, randomize: bool = False, progress: bool = True,
                missing_only: bool = False, objects: bool = False) -> list[dict]:
    """Render the units ``jobs`` (in a pool of two when large) and return their manifest rows
    (``objects``: each with its object annotations under ``OBJECTS_KEY``)."""
    frames = sum(1 if j[0] == "scene" else len(j[6]) for j in jobs)
    bar = tqdm(total=frames, desc="synth", unit="frame", disable=not progress)
    rows: list[dict] = []
    run = partial(_run, missing_only=missing_only)
    if frames > PARALLEL_ABOVE and (mp.cpu_count() or 1) > 1:
        with mp.get_context("fork").Pool(min(2, mp.cpu_count()), initializer=_init,
                                         initargs=(schema, randomize, objects)) as pool:
            for r in pool.imap_unordered(run, jobs, chunksize=16):
                rows.extend(r)
                bar.update(len(r))
    else:
        _init(schema, randomize, objects)
        for job in jobs:
            r = run(job)
            rows.extend(r)
            bar.update(len(r))
    bar.close()
    return rows


def dataset_objects(root: str | Path, schema: Schema | None = None, progress: bool = False,
                    clip_seconds: tuple[float, float] = (6.0, 10.0)) -> dict[str, dict]:
    """Object annotations (``{size, objects}`` by frame path, as ``read_objects`` gives) of a synthetic
    dataset written without them: its frames are planned again from its stamp and rendered again for
    the annotations (the frames on disk are kept; a missing one is rendered and saved). ``clip_seconds``
    must be what the dataset was written with (the default of ``write_synth_dataset``)."""
    root, schema = Path(root), schema or default_schema()
    st = json.loads((root / STAMP).read_text())
    jobs = _plan(root, st["scenes"], st["clips"], st["seed"], tuple(st["size"]), st["fps"], tuple(st["splits"]),
                 schema, clip_seconds)
    rows = render_jobs(jobs, schema, bool(st.get("randomize")), progress, missing_only=True, objects=True)
    return {r["path"]: {"size": list(st["size"]), "objects": r[OBJECTS_KEY]} for r in rows}


def _stamp(scenes: int, clips: int, seed: int, size: Size, fps: float, splits: tuple) -> dict:
    return {"renderer": RENDERER_VERSION, "scenes": scenes, "clips": clips, "seed": seed,
            "size": list(size), "fps": fps, "splits": list(splits)}


def synth_dataset_is_current(root: str | Path, scenes: int, clips: int, seed: int = 0) -> bool:
    """Whether ``root`` holds this dataset (default size, rate, splits) from the current renderer."""
    root = Path(root)
    try:
        stamp = json.loads((root / STAMP).read_text())
    except (OSError, ValueError):
        return False
    return stamp == _stamp(scenes, clips, seed, SIZE, FPS, SPLITS_70_15_15) and (root / "manifest.jsonl").is_file()


def ensure_synth_dataset(out: str | Path, scenes: int, clips: int, seed: int = 0, progress: bool = True,
                         frames: bool = True) -> Path:
    """Reuse ``out`` if it holds this exact dataset from the current renderer; render it otherwise.
    ``frames=False``: write its frame table now and leave the frames to ``core.synth.pending``
    (which also finishes a deferred render that was killed)."""
    if not synth_dataset_is_current(out, scenes, clips, seed):
        write_synth_dataset(out, scenes=scenes, clips=clips, seed=seed, progress=progress, frames=frames)
    return Path(out)


__all__ = ["dataset_objects", "ensure_synth_dataset", "synth_dataset_is_current", "write_synth_dataset"]
