"""From an uploaded image or clip to votes: the engine's front door for the CLI and the UI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from core.data import Dataset
from core.eval import report_markdown
from core.familiarity import UNFAMILIAR_REASON, median_familiarity
from core.images import ImageError, open_image, regular_file_problem
from core.index import IndexStore
from core.predict import Vote, vote_batch
from core.read_ahead import read_ahead
from core.schema import Schema
from core.timeline import Segment, timeline
from core.video import (
    VIDEO_SUFFIXES,
    ClipLimits,
    DecodeReport,
    Frames,
    name_problem,
    sample_frames,
)

if TYPE_CHECKING:  # core.models imports torch and open_clip (seconds): loaded when a model is
    from core.models import SceneModel  # opened, so the workbench draws its first page before that

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
# Images embedded together (SceneModel.embed_images's batch).
EMBED_BATCH = 64
# A clip's frames are decoded and preprocessed in a thread of their own while the caller's thread
# embeds them, this many at a time: small enough that embedding keeps pace with decoding and
# little is left to embed when decoding ends, large enough to cost about what a whole batch does
# per frame (bench/RESULTS.md 12d). At most READ_AHEAD preprocessed frames (3 x 224 x 224 floats
# each, whatever the clip's resolution) wait beside the batch, plus the frame being decoded.
CLIP_BATCH = 8
READ_AHEAD = 8
# Frames per torch thread when embedding one batch. A short clip is too little work to split: at
# 18 frames two threads took twice the CPU and twice the wall of one on the shared 2-core machine
# (OpenMP's workers spin at every op's barrier; bench/RESULTS.md 12c), so a batch gets one thread
# per this many frames, capped by the process's own setting.
FRAMES_PER_THREAD = 32


class InputError(ValueError):
    """An uploaded file that is not a usable image or clip; the message names it."""


def _vote_dict(vote: Vote) -> dict:
    return {
        "labels": vote.labels(),
        "familiarity": vote.familiarity,
        "attributes": {
            a: {"value": v.value, "share": v.share, "abstained": v.abstained, "reason": v.reason,
                "voters": [n.id for n in v.voters]}
            for a, v in vote.attributes.items()
        },
        "neighbors": [
            {"id": n.id, "similarity": n.similarity, "path": n.path, "labels": n.labels}
            for n in vote.neighbors
        ],
    }


def _vote_text(vote: Vote, schema: Schema) -> str:
    rows = []
    if vote.familiarity is not None:
        warn = f" - {UNFAMILIAR_REASON}: its votes abstain" if any(
            v.reason == UNFAMILIAR_REASON for v in vote.attributes.values()) else ""
        rows.append(f"  familiarity  {vote.familiarity:.2f}{warn}")
    for a in schema.attributes:
        v = vote.attributes[a.name]
        note = f" (abstained: {v.reason})" if v.reason else " (abstained)" if v.abstained else ""
        rows.append(f"  {a.display:<12} {a.display_of(v.value):<22} {v.share:>4.0%}{note}")
    return "\n".join(rows)


@dataclass
class ImageResult:
    vote: Vote

    def to_dict(self) -> dict:
        return {"kind": "image", **_vote_dict(self.vote)}

    def to_text(self, schema: Schema) -> str:
        return _vote_text(self.vote, schema)


@dataclass
class ClipResult:
    times: np.ndarray
    votes: list[Vote]
    segments: list[Segment] = field(default_factory=list)
    decode: DecodeReport | None = None  # what decoding found (frames declared, decoded, gaps)

    def to_dict(self) -> dict:
        out = {
            "kind": "clip",
            "frames": [{"t": float(t), **_vote_dict(v)} for t, v in zip(self.times, self.votes, strict=False)],
            "segments": [s.__dict__ for s in self.segments],
            **self.to_dict_familiarity(),
        }
        if self.decode is not None:
            out["decode"] = self.decode.to_dict()
        return out

    def to_dict_familiarity(self) -> dict:
        """The clip's familiarity (median over frames) and the frames unlike the index."""
        return {"familiarity": median_familiarity([v.familiarity for v in self.votes]),
                "unfamiliar_frames": [i for i, v in enumerate(self.votes)
                                      if any(a.reason == UNFAMILIAR_REASON for a in v.attributes.values())]}

    def to_text(self, schema: Schema) -> str:
        lines = [f"{len(self.votes)} frames sampled, {self.times[-1]:.1f} s" if len(self.times) else "no frames"]
        if self.decode is not None and not self.decode.complete:
            lines.append(f"warning: {self.decode.summary()}")
        fam = self.to_dict_familiarity()
        if fam["familiarity"] is not None:
            lines.append(f"  familiarity  {fam['familiarity']:.2f} (median over frames)" + (
                f"; {len(fam['unfamiliar_frames'])} of {len(self.votes)} frames {UNFAMILIAR_REASON}"
                if fam["unfamiliar_frames"] else ""))
        for a in schema.attributes:
            segs = [s for s in self.segments if s.attribute == a.name]
            lines.append(f"  {a.display}: " + "; ".join(
                f"{a.display_of(s.value)} {s.start_s:.1f}-{s.end_s:.1f} s" for s in segs))
        return "\n".join(lines)


def open_index(
    index_dir: str | Path, model_name: str | None = None, schema: Schema | None = None
) -> tuple[SceneModel, IndexStore]:
    """Load an index and the model it was built with (or ``model_name``, which must match).

    ``schema`` is the one the index was built with (default: the bundled one).
    """
    from core.index.folder import MANIFEST_FILE, recover
    from core.index.store import read_manifest

    path = Path(index_dir)
    recover(path)
    if not (path / MANIFEST_FILE).is_file():
        IndexStore.load(path, schema=schema)  # raises its clear "no index here" / "incomplete" error
    model = index_model(read_manifest(path), model_name)  # the manifest alone names the model
    return model, IndexStore.load(path, model=model, schema=schema)  # the index is read once, here


def index_model(manifest: dict, model_name: str | None = None) -> SceneModel:
    """The model an index's manifest names, or ``model_name`` (not checked against the index
    here: ``IndexStore.load(..., model=)`` or ``core.index.store.check_model`` does that)."""
    from core.models import load_model  # torch and open_clip: only when a model is needed

    return load_model(model_name or manifest.get("model_name") or manifest["model"].rsplit("@", 1)[0])


def load_image(path: str | Path) -> Image.Image:
    """An image file as RGB (core.images.open_image: size-checked before decoding)."""
    try:
        return open_image(path)
    except ImageError as e:
        raise InputError(str(e)) from None


def _preprocessor(model: SceneModel) -> Callable[[Image.Image | np.ndarray], object]:
    """PIL image or HxWx3 uint8 array -> model-ready pixels, bit-identical to model.preprocess
    (core.index.preprocess.fast_preprocess, which skips per-image torch ops)."""
    from core.index.preprocess import fast_preprocess

    preprocess = fast_preprocess(model)
    return lambda im: preprocess(im if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im, np.uint8)))


def _encode(model: SceneModel, pixels: list) -> np.ndarray:
    import torch

    from core.index.preprocess import stack

    # torch keeps the count per thread once a thread has run an op, so setting and restoring it
    # here leaves other threads (other sessions of the workbench) as they were.
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(before, len(pixels) // FRAMES_PER_THREAD)))
    try:
        return np.asarray(model.embed_batch(stack(pixels)), dtype=np.float32)
    finally:
        torch.set_num_threads(before)


def classify_images(images: list, model: SceneModel, store: IndexStore, k: int = 5, **vote_kw: object) -> list[Vote]:
    if not images:
        return []
    prep = _preprocessor(model)
    emb = np.concatenate([_encode(model, [prep(im) for im in images[i : i + EMBED_BATCH]])
                          for i in range(0, len(images), EMBED_BATCH)])
    return _vote(store, emb, k, **vote_kw)


def _vote(store: IndexStore, emb: np.ndarray, k: int, **vote_kw: object) -> list[Vote]:
    """Outside queries' votes, each judged for familiarity (unfamiliar ones abstain)."""
    from core.familiarity import judge

    return list(judge(store, emb, vote_batch(store, emb, k=k, **vote_kw)))


def _input_problem(path: Path) -> str | None:
    """Why ``path`` cannot be classified before reading it (missing, a device, a bad name), or None."""
    try:
        is_dir = path.is_dir()
    except (OSError, ValueError):
        is_dir = False
    if is_dir:
        return None
    problem = regular_file_problem(path)
    if problem:
        return f"{path.name or path}: {problem}"
    return name_problem(path, (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES))


def _embed_clip(frames: Frames, model: SceneModel, threaded: bool) -> tuple[list[float], np.ndarray]:
    """The samples' times and embeddings, ``CLIP_BATCH`` frames at a time; decoded and
    preprocessed in a thread of their own while this one embeds, unless not ``threaded`` (the
    same batches, so the same vectors, one after the other)."""
    prep = _preprocessor(model)

    def prepared() -> Iterator[tuple[float, object]]:  # the decoded frame is dropped at the next turn
        try:
            for t, frame in frames:
                yield t, prep(frame)
        finally:
            frames.close()

    items = read_ahead(prepared(), READ_AHEAD, "scenescope-decode") if threaded else prepared()
    times: list[float] = []
    embedded: list[np.ndarray] = []
    batch: list = []
    with closing(items):
        for t, pixels in items:
            times.append(t)
            batch.append(pixels)
            if len(batch) == CLIP_BATCH:
                embedded.append(_encode(model, batch))
                batch = []
    if batch:
        embedded.append(_encode(model, batch))
    return times, np.concatenate(embedded) if embedded else np.zeros((0, 0), np.float32)


def classify_path(path: Path, model: SceneModel, store: IndexStore, k: int = 5, fps: float = 2.0,
                  smoothing: int = 1, limits: ClipLimits | None = None, threaded: bool = True,
                  **vote_kw: object) -> ImageResult | ClipResult:
    """Classify an image, a clip or a folder of frames.

    A clip is decoded and preprocessed in a thread while this one embeds it ``CLIP_BATCH`` frames
    at a time (``threaded=False``: one after the other, the same vectors), each frame's pixels
    dropped once embedded, so memory does not grow with its length; ``limits`` caps its duration
    and frame count (default: core.video.ClipLimits.from_env()). The result's ``decode`` reports
    frames the clip declares but that did not decode.
    """
    path = Path(path)
    problem = _input_problem(path)
    if problem:
        raise InputError(problem)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageResult(classify_images([load_image(path)], model, store, k, **vote_kw)[0])
    frames = sample_frames(path, fps=fps, limits=limits)
    times, emb = _embed_clip(frames, model, threaded)
    if not times:
        raise InputError(f"{path.name}: no frames could be read")
    votes = _vote(store, emb, k, **vote_kw)
    segments = timeline(np.asarray(times), [v.labels() for v in votes], store.schema, smoothing=smoothing)
    return ClipResult(np.asarray(times), votes, segments, decode=frames.report)


def evaluate_split(dataset: Dataset, split: str, model: SceneModel, store: IndexStore, k: int = 5,
                   progress: bool = True, **vote_kw: object) -> tuple[dict, str]:
    """k-NN vote every frame of ``split`` against ``store`` and score it (``core.scoring``)."""
    from core.scoring import score_dataset

    report = score_dataset(dataset.split(split), model, store, k=k, progress=progress, **vote_kw)
    return report, report_markdown(report)
