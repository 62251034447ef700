"""DriveLM-nuScenes question answering data: import into a SceneScope dataset.

The file format (reading, checking, ids, options) is ``core.vqa.drivelm_format``; the challenge's
answer and predictions files are ``core.vqa.drivelm_answers``. Their public names are re-exported
here, where callers import them.

The import writes a dataset folder (see :func:`import_drivelm`):
- ``manifest.jsonl``: one row per camera image (``samples/<CAM>/<file>``), clip = scene (so a
  scene's frames and cameras stay in one split), attributes unknown (DriveLM has no HSD labels);
- ``scenes.jsonl``: scene, description, frames;
- ``key_frames.jsonl``: scene, frame, frame_index, images (camera -> path in the dataset), key_objects;
- ``qa.jsonl``: the QA table, one row per question (:data:`QA_COLUMNS`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from core.atomic import atomic_path, atomic_write_text
from core.data.manifest import validate_rows, write_manifest
from core.data.splits import assign_splits
from core.schema import UNKNOWN, Schema, default_schema
from core.vqa.drivelm_answers import (
    PREDICTION_KEYS,
    export_answers,
    read_predictions,
    to_predictions,
    write_answers,
)
from core.vqa.drivelm_format import (
    CAMERAS,
    GROUPS,
    QA_COLUMNS,
    QUESTION_TYPES,
    TAG_ACCURACY,
    TAG_GPT,
    TAG_LANGUAGE,
    TAG_MATCH,
    TAGS,
    DriveLM,
    DriveLMError,
    KeyFrame,
    find_nuscenes,
    option_letter,
    qa_id,
    question_type,
    read_drivelm,
    read_qa_table,
    resolve_image,
    split_options,
)

DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


def _timestamps_us(frames: Sequence[KeyFrame]) -> dict[tuple[str, str], int] | None:
    """(frame, camera) -> the microsecond timestamp in its file name; None if any name lacks one."""
    out: dict[tuple[str, str], int] = {}
    for f in frames:
        for cam in CAMERAS:
            t = f.timestamp_us(cam)
            if t is None:
                return None
            out[(f.frame, cam)] = t
    return out


def _place(src: Path, dst: Path) -> str:
    """Put ``src`` at ``dst``: a hard link when the filesystem allows (no copy of a large nuScenes
    tree), else a copy; written atomically. Returns "kept", "linked" or "copied"."""
    if dst.exists() and os.path.samefile(src, dst):
        return "kept"
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
            how = "linked"
        except OSError:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o644)
            how = "copied"
    return how


def _jsonl(rows: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(dict(r), ensure_ascii=False) + "\n" for r in rows)


def import_drivelm(
    root: str | Path,
    qa_path: str | Path,
    out: str | Path,
    schema: Schema | None = None,
    split: str | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> Path:
    """Import a DriveLM-nuScenes QA file and its camera images into the dataset folder ``out``.

    The whole file is read and checked (every image must exist inside ``root``) before anything is
    written. Images go to ``out/samples/<CAM>/<file>`` (hard-linked when possible, else copied),
    then the tables, then the manifest (atomically, last). Splits are assigned by scene unless
    ``split`` labels every row. Returns the manifest path.
    """
    schema = schema or default_schema()
    root, out = Path(root), Path(out)
    data = read_drivelm(qa_path, root, check_images=True)
    assert data.nuscenes_dir is not None
    origin = str(qa_path)
    stamps = _timestamps_us(data.frames)
    first: dict[str, int] = {}
    if stamps is not None:
        for f in data.frames:
            t = min(stamps[(f.frame, c)] for c in CAMERAS)
            first[f.scene] = min(first.get(f.scene, t), t)
    nus_r = data.nuscenes_dir.resolve()
    rows: list[dict[str, Any]] = []
    rel_images: dict[str, dict[str, str]] = {}
    for f in data.frames:
        rel_images[f.frame] = {}
        for cam in CAMERAS:
            rel = f.images[cam].relative_to(nus_r).as_posix()
            rel_images[f.frame][cam] = rel
            # nuScenes cameras fire a few ms apart; each row keeps its own camera's time.
            t = (stamps[(f.frame, cam)] - first[f.scene]) / 1e6 if stamps is not None else 0.0
            row = {"path": rel, "clip_id": f.scene, "frame_index": f.index, "timestamp_s": t,
                   **{a: UNKNOWN for a in schema.names}}
            if split is not None:
                row["split"] = split
            rows.append(row)
    # Validate before writing anything (a bad split name, a schema that refuses unknown values).
    table = validate_rows(rows, data.nuscenes_dir, schema, origin, check_files=True)
    if split is None:
        table = assign_splits(table, fractions=fractions, seed=seed)
    for f in data.frames:
        for cam in CAMERAS:
            _place(f.images[cam], out / rel_images[f.frame][cam])
    n_frames = {s: sum(f.scene == s for f in data.frames) for s in data.scenes}
    atomic_write_text(out / "scenes.jsonl", _jsonl(
        {"scene": s, "description": d, "frames": n_frames[s]} for s, d in data.scenes.items()))
    atomic_write_text(out / "key_frames.jsonl", _jsonl(
        {"scene": f.scene, "frame": f.frame, "frame_index": f.index, "images": rel_images[f.frame],
         "key_objects": f.key_objects} for f in data.frames))
    atomic_write_text(out / "qa.jsonl", _jsonl(data.qa.to_dict("records")))
    return write_manifest(out, table.to_dict("records"), schema, origin=origin)


__all__ = [
    "CAMERAS", "DEFAULT_FRACTIONS", "GROUPS", "PREDICTION_KEYS", "QA_COLUMNS", "QUESTION_TYPES", "TAGS",
    "TAG_ACCURACY", "TAG_GPT", "TAG_LANGUAGE", "TAG_MATCH", "DriveLM", "DriveLMError", "KeyFrame", "export_answers",
    "find_nuscenes", "import_drivelm", "option_letter", "qa_id", "question_type", "read_drivelm",
    "read_predictions", "read_qa_table", "resolve_image", "split_options", "to_predictions", "write_answers",
]
