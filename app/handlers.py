"""The one app layer under both front ends: the workbench's pages (``app/views``) and the Gradio
demo (``app/demo.py``) call these plain functions, and only these, to reach the engine.

Nothing here imports Streamlit or Gradio, so both front ends share it and tests call it directly.
Each function calls the engine (``core``) and shapes its answer for drawing; errors the user can
fix come back as one readable string instead of a traceback. Engine logic (how votes are made,
where indexes live) stays in ``core``; what is here is shaping and wiring.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from PIL import Image

from core import pipeline
from core.familiarity import UNFAMILIAR_REASON
from core.images import open_image
from core.pipeline import IMAGE_SUFFIXES, ClipResult, InputError, classify_path
from core.predict import Vote
from core.schema import UNKNOWN, Schema
from core.video import VIDEO_SUFFIXES, DecodeReport, Segment, VideoError, name_problem, sample_frames
from core.workspace import (
    DEMO_INDEX,
    ENV_INDEX,
    ENV_WORKSPACE,
    INDEX_ROOT,
    ROOT,
    default_index,
    demo_missing,
    is_demo,
    list_datasets,
    list_indexes,
    list_models,
    workspace,
)

if TYPE_CHECKING:
    from core.types import IndexStore, SceneModel

MAX_UPLOAD_MB = 200  # keep equal to server.maxUploadSize in .streamlit/config.toml
DISPLAY_WIDTH = 640  # frames kept for display are shrunk to this width (memory, not accuracy)
ACCEPTED_SUFFIXES: tuple[str, ...] = tuple(sorted(IMAGE_SUFFIXES)) + tuple(VIDEO_SUFFIXES)
ACCEPTED_TYPES: list[str] = [s.lstrip(".") for s in ACCEPTED_SUFFIXES]
CLIP_FPS = 2.0


@dataclass
class SceneAnalysis:
    """One analysed scene: an upload (image or clip) or a frame picked from the index."""

    name: str
    kind: Literal["image", "clip"]
    times: np.ndarray  # seconds, one per frame (a single 0.0 for an image)
    votes: list[Vote]
    frames: list[np.ndarray]  # display-sized RGB frames, aligned with ``votes``
    segments: list[Segment] = field(default_factory=list)
    truth: dict[str, str] | None = None  # ground truth when the scene comes from the index
    index_id: int | None = None
    decode: DecodeReport | None = None  # a clip's decode report (frames that did not decode)

    @property
    def duration(self) -> float:
        return clip_duration(self.times) if self.kind == "clip" else 0.0

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


def _shrink(frame: np.ndarray | Image.Image, width: int = DISPLAY_WIDTH) -> np.ndarray:
    im = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, dtype=np.uint8))
    im = im.convert("RGB")
    if im.width > width:
        im = im.resize((width, max(1, round(im.height * width / im.width))), Image.Resampling.BILINEAR)
    return np.asarray(im)


# ---- indexes, models and frames on disk (where they live: core.workspace) -------------------------
def prepare_demo(progress: bool = False) -> Path:
    """Build the embedded demo dataset and index if missing (the only index made implicitly)."""
    from core.demo import ensure_demo

    _, index_dir = ensure_demo(progress=progress)
    return Path(index_dir)


def open_engine(index_dir: str | Path, model_name: str | None = None,
                progress: bool = False) -> tuple[SceneModel, IndexStore]:
    """(model, store) of an index (with the model that built it, or ``model_name``), building the
    embedded demo first when it is the one asked for and missing."""
    if demo_missing(index_dir):
        prepare_demo(progress=progress)
    return pipeline.open_index(index_dir, model_name)


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


def analyze_file(path: Path, model: SceneModel, store: IndexStore, k: int = 5,
                 name: str | None = None, prompt_space: Mapping[str, np.ndarray] | None = None) -> SceneAnalysis:
    """Classify a file on disk; raises the engine's InputError/VideoError for unusable files.
    ``prompt_space``: as ``core.predict.vote_batch``'s (each attribute votes in its prompt space)."""
    path = Path(path)
    result = classify_path(path, model, store, k=k, fps=CLIP_FPS, prompt_space=prompt_space)
    label = name or path.name
    if isinstance(result, ClipResult):
        # The engine returns votes, not pixels: decode once more (same timestamps) for the scrubber.
        frames = [_shrink(f) for _, f in sample_frames(path, fps=CLIP_FPS)][: len(result.votes)]
        return SceneAnalysis(label, "clip", np.asarray(result.times, dtype=float), list(result.votes),
                             frames, list(result.segments), decode=result.decode)
    frame = _shrink(pipeline.load_image(path))
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
    frame = _shrink(open_image(store.abspath(row), str(store.meta["path"].iat[row])))
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
                  ) -> tuple[list[np.ndarray], np.ndarray, str | None]:
    """Frames of an uploaded image (one) or clip (sampled at ``fps``): ``(frames, times, error)``."""
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
                return [_shrink(load_image(path))], np.zeros(1), None
            pairs = [(t, _shrink(f)) for t, f in sample_frames(path, fps=fps)]
        except (InputError, VideoError) as e:
            return [], np.zeros(0), str(e)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            return [], np.zeros(0), f"{safe}: cannot be read ({e.__class__.__name__}: {e})"
    if not pairs:
        return [], np.zeros(0), f"{safe}: no frames could be read"
    return [f for _, f in pairs], np.asarray([t for t, _ in pairs], dtype=float), None


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


def vote_space_of(model: SceneModel, space: str, schema: Schema) -> dict[str, np.ndarray] | None:
    """``prompt_space`` for a ``VOTE_SPACE_LABELS`` name (None: the whole embedding); ValueError
    names the choices when ``space`` is not one."""
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


def clip_duration(times: Sequence[float], lone_step: float = 0.0) -> float:
    """A sampled clip's length: its last frame's time plus one sampling step (``lone_step`` when
    only one frame was sampled)."""
    if not len(times):
        return 0.0
    step = float(np.median(np.diff(times))) if len(times) > 1 else lone_step
    return float(times[-1]) + step


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


# ---- map selections and exports ----------------------------------------------------------------
def selected_ids(selection: Mapping[str, Any] | None) -> list[int]:
    """Index rows picked on the map (box, lasso or click), from Plotly's selection state.

    Every trace carries the index row in ``customdata``; point numbers alone are per-trace and
    would mix rows of different colour groups. Points without a row (the placed upload) are ignored.
    """
    if not selection:
        return []
    points = selection.get("points") if isinstance(selection, Mapping) else None
    if points is None and isinstance(selection, Mapping):
        points = (selection.get("selection") or {}).get("points", [])
    out: list[int] = []
    seen: set[int] = set()
    for p in points or []:
        cd = p.get("customdata")
        if isinstance(cd, list | tuple):
            cd = cd[0] if cd else None
        if cd is None:
            continue
        try:
            row = int(cd)
        except (TypeError, ValueError):
            continue
        if row >= 0 and row not in seen:
            seen.add(row)
            out.append(row)
    return out


PLACE_TRANSFORM_MAX = 50_000  # umap's transform refits in memory; beyond this, place by k-NN


def place_upload(name: str, data: bytes, model: SceneModel, store: IndexStore, layout: np.ndarray, k: int = 5,
                 ) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """Map positions of an uploaded image or clip's frames: ``(xy, times, None)`` or an error."""
    from app import map_cache

    analysis, error = analyze_upload(name, data, model, store, k=k)
    if analysis is None:
        return None, None, error
    method = "transform" if len(store) <= PLACE_TRANSFORM_MAX else "knn"
    xy = map_cache.place(store, model.embed_images(analysis.frames), method=method, layout=layout)
    return xy, analysis.times, None


EXPORT_FORMATS: dict[str, str] = {"csv": "text/csv", "jsonl": "application/jsonl"}


def export_rows(table: pd.DataFrame, fmt: str) -> bytes:
    """Selected rows as a downloadable file (the engine decides the columns and encoding)."""
    from core.maps import export_selection

    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; one of {list(EXPORT_FORMATS)}")
    return export_selection(table, fmt=fmt)


# ---- the map ---------------------------------------------------------------------------------------
def map_layout(store: IndexStore, progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """(N, 2) map positions of the index's frames (UMAP, computed once per index however many ask)."""
    from app import map_cache

    return map_cache.layout(store, progress=progress)


def color_options(store: IndexStore) -> list[str]:
    """What the map can be coloured by (attributes, split, correctness), as option names."""
    from core import maps

    return maps.color_options(store)


def color_label(option: str, schema: Schema) -> str:
    """A colour option as people read it."""
    from core import maps

    if option == maps.COLOR_SPLIT:
        return "Split"
    if option == maps.COLOR_CORRECT:
        return "Prediction correctness (all attributes)"
    if option.startswith(maps.COLOR_CORRECT + ":"):
        return f"Prediction correctness · {schema[option.split(':', 1)[1]].display}"
    return schema[option].display


def colors_need_votes(option: str) -> bool:
    """Whether colouring by ``option`` votes every indexed frame first (correctness colours)."""
    from core import maps

    return option.startswith(maps.COLOR_CORRECT)


def map_categories(store: IndexStore, option: str, k: int = 5) -> np.ndarray:
    """One category per indexed frame for colouring by ``option`` (correctness: its vote's)."""
    from core import maps

    predictions = maps.loo_predictions(store, k=k) if colors_need_votes(option) else None
    return np.asarray(maps.color_values(store, option, predictions=predictions))


def selection_table(store: IndexStore, ids: Sequence[int]) -> pd.DataFrame:
    """The picked frames' rows (id, split, path, labels...), in the order picked."""
    from core import maps

    return maps.selection_table(store, ids)


def labelled(table: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """``table`` with its attribute columns and values named for people."""
    out = table.rename(columns={a.name: a.display for a in schema.attributes})
    for a in schema.attributes:
        if a.display in out:
            out[a.display] = [a.display_of(v) for v in out[a.display]]
    return out


# ---- search ----------------------------------------------------------------------------------------
SEGMENT_HITS = 200  # frame hits grouped into clip segments (more than shown: segments need runs)


def search_scenes(model: SceneModel, store: IndexStore, query: str | Image.Image | np.ndarray,
                  k: int = 12) -> pd.DataFrame:
    """Indexed frames ranked by similarity to a text (``str``) or an example image, best first;
    ValueError for an empty text."""
    from core import search

    if isinstance(query, str):
        return search.search_text(model, store, query, k=int(k))
    return search.search_image(model, store, query, k=int(k))


def search_segments(model: SceneModel, store: IndexStore, query: str | Image.Image | np.ndarray,
                    hits: int = SEGMENT_HITS) -> pd.DataFrame:
    """The top ``hits`` frames for ``query`` merged into time segments inside clips, best first."""
    from core.search import clip_windows

    return clip_windows(search_scenes(model, store, query, k=hits), store)


# ---- tokens ----------------------------------------------------------------------------------------
def tokens_available() -> bool:
    """Whether the token engine (``core.tokens``) is part of this build."""
    try:
        from core.tokens import embed_pruned, heatmap_image, select_images  # noqa: F401
    except ImportError:
        return False
    return True


def token_choices() -> dict[str, tuple[str, ...]]:
    """The token engine's choices: query ``rules``, query-free ``methods``, ``query_methods``."""
    from core import tokens

    return {"rules": tuple(tokens.RULES), "methods": tuple(tokens.METHODS),
            "query_methods": tuple(tokens.QUERY_METHODS)}


def token_background(model: SceneModel, schema: Schema) -> np.ndarray:
    """The schema's value phrases embedded, for feature surgery (see ``core.tokens.score_patches``)."""
    from core.tokens import schema_background

    return schema_background(model, schema)


def token_votes(model: SceneModel, store: IndexStore, image: Image.Image | np.ndarray, k: int = 5,
                keep_ratio: float = 0.25, query: str | None = None, **options: Any) -> Any:
    """The image's kept patches and its votes from the full and from the pruned encoding
    (``core.tokens.vote.PrunedVote``; ``options``: rule, method, background, read_in)."""
    from core.tokens.vote import vote_full_and_pruned

    return vote_full_and_pruned(model, store, image, k=int(k), keep_ratio=float(keep_ratio),
                                query=(query or "").strip() or None, **options)


def token_heatmap(image: Image.Image | np.ndarray, selection: Any, query: str | None = None) -> Image.Image:
    """The image under its patches' relevance colours, kept patches outlined (titled by ``query``)."""
    from core.tokens import heatmap_image

    return heatmap_image(image, selection, title=query or None)


def token_kept(image: Image.Image | np.ndarray, selection: Any) -> Image.Image:
    """The image with the patches the selection dropped dimmed."""
    from core.tokens import heatmap_image

    return heatmap_image(image, selection, alpha=0.0, dim_pruned=0.85, colorbar=False)


def pruned_summary(result: Any, query: str | None = None) -> dict[str, Any]:
    """A ``PrunedVote`` as the demo's API returns it: tokens kept, both votes, where they agree."""
    sel = result.selection
    return {"kept_tokens": sel.k, "total_tokens": int(sel.scores.size), "query": query or None,
            "full": result.full.labels(), "pruned": result.pruned.labels(), "agree": result.agree}


# ---- fine-tuning jobs (in the workspace) -------------------------------------------------------------
def job_errors() -> tuple[type[Exception], ...]:
    """Errors a job action reports in one line (a held lock, a missing job, a bad option)."""
    from core.jobs import JobError

    return (JobError, OSError, ValueError)


def finetune_fields() -> tuple[list[Any], dict[str, str]]:
    """The fine-tuning options with defaults (dataclass fields, in order) and their help texts."""
    import dataclasses

    from core.train.finetune import OPTION_HELP, FinetuneOptions

    fields = [f for f in dataclasses.fields(FinetuneOptions) if f.default is not dataclasses.MISSING]
    return fields, dict(OPTION_HELP)


def finetune_defaults(base_model: str) -> dict[str, tuple[float, str]]:
    """Option -> (default, where it comes from) for the options whose default belongs to the
    starting model (the learning rate); ValueError for a model name the registry does not know."""
    from core.train.model_defaults import finetune_defaults as defaults

    return defaults(base_model)


def start_job(spec: Mapping[str, Any]) -> str:
    from core.jobs import start_job as start

    return start(workspace(), dict(spec))


def list_jobs() -> list[dict[str, Any]]:
    from core.jobs import list_jobs as jobs

    return jobs(workspace())


def job_status(job_id: str) -> dict[str, Any]:
    from core.jobs import job_status as status

    return status(workspace(), job_id)


def cancel_job(job_id: str) -> Any:
    from core.jobs import cancel_job as cancel

    return cancel(workspace(), job_id)


def resume_job(job_id: str) -> Any:
    from core.jobs import resume_job as resume

    return resume(workspace(), job_id)


def job_comparison(job_id: str) -> Any:
    """The finished job's before/after ``core.compare.Comparison``, or None when it has none."""
    from core.compare import Comparison
    from core.jobs import read_comparison

    raw = read_comparison(workspace(), job_id)
    return Comparison.from_dict(raw) if raw else None


def job_index_meta(job_id: str) -> pd.DataFrame | None:
    """The frame table of the index a job built (for colouring its maps), or None when it is gone."""
    from core.index import IndexStore as Store

    try:
        return Store.load(workspace() / "jobs" / job_id / "index").meta
    except Exception:  # the job's index is gone or unreadable: its maps are drawn uncoloured
        return None


def train_choices() -> dict[str, list[tuple[str, str]]]:
    """The Train page's choice options as ``(value, words)``: device, precision (``auto`` says what
    it resolves to here) and save dtype."""
    import os

    import torch

    from core.train.resources import resolve_precision

    devices = [("cpu", f"CPU ({os.cpu_count() or 1} cores)")]
    if torch.cuda.is_available():
        devices.append(("cuda", f"GPU ({torch.cuda.get_device_name(0)})"))
    where = {"cpu": "this CPU", "cuda": "this GPU"}
    precision = [("auto", "Automatic (" + ", ".join(f"{resolve_precision('auto', d)} on {where[d]}"
                                                     for d, _ in devices) + ")"),
                 ("fp32", "32-bit float (fp32): exact, the safe choice"),
                 ("bf16", "bfloat16 (bf16): faster only where the chip computes it natively"),
                 ("fp16", "16-bit float (fp16): GPU only, loss-scaled")]
    save = [("float32", "32-bit float: exact (small fine-tuning changes survive)"),
            ("float16", "16-bit float: half the size, may round small changes away"),
            ("bfloat16", "bfloat16: half the size, coarser still")]
    return {"device": devices, "precision": precision, "save_dtype": save}


def job_limits(status: Mapping[str, Any]) -> str:
    """What bounds the job's speed, in one line (``CPU-bound: 2 threads on 2 cores · fp32 · ...``)."""
    from core.jobs.limits import limits_note

    return limits_note(dict(status))


def train_frame_count(data_dir: str) -> int | None:
    """Frames in the dataset's train split (None when its manifest cannot be read), for run estimates."""
    from core.data import read_manifest

    try:
        return int((read_manifest(data_dir, check_files=False).frames["split"] == "train").sum())
    except Exception:  # a folder typed in that is no dataset yet: the estimate is left out
        return None


def measured_throughput(jobs: Sequence[Mapping[str, Any]]) -> float | None:
    """Training images per second the newest job that trained measured (None before any)."""
    for j in jobs:
        rate = j.get("images_per_s") or (j.get("result") or {}).get("images_per_s")
        if rate:
            return float(rate)
    return None


# ---- triage --------------------------------------------------------------------------------------
def leakage_pairs(store: IndexStore, threshold: float = 0.97) -> pd.DataFrame:
    """Near-duplicate frames in different splits (``core.data.find_leakage``), with both paths."""
    from core.data import find_leakage

    pairs = find_leakage(np.asarray(store.embeddings()), store.meta["split"].astype(str).to_numpy(),
                         threshold=threshold)
    paths = store.meta["path"].to_numpy()
    i, j = (pairs[c].to_numpy(np.int64) for c in ("i", "j"))
    return pairs.assign(path_i=paths[i], path_j=paths[j])


def focus_values(schema: Schema, fragments: Iterable[str] = ("intersection", "construction")) -> dict[str, list[str]]:
    """Values the failure list opens on (junctions and road works), found by name in the schema.

    Returns attribute name -> matching value names; empty when the schema has none.
    """
    out: dict[str, list[str]] = {}
    for a in schema.attributes:
        hits = [v for v in a.value_names if any(f in v for f in fragments)]
        if hits:
            out[a.name] = hits
    return out


def class_key(attribute: str, value: str) -> str:
    """One class of one attribute as a filter option (values repeat across attributes)."""
    return f"{attribute}={value}"


def focus_classes(schema: Schema) -> list[str]:
    return [class_key(a, v) for a, vals in focus_values(schema).items() for v in vals]


def failure_table(report: Mapping[str, Any], schema: Schema, attributes: Sequence[str] | None = None,
                  classes: Sequence[str] | None = None) -> pd.DataFrame:
    """The report's failures as rows, filtered by attribute and by class (``class_key``, matching
    the truth or the prediction); empty filters keep everything."""
    cols = ["id", "attribute", "truth", "prediction", "path", "clip_id", "timestamp_s", "misleading"]
    wanted = set(classes or ())
    recs = []
    for f in report.get("failures", []):
        a = f["attribute"]
        if attributes and a not in attributes:
            continue
        if wanted and class_key(a, f["truth"]) not in wanted and class_key(a, f["prediction"]) not in wanted:
            continue
        recs.append({c: f.get(c) for c in cols})
    df = pd.DataFrame(recs, columns=cols)
    df["Attribute"] = [schema[a].display for a in df["attribute"]]
    df["Truth"] = [schema.display(a, v) for a, v in zip(df["attribute"], df["truth"], strict=True)]
    df["Prediction"] = [schema.display(a, v) for a, v in zip(df["attribute"], df["prediction"], strict=True)]
    return df


def metrics_table(report: Mapping[str, Any], schema: Schema) -> pd.DataFrame:
    """Per-attribute precision / recall / F1 of the plurality vote in schema order, then coverage
    against accuracy: the share of frames the vote decided (a majority of voters agreed) and the
    F1 on those frames alone."""
    rows = []
    decided = (report.get("decided") or {}).get("attributes", {})
    for a in schema.attributes:
        m = report["attributes"].get(a.name)
        if not m:
            continue
        d = decided.get(a.name, {})
        rows.append({"Attribute": a.display, "Precision": m["precision"], "Recall": m["recall"],
                     "F1": m["f1"], "Accuracy": m["accuracy"], "Frames": m["n"],
                     "Decided": d.get("coverage"), "F1 when decided": d.get("f1")})
    return pd.DataFrame(rows)


def per_class_table(report: Mapping[str, Any], schema: Schema, attribute: str) -> pd.DataFrame:
    a = schema[attribute]
    per = report["attributes"][attribute]["per_class"]
    return pd.DataFrame([{"Class": a.display_of(v), "Precision": c["precision"], "Recall": c["recall"],
                          "F1": c["f1"], "Support": c["support"]} for v, c in per.items()])


def index_splits(store: IndexStore) -> list[str]:
    """Splits present in the index, in the usual order."""
    from core.data import SPLITS

    present = set(store.meta["split"].astype(str))
    return [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))


def evaluate_index_split(store: IndexStore, split: str, k: int = 5, progress: Any = None,
                         prompt_space: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Triage metrics for ``split``: see ``core.scoring.score_index`` for the protocol."""
    from core.scoring import score_index

    return score_index(store, split, k=k, progress=progress, prompt_space=prompt_space)


__all__ = [
    "ACCEPTED_SUFFIXES", "ACCEPTED_TYPES", "CLIP_FPS", "DEMO_INDEX", "DISPLAY_WIDTH", "ENV_INDEX", "ENV_WORKSPACE",
    "EXPORT_FORMATS", "INDEX_ROOT", "IMAGE_SUFFIXES", "MAX_UPLOAD_MB", "NeighbourCard", "PLACE_TRANSFORM_MAX", "ROOT",
    "SEGMENT_HITS", "SceneAnalysis", "UNKNOWN", "VOTE_SPACE_LABELS", "analyze_file", "analyze_index_scene",
    "analyze_upload", "attribute_voters", "bundled_models", "cancel_job", "check_upload", "class_key",
    "classify_file", "clip_duration", "color_label", "color_options", "colors_need_votes", "default_index",
    "demo_missing", "disagreements", "display_names", "evaluate_index_split", "example_files", "export_rows", "failure_table",
    "finetune_defaults", "finetune_fields", "first_frame", "focus_classes", "focus_values", "frame_file", "index_splits", "is_demo",
    "job_comparison", "job_errors", "job_index_meta", "job_limits", "job_status", "labelled", "leakage_pairs", "list_datasets",
    "list_indexes", "list_jobs", "list_models", "load_query_image", "map_categories", "map_layout", "measured_throughput",
    "metrics_table", "neighbour_cards", "open_engine", "per_class_table", "place_upload", "prepare_demo",
    "pruned_summary", "resume_job", "search_scenes", "search_segments", "selected_ids", "selection_table",
    "start_job", "thumbnail", "token_background", "token_choices", "token_heatmap", "token_kept", "token_votes",
    "tokens_available", "train_choices", "train_frame_count", "upload_frames", "vote_frame", "vote_space_of", "workspace",
]
