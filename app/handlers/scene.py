"""A scene analysed: an upload or an indexed frame, its votes, and its votes as tables."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from PIL import Image

from app.handlers.files import CLIP_FPS, MAX_UPLOAD_MB, check_upload, shrink
from app.handlers.playback import EncodedFrames
from core import pipeline
from core.familiarity import UNFAMILIAR_REASON
from core.images import open_image
from core.pipeline import IMAGE_SUFFIXES, ClipResult, InputError, classify_path
from core.predict import Vote
from core.schema import UNKNOWN, Schema
from core.timeline import Segment
from core.video import DecodeReport, VideoError, sample_frames

if TYPE_CHECKING:
    from core.types import IndexStore, SceneModel


@dataclass
class SceneAnalysis:
    """One analysed scene: an upload (image or clip) or a frame picked from the index."""

    name: str
    kind: Literal["image", "clip"]
    times: np.ndarray  # seconds, one per frame (a single 0.0 for an image)
    votes: list[Vote]
    frames: list[np.ndarray | None]  # display-sized RGB frames, aligned with ``votes`` (None: not rendered yet)
    segments: list[Segment] = field(default_factory=list)
    truth: dict[str, str] | None = None  # ground truth when the scene comes from the index
    index_id: int | None = None
    decode: DecodeReport | None = None  # a clip's decode report (frames that did not decode)
    length_s: float | None = None  # a clip's declared length (the player's), when the file says

    @property
    def duration(self) -> float:
        return clip_duration(self.times, length=self.length_s) if self.kind == "clip" else 0.0

    @property
    def unfamiliar(self) -> list[int]:
        """Frames unlike the index (core.familiarity): their votes abstain."""
        return [i for i, v in enumerate(self.votes) if any(a.reason == UNFAMILIAR_REASON for a in v.attributes.values())]

    def unfamiliar_stretches(self) -> list[tuple[float, float]]:
        """The unfamiliar frames as time stretches (each frame covers up to the next one)."""
        out: list[tuple[float, float]] = []
        for i in self.unfamiliar:
            start = float(self.times[i])
            end = float(self.times[i + 1]) if i + 1 < len(self.times) else max(self.duration, start)
            if out and abs(out[-1][1] - start) < 1e-6:
                out[-1] = (out[-1][0], end)
            else:
                out.append((start, end))
        return out

    def familiarity_banner(self) -> str | None:
        """A warning when the index does not know this footage, else None."""
        bad = self.unfamiliar
        if not bad:
            return None
        known = [v.familiarity for v in self.votes if v.familiarity is not None]
        median = f" (familiarity {float(np.median(known)):.2f})" if known else ""
        what = "This image is" if self.kind == "image" else (
            "This clip is" if len(bad) == len(self.votes) else f"{len(bad)} of {len(self.votes)} frames are")
        return (f"{what} {UNFAMILIAR_REASON}{median}: nothing indexed looks like it, so its votes abstain. "
                "Index footage like it, or adapt the model to it, before trusting votes here.")


def analyze_file(path: Path, model: SceneModel, store: IndexStore, k: int = 5,
                 name: str | None = None, prompt_space: Mapping[str, np.ndarray] | None = None) -> SceneAnalysis:
    """Classify a file on disk; raises the engine's InputError/VideoError for unusable files.
    ``prompt_space``: as ``core.predict.vote_batch``'s (each attribute votes in its prompt space)."""
    path = Path(path)
    result = classify_path(path, model, store, k=k, fps=CLIP_FPS, prompt_space=prompt_space)
    label = name or path.name
    if isinstance(result, ClipResult):
        # The engine returns votes, not pixels: decode once more (same timestamps) for the scrubber,
        # each frame shrunk and JPEG-encoded as it comes (never the whole clip decoded at once).
        from app.handlers.playback import video_length

        frames = EncodedFrames(shrink(f) for _, f in islice(sample_frames(path, fps=CLIP_FPS), len(result.votes)))
        return SceneAnalysis(label, "clip", np.asarray(result.times, dtype=float), list(result.votes),
                             frames, list(result.segments), decode=result.decode, length_s=video_length(path))
    frame = shrink(pipeline.load_image(path))
    return SceneAnalysis(label, "image", np.zeros(1), [result.vote], [frame])


def analyze_upload(name: str, data: bytes, model: SceneModel, store: IndexStore, k: int = 5,
                   max_mb: int = MAX_UPLOAD_MB, prompt_space: Mapping[str, np.ndarray] | None = None,
                   ) -> tuple[SceneAnalysis | None, str | None]:
    """Classify uploaded bytes: ``(analysis, None)`` or ``(None, error message)``."""
    problem = check_upload(name, len(data), max_mb)
    if problem:
        return None, problem
    safe = Path(name).name  # never let an uploaded name choose a directory
    with tempfile.TemporaryDirectory(prefix="scenescope-upload-") as tmp:
        path = Path(tmp) / safe
        path.write_bytes(data)
        try:
            return analyze_file(path, model, store, k=k, name=safe, prompt_space=prompt_space), None
        except (InputError, VideoError) as e:
            return None, str(e)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            return None, f"{safe}: cannot be read ({e.__class__.__name__}: {e})"


def analyze_index_scene(store: IndexStore, row: int, k: int = 5,
                        prompt_space: Mapping[str, np.ndarray] | None = None) -> SceneAnalysis:
    """Vote on a frame already in the index from its stored vector, under the same leave-out rule
    as Triage and the Map (``core.scoring.vote_rows``: other clips' train frames vote)."""
    from core.scoring import vote_rows

    row = int(row)
    vote = vote_rows(store, [row], k=k, prompt_space=prompt_space)[0]
    path = store.abspath(row)  # not there yet while the demo's frames render (frames_rendering)
    frame = shrink(open_image(path, str(store.meta["path"].iat[row]))) if path.is_file() else None
    return SceneAnalysis(str(store.meta["path"].iat[row]), "image", np.zeros(1), [vote], [frame],
                         truth=store.labels(row), index_id=row)


def load_query_image(name: str, data: bytes, max_mb: int = MAX_UPLOAD_MB) -> tuple[Image.Image | None, str | None]:
    """An uploaded query image: ``(image, None)`` or ``(None, error message)``."""
    suffix = Path(name).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        return None, (f"{Path(name).name}: unsupported image type {suffix or '(none)'}; use "
                      f"{', '.join(sorted(IMAGE_SUFFIXES))}")
    problem = check_upload(name, len(data), max_mb)
    if problem:
        return None, problem
    from core.pipeline import load_image

    with tempfile.TemporaryDirectory(prefix="scenescope-query-") as tmp:
        path = Path(tmp) / Path(name).name
        path.write_bytes(data)
        try:
            return load_image(path), None
        except InputError as e:
            return None, str(e)
        except (ValueError, Image.DecompressionBombError) as e:
            return None, f"{Path(name).name}: cannot be read ({e})"


def upload_frames(name: str, data: bytes, fps: float = CLIP_FPS, max_mb: int = MAX_UPLOAD_MB,
                  ) -> tuple[Sequence[np.ndarray], np.ndarray, str | None]:
    """Frames of an uploaded image (one) or clip (sampled at ``fps``, held encoded: ``EncodedFrames``):
    ``(frames, times, error)``."""
    problem = check_upload(name, len(data), max_mb)
    if problem:
        return [], np.zeros(0), problem
    from core.pipeline import load_image

    safe = Path(name).name
    with tempfile.TemporaryDirectory(prefix="scenescope-upload-") as tmp:
        path = Path(tmp) / safe
        path.write_bytes(data)
        try:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                return [shrink(load_image(path))], np.zeros(1), None
            times: list[float] = []

            def shrunk() -> Iterator[np.ndarray]:  # one decoded frame at a time, encoded as it comes
                for t, f in sample_frames(path, fps=fps):
                    times.append(t)
                    yield shrink(f)

            frames = EncodedFrames(shrunk())
        except (InputError, VideoError) as e:
            return [], np.zeros(0), str(e)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            return [], np.zeros(0), f"{safe}: cannot be read ({e.__class__.__name__}: {e})"
    if not len(frames):
        return [], np.zeros(0), f"{safe}: no frames could be read"
    return frames, np.asarray(times, dtype=float), None


def first_frame(path: str | Path) -> Image.Image:
    """An image file, or a clip's first frame, at full size; raises InputError/VideoError (both
    name the file) when it cannot be read."""
    from core.pipeline import load_image

    path = Path(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return load_image(path)
    for _, frame in sample_frames(path, fps=1.0, max_frames=1):
        return Image.fromarray(frame)
    raise InputError(f"{path.name}: no frames could be read")


def vote_space_of(model: SceneModel | None, space: str, schema: Schema) -> dict[str, np.ndarray] | None:
    """``prompt_space`` for a ``VOTE_SPACE_LABELS`` name (None: the whole embedding, which needs
    no model); ValueError names the choices when ``space`` is not one."""
    from core.predict import vote_space

    return vote_space(model, space, schema)


def display_names(schema: Schema) -> dict[str, Any]:
    """Attribute and value labels for people, keyed by their names (the API's ``display``)."""
    return {
        "attributes": {a.name: a.display for a in schema.attributes},
        "values": {a.name: {v: a.display_of(v) for v in [*a.value_names, UNKNOWN]} for a in schema.attributes},
    }


def classify_file(path: str | Path, model: SceneModel, store: IndexStore, k: int = 5,
                  space: str = "embedding") -> dict[str, Any]:
    """An image or clip's votes as the demo's API returns them: the engine's result dict (see
    ``core.pipeline.classify_path``) plus ``display`` (labels for people) and ``name``.

    Raises ValueError with a one-line message for a bad vote space or an unusable file (the
    engine's InputError and VideoError are ValueErrors)."""
    path = Path(path)
    prompt_space = vote_space_of(model, space, store.schema)
    problem = check_upload(path.name, path.stat().st_size if path.is_file() else 0)
    if problem:
        raise InputError(problem)
    result = classify_path(path, model, store, k=int(k), fps=CLIP_FPS, prompt_space=prompt_space)
    return {**result.to_dict(), "display": display_names(store.schema), "name": path.name}


def clip_duration(times: Sequence[float], lone_step: float = 0.0, length: float | None = None) -> float:
    """A sampled clip's length: its last frame's time plus one sampling step (``lone_step`` when
    only one frame was sampled), cut to the file's declared ``length`` when known, so the timeline
    ends where the video player does (9.0 s of samples for an 8.9 s clip reads 8.9 s)."""
    if not len(times):
        return 0.0
    step = float(np.median(np.diff(times))) if len(times) > 1 else lone_step
    end = float(times[-1]) + step
    if length is not None and float(times[-1]) < length < end:
        return float(length)
    return end


# ---- votes and neighbours as tables ------------------------------------------------------------
# A vote arrives as a ``Vote`` (the workbench) or as its API dict (``classify_file``'s frames, which
# the Gradio page draws from): both go through the functions below.
VoteLike = Vote | Mapping[str, Any]


def _decisions(vote: VoteLike) -> dict[str, tuple[str, float, bool, Mapping[str, float] | None]]:
    """Attribute -> (value, share, abstained, scores) of a vote in either form (the API dict has
    no per-value scores: None)."""
    if isinstance(vote, Vote):
        return {n: (av.value, float(av.share), bool(av.abstained), av.scores) for n, av in vote.attributes.items()}
    return {n: (v["value"], float(v["share"]), bool(v["abstained"]), v.get("scores"))
            for n, v in vote["attributes"].items()}


def disagreements(vote: VoteLike, neighbor_labels: Mapping[str, str]) -> list[str]:
    """Attributes where a neighbour's label contradicts a decided vote (abstentions never count)."""
    out = []
    for name, (value, *_) in _decisions(vote).items():
        mine = neighbor_labels.get(name, UNKNOWN)
        if value != UNKNOWN and mine != UNKNOWN and mine != value:
            out.append(name)
    return out


@dataclass
class NeighbourCard:
    """One neighbour of a vote as a card shows it."""

    rank: int  # 1 = most similar
    id: int  # index row
    similarity: float
    path: str | None  # relative to the dataset folder
    labels: dict[str, str]
    against: list[str]  # attributes whose decided vote this neighbour's label contradicts

    @property
    def title(self) -> str:
        return f"#{self.rank} · sim {self.similarity:.3f}"


def neighbour_cards(vote: VoteLike) -> list[NeighbourCard]:
    """The vote's neighbours, most similar first, each with the attributes it disagrees on."""
    if isinstance(vote, Vote):
        raw = [(n.id, n.similarity, n.path, n.labels) for n in vote.neighbors]
    else:  # the API renames ``path`` to ``scene_path`` (see app.demo)
        raw = [(n.get("id", -1), n["similarity"], n.get("path", n.get("scene_path")), n["labels"])
               for n in vote["neighbors"]]
    return [NeighbourCard(rank, int(i), float(sim), path, dict(labels), disagreements(vote, labels))
            for rank, (i, sim, path, labels) in enumerate(raw, start=1)]


def attribute_voters(vote: Vote, attribute: str) -> Vote:
    """The same vote with its neighbours replaced by the scenes that carried ``attribute``'s vote
    (in prompt space each attribute has its own), for drawing them as neighbour cards."""
    return Vote(vote.attributes, vote.attributes[attribute].voters)


def vote_frame(vote: VoteLike, schema: Schema, truth: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per attribute: display label, voted value, vote share, status (and truth)."""
    rows = []
    decisions = _decisions(vote)
    for a in schema.attributes:
        value, share, abstained, scores = decisions[a.name]
        if abstained and scores is not None:
            leaned = max(scores, key=lambda v: scores[v]) if scores else UNKNOWN
            status = f"abstained (leaned {a.display_of(leaned)})"
        else:
            status = "abstained" if abstained else "decided"
        row = {"Attribute": a.display, "Vote": a.display_of(value), "Share": share, "Status": status}
        if truth is not None:
            t = truth.get(a.name, UNKNOWN)
            row["Truth"] = a.display_of(t)
            row["Correct"] = "—" if t == UNKNOWN else ("✓" if t == value else "✗")
        rows.append(row)
    return pd.DataFrame(rows)
