"""A clip retrieval dataset: rendered event clips, their clip-level captions, long drives, and the
frame vectors of each model cached beside them.

Layout of ``DIR``: ``images/*.jpg`` and ``manifest.jsonl`` (an ordinary SceneScope dataset, so it
can be indexed too), ``clips.json`` (per clip: split, event, window, frames, captions from the
train templates and from the held-out test templates; the long drives), and
``vectors/<model>.npy`` (frame vectors in manifest order, computed once per model identity).
No two clips share an event and context, so each test caption has exactly one right clip.
"""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.atomic import atomic_write_bytes, atomic_write_text
from core.data.manifest import read_manifest, write_manifest
from core.retrieval.captions import caption_forms, clip_captions
from core.schema import Schema, default_schema
from core.synth.clips import attribute_with, value_with
from core.synth.dataset import SIZE, _init, _run  # the synth writer's renderer of one clip
from core.synth.drives import clip_event, event_plan, join_drive

if TYPE_CHECKING:
    from core.types import SceneModel

CLIPS_FILE = "clips.json"
VERSION = 1
TRAIN_CAPTIONS = 4  # captions per clip from the train templates (each a fresh paraphrase)
PARALLEL_ABOVE = 300  # frames


def _signature(event: dict) -> str:
    return json.dumps([event["feature"], event["stages"], sorted(event["context"].items())])


def write_clip_dataset(out: str | Path, train: int, test: int, seed: int = 0, fps: float = 2.0,
                       frames: tuple[int, int] = (6, 8), drive_clips: int = 4, schema: Schema | None = None,
                       size: tuple[int, int] = SIZE, family: int = 1) -> Path:
    """Render ``train`` + ``test`` event clips (``frames`` per clip, a range) into ``out``.

    Every clip's event and context is unique in the dataset. ``family`` > 1 draws clips in runs of
    that many sharing one context (weather, road, ...), so that captions of a family differ only
    in place and stages: a harder gallery, where the frames that show the event must decide.
    Long drives join ``drive_clips`` clips of one split that show distinct places (clips of the
    plain road are left out of drives: they have no event to find).
    """
    schema = schema or default_schema()
    forms = caption_forms(schema)  # fail on a bad schema block before rendering anything
    root = Path(out)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    seen: set[str] = set()
    clips, jobs = [], []
    fam = max(1, int(family))
    units = [(split, min(fam, count - i)) for split, count in (("train", train), ("test", test))
             for i in range(0, count, fam)]  # a family stays in one split
    random.Random(seed ^ 0x5EED).shuffle(units)
    splits = [(split, j == 0) for split, k in units for j in range(k)]
    context: dict[str, str] = {}
    for c, (split, first_of_family) in enumerate(splits):
        if first_of_family:
            context = {}
        for _ in range(1000):
            plan = event_plan(schema, rng, fps, rng.randint(*frames), context=context)
            ev = clip_event(schema, [f["labels"] for f in plan], [f["timestamp_s"] for f in plan], fps)
            if _signature(ev) not in seen:
                break
        else:
            raise ValueError(f"cannot draw {len(splits)} clips with distinct events from this schema")
        seen.add(_signature(ev))
        context = dict(ev["context"]) if fam > 1 else {}
        name = f"e{c:05d}"
        cap_rng = random.Random(f"{seed}:{name}")
        clips.append({"clip_id": name, "split": split, "frames": len(plan), "event": ev,
                      "captions": {"train": clip_captions(schema, ev, "train", TRAIN_CAPTIONS, cap_rng, forms),
                                   "test": clip_captions(schema, ev, "test", 1, cap_rng, forms)}})
        jobs.append(("clip", str(root), name, split, rng.getrandbits(31), tuple(size), plan))
    rows: list[dict] = []
    if sum(len(j[6]) for j in jobs) > PARALLEL_ABOVE and (mp.cpu_count() or 1) > 1:
        with mp.get_context("fork").Pool(min(2, mp.cpu_count()), initializer=_init, initargs=(schema,)) as pool:
            for r in pool.imap_unordered(_run, jobs, chunksize=8):
                rows.extend(r)
    else:
        _init(schema)
        for job in jobs:
            rows.extend(_run(job))
    rows.sort(key=lambda r: r["path"])
    write_manifest(root, rows, schema)
    drives = make_drives(schema, clips, fps, drive_clips, random.Random(seed + 1))
    atomic_write_text(root / CLIPS_FILE, json.dumps({"version": VERSION, "seed": seed, "fps": fps,
                                                     "clips": clips, "drives": drives}))
    return root


def make_drives(schema: Schema, clips: list[dict], fps: float, per_drive: int, rng: random.Random) -> list[dict]:
    """Long drives of ``per_drive`` clips each (one split, distinct places, no plain-road clips)."""
    plain = value_with(attribute_with(schema, "feature"), "feature", "none")
    drives = []
    for split in ("train", "test"):
        pool = [c for c in clips if c["split"] == split and c["event"]["feature"] != plain]
        rng.shuffle(pool)
        while len(pool) >= per_drive:
            chosen, rest, places = [], [], set()
            for c in pool:
                if len(chosen) < per_drive and c["event"]["feature"] not in places:
                    chosen.append(c)
                    places.add(c["event"]["feature"])
                else:
                    rest.append(c)
            if len(chosen) < per_drive:
                break
            pool = rest
            d = join_drive([(c["clip_id"], c["frames"], [i / fps for i in range(c["frames"])],
                             tuple(c["event"]["window"])) for c in chosen], fps)
            drives.append({"drive_id": f"d{len(drives):04d}", "split": split, **d})
    return drives


def read_clip_dataset(root: str | Path) -> dict:
    """``clips.json`` of a clip dataset; one-line errors for a folder that is not one."""
    path = Path(root) / CLIPS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: not a clip retrieval dataset (no {CLIPS_FILE}; make one with "
                         "core.retrieval.data.write_clip_dataset or bench/clip_retrieval.py)") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("clips"), list):
        raise ValueError(f"{path}: not a version-{VERSION} clip dataset")
    return data


def _vector_file(root: Path, model: SceneModel) -> Path:
    return root / "vectors" / (re.sub(r"[^A-Za-z0-9._-]", "_", model.identity) + ".npy")


def frame_vectors(root: str | Path, model: SceneModel, progress: bool = False) -> tuple[np.ndarray, list[str], list[int]]:
    """(N, d) frame vectors in manifest order with each row's clip_id and frame_index.

    Embedded once per model identity and cached in ``vectors/``; a cache of another row count
    (a re-rendered dataset) is recomputed.
    """
    from core.index import embed_dataset

    root = Path(root)
    ds = read_manifest(root)
    clip_ids = ds.frames["clip_id"].astype(str).tolist()
    index = ds.frames["frame_index"].astype(int).tolist()
    path = _vector_file(root, model)
    if path.is_file():
        v = np.load(path, allow_pickle=False)
        if v.shape == (len(ds), model.embed_dim):
            return v, clip_ids, index
    v = embed_dataset(ds, model, progress=progress).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, v, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
    return v, clip_ids, index


__all__ = ["CLIPS_FILE", "frame_vectors", "make_drives", "read_clip_dataset", "write_clip_dataset"]
