"""From an uploaded image or clip to votes: the engine's front door for the CLI and the UI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.data import Dataset
from core.eval import evaluate, report_markdown
from core.index import IndexStore
from core.models import SceneModel, load_model
from core.predict import Vote, vote_batch
from core.schema import Schema
from core.video import Segment, sample_frames, timeline

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class InputError(ValueError):
    """An uploaded file that is not a usable image or clip; the message names it."""


def _vote_dict(vote: Vote) -> dict:
    return {
        "labels": vote.labels(),
        "attributes": {
            a: {"value": v.value, "share": v.share, "abstained": v.abstained,
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
    for a in schema.attributes:
        v = vote.attributes[a.name]
        note = " (abstained)" if v.abstained else ""
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

    def to_dict(self) -> dict:
        return {
            "kind": "clip",
            "frames": [{"t": float(t), **_vote_dict(v)} for t, v in zip(self.times, self.votes, strict=False)],
            "segments": [s.__dict__ for s in self.segments],
        }

    def to_text(self, schema: Schema) -> str:
        lines = [f"{len(self.votes)} frames sampled, {self.times[-1]:.1f} s" if len(self.times) else "no frames"]
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
    path = Path(index_dir)
    probe = IndexStore.load(path, schema=schema)
    name = model_name or probe.manifest.get("model_name") or probe.manifest["model"].rsplit("@", 1)[0]
    model = load_model(name)
    return model, IndexStore.load(path, model=model, schema=schema)


def load_image(path: str | Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"{Path(path).name}: not a readable image ({e.__class__.__name__})") from None


def classify_images(images: list, model: SceneModel, store: IndexStore, k: int = 5, **vote_kw: object) -> list[Vote]:
    if not images:
        return []
    return vote_batch(store, model.embed_images(images), k=k, **vote_kw)


def classify_path(path: Path, model: SceneModel, store: IndexStore, k: int = 5, fps: float = 2.0,
                  smoothing: int = 1, **vote_kw: object) -> ImageResult | ClipResult:
    """Classify an image, a clip or a folder of frames."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageResult(classify_images([load_image(path)], model, store, k, **vote_kw)[0])
    times, frames = [], []
    for t, frame in sample_frames(path, fps=fps):
        times.append(t)
        frames.append(frame)
    if not frames:
        raise InputError(f"{path.name}: no frames could be read")
    votes = classify_images(frames, model, store, k, **vote_kw)
    segments = timeline(np.asarray(times), [v.labels() for v in votes], store.schema, smoothing=smoothing)
    return ClipResult(np.asarray(times), votes, segments)


def evaluate_split(dataset: Dataset, split: str, model: SceneModel, store: IndexStore, k: int = 5,
                   progress: bool = True, **vote_kw: object) -> tuple[dict, str]:
    """k-NN vote every frame of ``split`` against ``store`` and score it against the truth."""
    from core.index import embed_dataset

    part = dataset.split(split)
    emb = embed_dataset(part, model, progress=progress)
    votes = vote_batch(store, emb, k=k, **vote_kw)
    truth = [part.labels(i) for i in range(len(part))]
    report = evaluate(truth, [v.labels() for v in votes], dataset.schema, votes=votes, meta=part.frames)
    return report, report_markdown(report)


def vote_split(store: IndexStore, split: str, k: int = 5, progress: object = None,
               chunk: int = 1024, prompt_space: Mapping[str, np.ndarray] | None = None,
               ) -> tuple[np.ndarray, list[Vote]]:
    """Vote every indexed frame of ``split`` using only train-split frames of other clips.

    Exact search on the stored embeddings; a frame is never voted by itself nor by frames of its
    own clip (adjacent clip frames are near-duplicates and would flatter the scores). Returns the
    index rows of ``split`` and their votes; ``progress(fraction, message)`` is called per chunk.
    ``prompt_space``: each attribute votes among its own nearest frames in its value prompts'
    space, as in ``core.predict.vote_batch``.
    """
    from core.predict import knn_vote, neighbors_of, prompt_coordinates, vote_among

    splits = store.meta["split"].astype(str).to_numpy()
    rows = np.flatnonzero(splits == split)
    if not len(rows):
        raise ValueError(f"the index holds no {split!r} frames; it has {sorted(set(splits))}")
    cand = np.flatnonzero(splits == "train")
    if not len(cand):
        raise ValueError("the index holds no train frames to vote with")
    emb = np.asarray(store.embeddings(), dtype=np.float32)
    spaces = {a: prompt_coordinates(emb, p) for a, p in (prompt_space or {}).items()}
    clips = store.meta["clip_id"].astype(str).to_numpy()
    labels = store.label_table()
    paths = store.meta["path"].astype(str).to_numpy()
    names = store.schema.names
    kk = min(k, len(cand))

    def nearest(x: np.ndarray, q: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query row: (similarities, index rows) of its ``kk`` nearest candidates, nearest first."""
        sims = x[q] @ x[cand].T
        sims[clips[q][:, None] == clips[cand][None, :]] = -np.inf
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        out = []
        for r in range(len(q)):
            order = top[r][np.argsort(-sims[r, top[r]])]
            order = order[np.isfinite(sims[r, order])]
            out.append((sims[r, order], cand[order]))
        return out

    votes: list[Vote] = []
    for s in range(0, len(rows), chunk):
        q = rows[s : s + chunk]
        per_space = {a: nearest(x, q) for a, x in spaces.items()}
        for r, (sims, ids) in enumerate(nearest(emb, q)):
            vote = knn_vote(sims, [dict(zip(names, labels[i], strict=False)) for i in ids], store.schema,
                            neighbor_ids=ids.tolist(), neighbor_paths=paths[ids].tolist())
            for a, found in per_space.items():
                vote_among(vote, a, neighbors_of(*found[r], paths, labels, names), store.schema)
            votes.append(vote)
        if callable(progress):
            done = min(len(rows), s + chunk)
            progress(done / len(rows), f"voting {done:,}/{len(rows):,} frames")
    return rows, votes


def evaluate_index_split(store: IndexStore, split: str, k: int = 5, progress: object = None,
                         prompt_space: Mapping[str, np.ndarray] | None = None) -> dict:
    """Per-attribute metrics and failures of ``split``'s frames, voted as in ``vote_split``.

    Each failure gains ``id``, its row in the index.
    """
    rows, votes = vote_split(store, split, k=k, progress=progress, prompt_space=prompt_space)
    truth = [store.labels(int(i)) for i in rows]
    meta = store.meta.iloc[rows].reset_index(drop=True)
    report = evaluate(truth, [v.labels() for v in votes], store.schema, votes=votes, meta=meta)
    for f in report["failures"]:
        f["id"] = int(rows[f["row"]])
    report.update(split=split, k=int(k))
    return report
