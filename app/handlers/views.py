"""Views and acting on results: the filter every page follows, saved views, corrections, tags,
split moves and exports of a selection (``core.views``, ``core.corrections``, ``core.export``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core import views as core_views
from core.schema import Schema
from core.views import View, ViewError

if TYPE_CHECKING:
    from core.types import IndexStore, SceneModel

FIELD_WORDS = {core_views.SPLIT: "Split", core_views.CLIP: "Clip", core_views.TAGS: "Tags",
               core_views.VOTE: "Vote (leave-out k-NN)", core_views.FAMILIARITY: "Familiarity"}
STALE_NOTE = ("Votes, maps' correctness colours and Triage metrics computed before this change are stale: "
              "they are keyed by the index's labels version and recomputed on the next view.")
ActionResult = tuple[bool, str]  # (done, a sentence for the user)


# ---- views -------------------------------------------------------------------------------------
def view_fields(schema: Schema, derived: bool = False) -> list[str]:
    """The sidebar's fields in order: split, clip, tags, each attribute, then vote and familiarity."""
    return [*core_views.BASE_FIELDS, *schema.names, *(core_views.DERIVED_FIELDS if derived else ())]


def field_label(name: str, schema: Schema) -> str:
    return FIELD_WORDS.get(name) or schema[name].display


def value_label(name: str, value: str, schema: Schema) -> str:
    if name in schema.names:
        return schema.display(name, value)
    return value or "(none)"


def view_table(store: IndexStore, k: int = 5, derived: bool = False) -> pd.DataFrame:
    """The frame table views filter; ``derived`` adds vote correctness and familiarity (a
    leave-out vote over every frame, as the Map's correctness colours, and a neighbour search)."""
    if not derived:
        return core_views.frame_table(store.meta, store.schema)
    from app.handlers.map import map_categories
    from core.familiarity import FLAG_BELOW, calibration_of
    from core.maps import COLOR_CORRECT

    vote = map_categories(store, COLOR_CORRECT, k=k)
    flag = float(calibration_of(store).get("flag_below", FLAG_BELOW))
    fam = core_views.familiarity_band(core_views.index_familiarity(store), flag)
    return core_views.frame_table(store.meta, store.schema, vote=vote, familiarity=fam)


def make_view(name: str, labels: Mapping[str, Sequence[str]], fields: Mapping[str, Sequence[str]],
              schema: Schema) -> View:
    return core_views.make_view(name, labels, fields, schema)


def view_from_filters(name: str, filters: Mapping[str, Sequence[str]], schema: Schema) -> View:
    """A View from one dict of field -> values (attributes and other fields mixed, as the sidebar has them)."""
    labels = {f: v for f, v in filters.items() if f in schema.names}
    return core_views.make_view(name, labels, {f: v for f, v in filters.items() if f not in schema.names}, schema)


def view_rows(table: pd.DataFrame, view: View) -> np.ndarray:
    return core_views.view_rows(table, view)


def view_counts(table: pd.DataFrame, view: View) -> dict[str, dict[str, int]]:
    return core_views.value_counts(table, view)


def views_file(index_dir: str | Path) -> Path:
    from core.workspace import workspace

    return core_views.views_path(workspace(), index_dir)


def saved_views(index_dir: str | Path, schema: Schema) -> tuple[dict[str, View], str | None]:
    """The index's saved views and an error sentence (a bad file lists none instead of failing)."""
    try:
        return core_views.load_views(views_file(index_dir), schema), None
    except ViewError as e:
        return {}, str(e)


def save_view(index_dir: str | Path, view: View, schema: Schema) -> ActionResult:
    try:
        core_views.save_view(views_file(index_dir), view, schema, index_dir=index_dir)
    except (ViewError, OSError) as e:
        return False, str(e)
    return True, f"Saved view “{view.name.strip()}”."


def delete_view(index_dir: str | Path, name: str, schema: Schema) -> ActionResult:
    try:
        core_views.delete_view(views_file(index_dir), name, schema, index_dir=index_dir)
    except (ViewError, OSError) as e:
        return False, str(e)
    return True, f"Deleted view “{name}”."


def search_in_view(model: SceneModel, store: IndexStore, query: Any, rows: np.ndarray, k: int) -> pd.DataFrame:
    """``search_scenes`` among the view's rows only (the one neighbour search, ``among=rows``)."""
    from core.neighbours import neighbours
    from core.search import HIT_BASE

    if isinstance(query, str):
        if not query.strip():
            raise ValueError("empty search text: describe the scene to look for")
        q = model.embed_texts([query.strip()])
    else:
        q = model.embed_images([query])
    sims, ids = neighbours(store, np.asarray(q, np.float32), int(k), among=np.asarray(rows, np.int64))
    keep = ids[0] >= 0
    ids, sims = ids[0][keep], sims[0][keep]
    df = store.meta.iloc[ids][list(HIT_BASE) + list(store.schema.names)].reset_index(drop=True)
    df.insert(0, "similarity", sims.astype(np.float32))
    df.insert(0, "id", ids.astype(np.int64))
    return df


# ---- acting on results --------------------------------------------------------------------------
def _target(store: IndexStore, rows: Sequence[int]) -> tuple[Path, Path | None, list[str]]:
    return store.data_root, store.path, store.paths_of(np.asarray(rows, np.int64))


def _act(fn: Any, done: str) -> ActionResult:
    from core.corrections import CorrectionError
    from core.data.manifest import ManifestError

    try:
        record = fn()
    except (CorrectionError, ManifestError, OSError) as e:
        return False, str(e)
    if record is None:
        return True, "Nothing to change."
    from app.words import count

    return True, f"{done} ({count(len(record['rows']), 'frame')}, change {record['version']}). {STALE_NOTE}"


def correct_labels(store: IndexStore, rows: Sequence[int], labels: Mapping[str, str]) -> ActionResult:
    """Set ``labels`` (attribute -> value) on the index rows ``rows``, in the dataset's manifest
    (with history) and the index's frame table."""
    from core import corrections

    root, index, paths = _target(store, rows)
    names = ", ".join(f"{store.schema[a].display} → {store.schema.display(a, v)}" for a, v in labels.items())
    return _act(lambda: corrections.correct_labels(root, paths, labels, store.schema, index_dir=index),
                f"Corrected {names}")


def tag_rows(store: IndexStore, rows: Sequence[int], add: Sequence[str] = (), remove: Sequence[str] = ()) -> ActionResult:
    from core import corrections

    root, index, paths = _target(store, rows)
    return _act(lambda: corrections.tag_rows(root, paths, add, remove, store.schema, index_dir=index),
                "Tags changed")


def move_to_split(store: IndexStore, rows: Sequence[int], split: str) -> ActionResult:
    from core import corrections

    root, index, paths = _target(store, rows)
    return _act(lambda: corrections.set_split(root, paths, split, store.schema, index_dir=index),
                f"Moved to the {split} split")


def undo_last(store: IndexStore) -> ActionResult:
    """Undo the dataset's newest change; the manifest gets back its exact previous bytes."""
    from core import corrections

    return _act(lambda: corrections.undo_last(store.data_root, store.schema, index_dir=store.path), "Undone")


def last_change(store: IndexStore) -> str | None:
    """The change "Undo" would undo, in words (None when there is none)."""
    from core.corrections import last_change as last

    try:
        rec = last(store.data_root)
    except OSError:
        return None
    if rec is None:
        return None
    what = {"correct": "label correction", "tag": "tags", "split": "split move"}.get(rec.get("op"), rec.get("op"))
    return f"change {rec['version']}: {what} on {len(rec['rows'])} frames ({rec.get('time', '')})"


def labels_version(store: IndexStore) -> int:
    """The index's labels version (bumped by every correction): part of every cache key."""
    return int((store.manifest or {}).get("labels_version", 0))


def splits() -> list[str]:
    from core.data import SPLITS

    return list(SPLITS)


def export_frames(store: IndexStore, rows: Sequence[int]) -> bytes:
    """The selected frames as a ZIP: ``frames/...`` copied as they are plus a ``manifest.jsonl``
    (labels, split, clip) that ``scenescope import``/``index`` read as a dataset, for labelling."""
    from core.export import export_frames_zip

    return export_frames_zip(store, np.asarray(rows, np.int64))


def save_as_dataset(store: IndexStore, rows: Sequence[int], name: str) -> ActionResult:
    """Write the selected frames as a new dataset folder in the workspace (frames + manifest)."""
    from core.export import export_frames_folder
    from core.workspace import workspace

    try:
        out = export_frames_folder(store, np.asarray(rows, np.int64), workspace() / name)
    except (ValueError, OSError) as e:
        return False, str(e)
    return True, f"Wrote {len(rows)} frames to {out} (a dataset: index it with `scenescope index --data {out}`)."


__all__ = [
    "STALE_NOTE", "View", "correct_labels", "delete_view", "export_frames", "field_label", "labels_version",
    "last_change", "make_view", "move_to_split", "save_as_dataset", "save_view", "saved_views", "search_in_view",
    "splits", "tag_rows", "undo_last", "value_label", "view_counts", "view_fields", "view_from_filters",
    "view_rows", "view_table", "views_file",
]
