"""DriveLM-nuScenes QA files: the format, read and checked (ids, options, question types, images).

DriveLM's QA JSON (``train_sample.json``, ``test_eval.json``, ``test.json``) is
``{scene_token: {scene_description?, key_frames: {frame_token: {QA: {perception, prediction,
planning, behavior: [{Q, A, tag?, ...}]}, image_paths: {CAM_FRONT: ..., ...}, key_object_infos?}}}}``.

Ids: the challenge numbers a key frame's questions in the order perception, prediction, planning,
behavior, and names each ``<scene>_<frame>_<i>`` (as the fixture's ``output.json`` and the official
``challenge/evaluation.py`` of OpenDriveLab/DriveLM do). :func:`qa_id` is that rule.

Image paths read ``../nuscenes/samples/<CAM>/<file>.jpg``: relative to a folder beside the
nuScenes folder. They are resolved inside the nuScenes folder found under the given root (the
folder holding ``samples/``), and never outside the root.

The import into a dataset is ``core.vqa.drivelm``; the challenge's answer files are
``core.vqa.drivelm_answers``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from core.data.manifest import ManifestError, resolve_inside
from core.jsonl import read_json, read_jsonl

GROUPS = ("perception", "prediction", "planning", "behavior")
CAMERAS = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
# The challenge's tags (DriveLM challenge README / evaluation.py): which metric scores a question.
TAG_ACCURACY, TAG_GPT, TAG_LANGUAGE, TAG_MATCH = 0, 1, 2, 3
TAGS = (TAG_ACCURACY, TAG_GPT, TAG_LANGUAGE, TAG_MATCH)
QUESTION_TYPES = ("multiple_choice", "yes_no", "free_form")
QA_COLUMNS = ("id", "scene", "frame", "group", "index", "type", "question", "options", "answer", "tag")
# Folder levels searched below the root for the nuScenes folder (the fixture keeps it 3 deep).
_SEARCH_DEPTH = 4
_TIMESTAMP = re.compile(r"__(\d{10,})\.\w+$")  # nuScenes file names end in a microsecond timestamp
_YES_NO = ("yes", "no")


class DriveLMError(ManifestError):
    """A DriveLM file or entry is wrong; the message names the file and the entry."""


@dataclass(frozen=True)
class KeyFrame:
    """One key frame: its six camera images (absolute, inside the root; empty without a root)."""

    scene: str
    frame: str
    index: int  # order within the scene: by time when every file name has its timestamp, else as listed
    image_paths: dict[str, str]  # camera -> the path as written in the file
    images: dict[str, Path] = field(default_factory=dict)
    key_objects: dict[str, Any] = field(default_factory=dict)

    def timestamp_us(self, camera: str = "CAM_FRONT") -> int | None:
        """The microsecond timestamp nuScenes writes at the end of each image's file name."""
        m = _TIMESTAMP.search(self.image_paths[camera])
        return int(m.group(1)) if m else None


@dataclass
class DriveLM:
    """A DriveLM QA file read and checked: scenes, key frames, and the QA table."""

    source: Path
    scenes: dict[str, str]  # scene token -> description ("" when the file has none)
    frames: list[KeyFrame]
    qa: pd.DataFrame  # QA_COLUMNS, in the challenge's id order
    nuscenes_dir: Path | None = None  # the folder holding samples/, when a root was given

    def frame(self, token: str) -> KeyFrame:
        for f in self.frames:
            if f.frame == token:
                return f
        raise KeyError(token)


# ---- ids, options, types ---------------------------------------------------------------------
def qa_id(scene: str, frame: str, index: int) -> str:
    """The challenge's question id: ``<scene>_<frame>_<i>``, i counted over the four groups in order."""
    return f"{scene}_{frame}_{index}"


def split_options(question: str) -> tuple[str, list[str]]:
    """A multiple-choice question's stem and its lettered options (``A. ... B. ...``), in order.

    DriveLM writes them inline: "... Please select the correct answer from the following options:
    A. Going ahead. B. Stopped. C. Back up. D. Turn left." Fewer than two options: not multiple choice.
    """
    starts: list[tuple[int, int]] = []  # (start of "X.", start of its text)
    pos = 0
    for k in range(26):
        m = re.compile(rf"(?:^|\s){chr(ord('A') + k)}\.\s").search(question, pos)
        if m is None:
            break
        starts.append((m.start(), m.end()))
        pos = m.end()
    if len(starts) < 2:
        return question, []
    ends = [s for s, _ in starts[1:]] + [len(question)]
    options = [question[b:e].strip() for (_, b), e in zip(starts, ends, strict=True)]
    return question[: starts[0][0]].strip(), options


def option_letter(i: int) -> str:
    return chr(ord("A") + i)


def question_type(question: str, answer: str) -> str:
    """multiple_choice (lettered options, answered by a letter), yes_no, or free_form."""
    _, options = split_options(question)
    a = answer.strip().rstrip(".").strip()
    if options and a in {option_letter(i) for i in range(len(options))}:
        return "multiple_choice"
    if a.lower() in _YES_NO:
        return "yes_no"
    return "free_form"


def parse_tags(raw: object, where: str) -> list[int] | None:
    if raw is None:
        return None
    items = [raw] if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if not isinstance(items, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in items):
        raise DriveLMError(f"{where}: 'tag' must be a list of whole numbers {list(TAGS)}")
    bad = [t for t in items if t not in TAGS]
    if bad:
        raise DriveLMError(f"{where}: unknown tag {bad[0]} (DriveLM tags are {list(TAGS)})")
    return sorted(set(items))


# ---- images ----------------------------------------------------------------------------------
def find_nuscenes(root: str | Path) -> Path:
    """The folder under ``root`` that holds nuScenes' ``samples/``: root itself, root/nuscenes, or
    the one folder named ``nuscenes`` found a few levels down (DriveLM's challenge kit keeps it at
    ``llama_adapter_v2_multimodal7b/data/nuscenes``)."""
    root = Path(root)
    if not root.is_dir():
        raise DriveLMError(f"{root}: DriveLM root folder not found")
    if (root / "samples").is_dir():
        return root
    if (root / "nuscenes" / "samples").is_dir():
        return root / "nuscenes"
    found: list[Path] = []
    base_depth = len(root.parts)
    for dirpath, dirs, _files in os.walk(root):
        here = Path(dirpath)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if len(here.parts) - base_depth >= _SEARCH_DEPTH:
            dirs[:] = []
        if here.name == "nuscenes" and (here / "samples").is_dir():
            found.append(here)
            dirs[:] = []
    if not found:
        raise DriveLMError(f"{root}: no nuScenes folder (one holding samples/) within {_SEARCH_DEPTH} levels")
    if len(found) > 1:
        raise DriveLMError(f"{root}: several nuScenes folders ({found[0]}, {found[1]}); pass the one to use as root")
    return found[0]


def resolve_image(nuscenes_dir: Path, root: Path, raw: str, where: str) -> Path:
    """``../nuscenes/samples/CAM/x.jpg`` -> ``<nuscenes_dir>/samples/CAM/x.jpg``, refused outside root."""
    p = PurePosixPath(raw.replace("\\", "/"))
    if p.is_absolute() or Path(raw).is_absolute():
        raise DriveLMError(f"{where}: image path {raw!r} must be relative (../nuscenes/samples/...)")
    parts = list(p.parts)
    while parts and parts[0] == "..":
        parts.pop(0)
    if parts and parts[0] == "nuscenes":
        parts.pop(0)
    if not parts:
        raise DriveLMError(f"{where}: image path {raw!r} names no file")
    try:
        path = resolve_inside(nuscenes_dir, "/".join(parts))
    except ManifestError:
        raise DriveLMError(f"{where}: image path {raw!r} escapes the nuScenes folder {nuscenes_dir}") from None
    root_r = root.resolve()
    if root_r not in path.parents:
        raise DriveLMError(f"{where}: image path {raw!r} leads outside the root {root}")
    return path


# ---- reading ---------------------------------------------------------------------------------
def load_json(path: Path) -> object:
    if not path.is_file():
        raise DriveLMError(f"{path}: file not found")
    return read_json(path, DriveLMError)


def as_mapping(value: object, where: str, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DriveLMError(f"{where}: {what} must be an object, got {type(value).__name__}")
    return value


def read_drivelm(qa_path: str | Path, root: str | Path | None = None, *, check_images: bool = True) -> DriveLM:
    """Read and check a DriveLM QA file; with ``root``, resolve (and check) every camera image.

    Every question gets its challenge id (:func:`qa_id`), its group, its tags when the file has
    them (``test_eval.json``; else ``None``), a type (:func:`question_type`) and its options.
    """
    qa_path = Path(qa_path)
    doc = load_json(qa_path)
    origin = str(qa_path)
    scenes_raw = as_mapping(doc, origin, "the top level (scene token -> scene)")
    root_p = Path(root) if root is not None else None
    nus = find_nuscenes(root_p) if root_p is not None else None
    scenes: dict[str, str] = {}
    frames: list[KeyFrame] = []
    rows: list[dict[str, Any]] = []
    seen_frames: dict[str, str] = {}
    for scene, scene_raw in scenes_raw.items():
        where_s = f"{origin} scene {scene}"
        s = as_mapping(scene_raw, where_s, "a scene")
        desc = s.get("scene_description", "")
        if desc is None:
            desc = ""
        if not isinstance(desc, str):
            raise DriveLMError(f"{where_s}: 'scene_description' must be text")
        kfs = as_mapping(s.get("key_frames"), where_s, "'key_frames'")
        scenes[scene] = desc
        scene_frames: list[KeyFrame] = []
        for fi, (frame, kf_raw) in enumerate(kfs.items()):  # fi: file order, until sorted by time
            where_f = f"{where_s} frame {frame}"
            if frame in seen_frames:
                raise DriveLMError(f"{where_f}: frame token also in scene {seen_frames[frame]}")
            seen_frames[frame] = scene
            kf = as_mapping(kf_raw, where_f, "a key frame")
            paths = as_mapping(kf.get("image_paths"), where_f, "'image_paths'")
            unknown = sorted(set(paths) - set(CAMERAS))
            missing = [c for c in CAMERAS if c not in paths]
            if unknown or missing:
                raise DriveLMError(
                    f"{where_f}: image_paths must name the six cameras {list(CAMERAS)}"
                    + (f"; missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else ""))
            raw_paths: dict[str, str] = {}
            images: dict[str, Path] = {}
            for cam in CAMERAS:
                raw = paths[cam]
                if not isinstance(raw, str) or not raw.strip():
                    raise DriveLMError(f"{where_f} {cam}: image path must be text")
                raw_paths[cam] = raw
                if nus is not None and root_p is not None:
                    img = resolve_image(nus, root_p, raw, f"{where_f} {cam}")
                    if check_images and not img.is_file():
                        raise DriveLMError(f"{where_f} {cam}: image not found: {raw}")
                    images[cam] = img
            objects = kf.get("key_object_infos") or {}
            objects = dict(as_mapping(objects, where_f, "'key_object_infos'"))
            scene_frames.append(KeyFrame(scene, frame, fi, raw_paths, images, objects))
            qa_groups = as_mapping(kf.get("QA"), where_f, "'QA'")
            extra = sorted(set(qa_groups) - set(GROUPS))
            if extra:
                raise DriveLMError(f"{where_f}: unknown QA group {extra[0]!r} (DriveLM's are {list(GROUPS)})")
            i = 0
            for group in GROUPS:
                items = qa_groups.get(group) or []
                if not isinstance(items, list):
                    raise DriveLMError(f"{where_f}: QA {group!r} must be a list")
                for j, item in enumerate(items):
                    where_q = f"{where_f} {group}[{j}]"
                    q = as_mapping(item, where_q, "a question")
                    question, answer = q.get("Q"), q.get("A")
                    if not isinstance(question, str) or not question.strip():
                        raise DriveLMError(f"{where_q}: 'Q' must be non-empty text")
                    if not isinstance(answer, str):
                        raise DriveLMError(f"{where_q}: 'A' must be text")
                    _, options = split_options(question)
                    rows.append({
                        "id": qa_id(scene, frame, i), "scene": scene, "frame": frame, "group": group,
                        "index": i, "type": question_type(question, answer), "question": question,
                        "options": options, "answer": answer, "tag": parse_tags(q.get("tag"), where_q),
                    })
                    i += 1
        frames.extend(_in_time_order(scene_frames))
    if not frames:
        raise DriveLMError(f"{origin}: no key frames")
    qa = pd.DataFrame(rows, columns=list(QA_COLUMNS))
    return DriveLM(qa_path, scenes, frames, qa, nus)


def _in_time_order(frames: list[KeyFrame]) -> list[KeyFrame]:
    """A scene's key frames sorted and numbered by time (DriveLM's files do not list them in
    order); left as listed when a file name carries no timestamp."""
    times = [f.timestamp_us() for f in frames]
    if any(t is None for t in times):
        return frames
    order = sorted(range(len(frames)), key=lambda k: times[k])
    return [replace(frames[k], index=rank) for rank, k in enumerate(order)]


def read_qa_table(path: str | Path) -> pd.DataFrame:
    """The ``qa.jsonl`` an import wrote, as a table with :data:`QA_COLUMNS`."""
    path = Path(path)
    if path.is_dir():
        path = path / "qa.jsonl"
    if not path.is_file():
        raise DriveLMError(f"{path}: QA table not found")
    rows, numbers = read_jsonl(path, DriveLMError)
    for n, row in zip(numbers, rows, strict=True):
        missing = [c for c in QA_COLUMNS if c not in row]
        if missing:
            raise DriveLMError(f"{path} row {n}: missing {missing}")
    return pd.DataFrame(rows, columns=list(QA_COLUMNS))


__all__ = [
    "CAMERAS", "GROUPS", "QA_COLUMNS", "QUESTION_TYPES", "TAGS", "TAG_ACCURACY", "TAG_GPT", "TAG_LANGUAGE",
    "TAG_MATCH", "DriveLM", "DriveLMError", "KeyFrame", "as_mapping", "find_nuscenes", "load_json", "option_letter",
    "parse_tags", "qa_id", "question_type", "read_drivelm", "read_qa_table", "resolve_image", "split_options",
]
