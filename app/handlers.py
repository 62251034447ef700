"""Plain functions behind the pages: upload handling, selections, exports, failure filters.

Nothing here imports Streamlit or Gradio, so both front ends share it and tests call it directly.
Each function calls the engine (``core``) and shapes its answer for drawing; errors the user can
fix come back as one readable string instead of a traceback.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from PIL import Image

from core import pipeline
from core.models import SceneModel
from core.pipeline import IMAGE_SUFFIXES, ClipResult, InputError, classify_path
from core.predict import Vote, vote_batch
from core.schema import UNKNOWN, Schema
from core.video import VIDEO_SUFFIXES, Segment, VideoError, sample_frames

ROOT = Path(__file__).resolve().parents[1]
INDEX_ROOT = ROOT / "indexes"
DEMO_INDEX = INDEX_ROOT / "demo"
ENV_INDEX = "SCENESCOPE_INDEX"
ENV_WORKSPACE = "SCENESCOPE_WORKSPACE"
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

    @property
    def duration(self) -> float:
        if self.kind != "clip" or not len(self.times):
            return 0.0
        step = float(np.median(np.diff(self.times))) if len(self.times) > 1 else 0.0
        return float(self.times[-1]) + step


def _shrink(frame: np.ndarray | Image.Image, width: int = DISPLAY_WIDTH) -> np.ndarray:
    im = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, dtype=np.uint8))
    im = im.convert("RGB")
    if im.width > width:
        im = im.resize((width, max(1, round(im.height * width / im.width))), Image.Resampling.BILINEAR)
    return np.asarray(im)


def default_index() -> Path:
    """$SCENESCOPE_INDEX, else the embedded demo index."""
    env = os.environ.get(ENV_INDEX)
    return Path(env) if env else DEMO_INDEX


def workspace() -> Path:
    """Where fine-tuning jobs, their models and indexes go: $SCENESCOPE_WORKSPACE or workspace/."""
    env = os.environ.get(ENV_WORKSPACE)
    return Path(env) if env else ROOT / "workspace"


def list_indexes() -> list[Path]:
    """The default index, every index under ``indexes/``, then indexes made by training jobs."""
    found = [default_index()]
    candidates = sorted(INDEX_ROOT.glob("*/manifest.json")) + sorted(workspace().glob("jobs/*/index/manifest.json"))
    seen = {found[0].resolve()}
    for m in candidates:
        if m.parent.resolve() not in seen:
            seen.add(m.parent.resolve())
            found.append(m.parent)
    return found


def list_datasets(extra: Iterable[Path] = ()) -> list[Path]:
    """Dataset folders (with a manifest) the Train page offers: ``extra`` first, then workspace/*."""
    out: list[Path] = []
    for p in [*extra, *sorted(workspace().glob("*/manifest.*"))]:
        folder = p if p.is_dir() else p.parent
        if folder.resolve() not in {o.resolve() for o in out} and any(folder.glob("manifest.*")):
            out.append(folder)
    return out


def list_models(first: Iterable[str] = ()) -> list[str]:
    """Model names to start from: ``first``, the bundled ones, then models trained in the workspace."""
    from core.models import BUNDLED

    trained = [f"file:{p.parent}" for p in sorted(workspace().glob("models/*/open_clip_config.json"))]
    return list(dict.fromkeys([*first, *BUNDLED, *trained]))


def is_demo(index_dir: Path) -> bool:
    return Path(index_dir).resolve() == DEMO_INDEX.resolve()


def prepare_demo(progress: bool = False) -> Path:
    """Build the embedded demo dataset and index if missing (the only index made implicitly)."""
    from core.demo import ensure_demo

    _, index_dir = ensure_demo(progress=progress)
    return Path(index_dir)


VOTE_SPACE_LABELS = {"embedding": "Whole embedding", "prompts": "Each attribute's prompts"}  # core.predict.VOTE_SPACES


def check_upload(name: str, size: int, max_mb: int = MAX_UPLOAD_MB) -> str | None:
    """Why an upload cannot be used before reading it (type, emptiness, size), or None."""
    suffix = Path(name).suffix.lower()
    if suffix not in ACCEPTED_SUFFIXES:
        return (f"{Path(name).name}: unsupported file type {suffix or '(none)'}; upload an image "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}) or a clip ({', '.join(VIDEO_SUFFIXES)})")
    if size == 0:
        return f"{Path(name).name}: the file is empty"
    if size > max_mb * 1024 * 1024:
        return f"{Path(name).name}: {size / 1024**2:.0f} MB is over the {max_mb} MB upload limit"
    return None


def analyze_file(path: Path, model: SceneModel, store: Any, k: int = 5,
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
                             frames, list(result.segments))
    with Image.open(path) as im:
        frame = _shrink(im)
    return SceneAnalysis(label, "image", np.zeros(1), [result.vote], [frame])


def analyze_upload(name: str, data: bytes, model: SceneModel, store: Any, k: int = 5,
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


def analyze_index_scene(store: Any, row: int, k: int = 5,
                        prompt_space: Mapping[str, np.ndarray] | None = None) -> SceneAnalysis:
    """Vote on a frame already in the index from its stored vector, leaving itself out."""
    row = int(row)
    vote = vote_batch(store, store.embeddings()[row : row + 1], k=k, exclude_self=True,
                      prompt_space=prompt_space)[0]
    with Image.open(store.abspath(row)) as im:
        frame = _shrink(im)
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


# ---- votes and neighbours as tables ------------------------------------------------------------
def disagreements(vote: Vote, neighbor_labels: Mapping[str, str]) -> list[str]:
    """Attributes where a neighbour's label contradicts a decided vote (abstentions never count)."""
    out = []
    for name, av in vote.attributes.items():
        mine = neighbor_labels.get(name, UNKNOWN)
        if av.value != UNKNOWN and mine != UNKNOWN and mine != av.value:
            out.append(name)
    return out


def vote_frame(vote: Vote, schema: Schema, truth: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per attribute: display label, voted value, vote share, status (and truth)."""
    rows = []
    for a in schema.attributes:
        av = vote.attributes[a.name]
        leaned = max(av.scores, key=lambda v: av.scores[v]) if av.scores else UNKNOWN
        status = f"abstained (leaned {a.display_of(leaned)})" if av.abstained else "decided"
        row = {"Attribute": a.display, "Vote": a.display_of(av.value), "Share": float(av.share),
               "Status": status}
        if truth is not None:
            t = truth.get(a.name, UNKNOWN)
            row["Truth"] = a.display_of(t)
            row["Correct"] = "—" if t == UNKNOWN else ("✓" if t == av.value else "✗")
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


def place_upload(name: str, data: bytes, model: SceneModel, store: Any, layout: np.ndarray, k: int = 5,
                 ) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """Map positions of an uploaded image or clip's frames: ``(xy, times, None)`` or an error."""
    from core.maps import place_points

    analysis, error = analyze_upload(name, data, model, store, k=k)
    if analysis is None:
        return None, None, error
    method = "transform" if len(store) <= PLACE_TRANSFORM_MAX else "knn"
    xy = place_points(store, model.embed_images(analysis.frames), method=method, layout=layout)
    return xy, analysis.times, None


EXPORT_FORMATS: dict[str, str] = {"csv": "text/csv", "jsonl": "application/jsonl"}


def export_rows(table: pd.DataFrame, fmt: str) -> bytes:
    """Selected rows as a downloadable file (the engine decides the columns and encoding)."""
    from core.maps import export_selection

    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; one of {list(EXPORT_FORMATS)}")
    return export_selection(table, fmt=fmt)


# ---- triage --------------------------------------------------------------------------------------
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
    """Per-attribute precision / recall / F1 in schema order."""
    rows = []
    for a in schema.attributes:
        m = report["attributes"].get(a.name)
        if not m:
            continue
        rows.append({"Attribute": a.display, "Precision": m["precision"], "Recall": m["recall"],
                     "F1": m["f1"], "Accuracy": m["accuracy"], "N": m["n"], "Abstained": m["abstained"]})
    return pd.DataFrame(rows)


def per_class_table(report: Mapping[str, Any], schema: Schema, attribute: str) -> pd.DataFrame:
    a = schema[attribute]
    per = report["attributes"][attribute]["per_class"]
    return pd.DataFrame([{"Class": a.display_of(v), "Precision": c["precision"], "Recall": c["recall"],
                          "F1": c["f1"], "Support": c["support"]} for v, c in per.items()])


def index_splits(store: Any) -> list[str]:
    """Splits present in the index, in the usual order."""
    from core.data import SPLITS

    present = set(store.meta["split"].astype(str))
    return [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))


def evaluate_index_split(store: Any, split: str, k: int = 5, progress: Any = None,
                         prompt_space: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Triage metrics for ``split``: see ``core.pipeline.evaluate_index_split`` for the protocol."""
    return pipeline.evaluate_index_split(store, split, k=k, progress=progress, prompt_space=prompt_space)


__all__ = [
    "ACCEPTED_SUFFIXES", "ACCEPTED_TYPES", "CLIP_FPS", "VOTE_SPACE_LABELS", "DEMO_INDEX", "DISPLAY_WIDTH", "ENV_INDEX",
    "ENV_WORKSPACE", "EXPORT_FORMATS", "INDEX_ROOT", "MAX_UPLOAD_MB", "ROOT", "SceneAnalysis",
    "analyze_file", "analyze_index_scene", "analyze_upload", "check_upload", "class_key",
    "default_index", "disagreements", "evaluate_index_split", "export_rows", "failure_table",
    "focus_classes", "focus_values", "index_splits", "is_demo", "list_datasets", "list_indexes",
    "list_models", "load_query_image", "metrics_table", "per_class_table", "place_upload",
    "PLACE_TRANSFORM_MAX", "prepare_demo", "selected_ids", "upload_frames", "vote_frame", "workspace",
]
