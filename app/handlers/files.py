"""Where indexes, models and frames live, and what an upload may be (size, type)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from core import pipeline
from core.images import open_image
from core.pipeline import IMAGE_SUFFIXES
from core.video import VIDEO_SUFFIXES, name_problem
from core.workspace import (
    demo_missing,
    is_demo,
)

if TYPE_CHECKING:
    from core.types import IndexStore, SceneModel


MAX_UPLOAD_MB = 200  # keep equal to server.maxUploadSize in .streamlit/config.toml
DISPLAY_WIDTH = 640  # frames kept for display are shrunk to this width (memory, not accuracy)
ACCEPTED_SUFFIXES: tuple[str, ...] = tuple(sorted(IMAGE_SUFFIXES)) + tuple(VIDEO_SUFFIXES)
ACCEPTED_TYPES: list[str] = [s.lstrip(".") for s in ACCEPTED_SUFFIXES]
CLIP_FPS = 2.0


def shrink(frame: np.ndarray | Image.Image, width: int = DISPLAY_WIDTH) -> np.ndarray:
    im = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, dtype=np.uint8))
    im = im.convert("RGB")
    if im.width > width:
        im = im.resize((width, max(1, round(im.height * width / im.width))), Image.Resampling.BILINEAR)
    return np.asarray(im)


# ---- indexes, models and frames on disk (where they live: core.workspace) -------------------------
def prepare_demo(progress: bool = False) -> Path:
    """Build the embedded demo dataset and index if missing (the only index made implicitly); its
    frames render in the background, as with `make run`."""
    from core.demo import ensure_demo

    _, index_dir = ensure_demo(progress=progress, frames_later=True)
    return Path(index_dir)


def open_engine(index_dir: str | Path, model_name: str | None = None,
                progress: bool = False) -> tuple[SceneModel, IndexStore]:
    """(model, store) of an index (with the model that built it, or ``model_name``), building the
    embedded demo first when it is the one asked for and missing."""
    if demo_missing(index_dir):
        prepare_demo(progress=progress)
    return pipeline.open_index(index_dir, model_name)


def open_store(index_dir: str | Path) -> IndexStore:
    """An index without its model (no torch: a page draws in a second, its model loads apart;
    ``open_model`` checks it), building the embedded demo first when it is asked for and missing."""
    from core.index import IndexStore

    if demo_missing(index_dir):
        prepare_demo()
    return IndexStore.load(index_dir)


def open_model(store: IndexStore, model_name: str | None = None) -> SceneModel:
    """The model that reads ``store``: the one that built it, or ``model_name``, which must match
    (IndexMismatchError otherwise). Imports torch and open_clip: seconds."""
    from core.index.store import check_model

    model = pipeline.index_model(store.manifest, model_name)
    check_model(store.path, store.manifest, model)
    return model


def example_files(store: IndexStore, index_dir: str | Path) -> list[Path]:
    """Files to try the app on: the demo's clip (when serving the demo index), a frame of a clip
    and a still from the index, those that exist."""
    out: list[Path] = []
    if is_demo(index_dir):
        from core.demo import demo_clip

        out.append(demo_clip(store.data_root))
    meta = store.meta
    in_clip = meta["clip_id"].duplicated(keep=False)
    for rows in (meta.index[in_clip], meta.index[~in_clip]):
        if len(rows):
            out.append(store.abspath(int(rows[0])))
    return [p for p in out if p.is_file()]


def bundled_models() -> list[str]:
    """Registry names of the models shipped with SceneScope."""
    from core.model_names import BUNDLED

    return list(BUNDLED)


def frame_file(store: IndexStore, row: int | None = None, rel: str | None = None) -> Path | None:
    """The image file of index ``row`` (or of the dataset-relative path ``rel``), or None when it
    cannot be named (no path, or a path escaping the dataset folder, which the engine refuses)."""
    from core.data import resolve_inside

    try:
        if row is not None:
            return store.abspath(int(row))
        return resolve_inside(store.data_root, rel) if rel else None
    except ValueError:
        return None


def thumbnail(path: str | Path | None, width: int = 320) -> np.ndarray | None:
    """A small RGB copy (``width`` wide at most) of an image file, or None when it is gone."""
    if path is None:
        return None
    try:
        im = open_image(path, draft=(width, width))  # JPEG: decode at reduced scale, much faster
        im.thumbnail((width, width * 2))
        return np.asarray(im)
    except (OSError, ValueError):
        return None


_RENDERING: dict[str, tuple[float, tuple[int, int] | None]] = {}  # data folder -> (when asked, answer)


def frames_rendering(index_dir: str | Path | None = None) -> tuple[int, int] | None:
    """(rendered, in all) while the demo's frames are still being rendered in the background
    (`make run` starts the workbench before them: core.synth.pending), else None. Other indexes:
    None. Asked at most once a second (every missing thumbnail of a page asks)."""
    import time

    from core.synth.pending import pending_frames
    from core.workspace import DEMO_DATA, default_index

    if not is_demo(index_dir or default_index()):
        return None
    when, answer = _RENDERING.get(str(DEMO_DATA), (0.0, None))
    if time.monotonic() - when > 1.0:
        answer = pending_frames(DEMO_DATA)
        _RENDERING[str(DEMO_DATA)] = (time.monotonic(), answer)
    return answer


def missing_image_note(index_dir: str | Path | None = None) -> str:
    """What stands in for a frame whose file is not there: how far the demo's frames are while
    they render, else that the file is missing."""
    rendering = frames_rendering(index_dir)
    if rendering:
        return f"(rendering frames: {rendering[0]:,} of {rendering[1]:,})"
    return "(image missing)"


VOTE_SPACE_LABELS = {"embedding": "Whole embedding", "prompts": "Each attribute's prompts"}  # core.predict.VOTE_SPACES


def check_upload(name: str, size: int, max_mb: int = MAX_UPLOAD_MB) -> str | None:
    """Why an upload cannot be used before reading it (type, emptiness, size), or None."""
    problem = name_problem(Path(name), ACCEPTED_SUFFIXES)  # ".jpg", "clip.mp4 ", no extension
    if problem:
        return problem
    suffix = Path(name).suffix.lower()
    if suffix not in ACCEPTED_SUFFIXES:
        return (f"{Path(name).name}: unsupported file type {suffix or '(none)'}; upload an image "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}) or a clip ({', '.join(VIDEO_SUFFIXES)})")
    if size == 0:
        return f"{Path(name).name}: the file is empty"
    if size > max_mb * 1024 * 1024:
        return f"{Path(name).name}: {size / 1024**2:.0f} MB is over the {max_mb} MB upload limit"
    return None
