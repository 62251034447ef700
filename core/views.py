"""Views: a named, declarative filter over an index's frame table, like FiftyOne's saved views.

A :class:`View` keeps, per field, the values a frame may have: a label value per schema
attribute, its split, its clip, its tags, whether its leave-out vote was right (``vote``) and how
familiar the index finds it (``familiarity``). Empty means "any". Fields combine with AND, values
inside one field with OR. The last two fields exist only when the caller computed them (they cost
a vote over every frame), so they are passed in as per-row arrays.

Every page (Map, Search, Triage) restricts itself to ``view_rows``; the sidebar shows
``value_counts``. Saved views live in the workspace as one JSON file per index, written atomically.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.atomic import atomic_write_text
from core.schema import UNKNOWN, Schema

if TYPE_CHECKING:
    from core.index import IndexStore

# Fields of a view besides the schema's attributes, in sidebar order.
SPLIT, CLIP, TAGS, VOTE, FAMILIARITY = "split", "clip", "tags", "vote", "familiarity"
BASE_FIELDS = (SPLIT, CLIP, TAGS)
DERIVED_FIELDS = (VOTE, FAMILIARITY)  # present only when the caller computed them
TAGS_COLUMN = "tags"  # frame-table column: a frame's tags joined by TAG_SEP ("" for none)
TAG_SEP = ","
UNFAMILIAR, LOW, TYPICAL = "unlike this index", "less familiar", "typical"
LOW_BELOW = 0.25  # familiarity percentile below which a frame reads "less familiar"
VIEWS_FILE_VERSION = 1


class ViewError(ValueError):
    """A view that does not fit the index's schema or fields; the message says what is wrong."""


@dataclass(frozen=True)
class View:
    """A saved filter: ``labels`` maps attribute -> allowed values; other fields their values."""

    name: str = ""
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "labels": {a: list(v) for a, v in self.labels.items() if v},
                "fields": {f: list(v) for f, v in self.fields.items() if v}}

    @property
    def is_empty(self) -> bool:
        return not any(self.labels.values()) and not any(self.fields.values())

    def filters(self) -> dict[str, tuple[str, ...]]:
        """Every non-empty filter keyed by its column name in the frame table (see ``frame_table``)."""
        return {**{a: v for a, v in self.labels.items() if v}, **{f: v for f, v in self.fields.items() if v}}


def make_view(name: str, labels: Mapping[str, Sequence[str]] | None = None,
              fields: Mapping[str, Sequence[str]] | None = None, schema: Schema | None = None) -> View:
    """A View with its values as tuples; checked against ``schema`` when given."""
    view = View(name, {a: tuple(map(str, v)) for a, v in (labels or {}).items() if v},
                {f: tuple(map(str, v)) for f, v in (fields or {}).items() if v})
    if schema is not None:
        check_view(view, schema)
    return view


def check_view(view: View, schema: Schema) -> None:
    """Refuse attributes, values or fields the schema and the view fields do not have."""
    for a, values in view.labels.items():
        if a not in schema.names:
            raise ViewError(f"view {view.name!r}: unknown attribute {a!r}; expected one of {schema.names}")
        bad = [v for v in values if v != UNKNOWN and v not in schema[a].value_names]
        if bad:
            raise ViewError(f"view {view.name!r}: unknown value {bad[0]!r} for {a!r}; "
                            f"expected one of {schema[a].value_names}")
    for f in view.fields:
        if f not in BASE_FIELDS + DERIVED_FIELDS:
            raise ViewError(f"view {view.name!r}: unknown field {f!r}; expected one of "
                            f"{list(BASE_FIELDS + DERIVED_FIELDS)}")


def view_from_dict(d: Mapping[str, Any], schema: Schema) -> View:
    if not isinstance(d, Mapping):
        raise ViewError(f"a view must be an object, got {type(d).__name__}")
    return make_view(str(d.get("name", "")), d.get("labels") or {}, d.get("fields") or {}, schema)


# ---- the frame table that views filter --------------------------------------------------------
def split_tags(text: object) -> list[str]:
    return [t for t in str(text or "").split(TAG_SEP) if t]


def familiarity_band(values: np.ndarray, flag_below: float) -> np.ndarray:
    """Each frame's familiarity percentile as a word (NaN: not measured -> "")."""
    v = np.asarray(values, dtype=np.float64)
    out = np.where(v < flag_below, UNFAMILIAR, np.where(v < LOW_BELOW, LOW, TYPICAL)).astype(object)
    out[~np.isfinite(v)] = ""
    return out


def frame_table(meta: pd.DataFrame, schema: Schema, vote: Sequence[str] | None = None,
                familiarity: Sequence[str] | None = None) -> pd.DataFrame:
    """What views filter: one row per indexed frame, one text column per attribute and field.

    ``tags`` holds the frame's tags joined by ``TAG_SEP``; ``vote`` and ``familiarity`` (per-row
    words, e.g. ``core.maps`` correctness and ``familiarity_band``) are columns only when given.
    """
    cols = {a: meta[a].astype(str).to_numpy() for a in schema.names}
    cols[SPLIT] = meta["split"].astype(str).to_numpy()
    cols[CLIP] = meta["clip_id"].astype(str).to_numpy()
    cols[TAGS] = (meta[TAGS_COLUMN].fillna("").astype(str).to_numpy() if TAGS_COLUMN in meta
                  else np.full(len(meta), "", dtype=object))
    for name, values in ((VOTE, vote), (FAMILIARITY, familiarity)):
        if values is not None:
            if len(values) != len(meta):
                raise ViewError(f"{len(values)} {name} values for {len(meta)} frames")
            cols[name] = np.asarray(values, dtype=object)
    return pd.DataFrame(cols)


def _field_mask(table: pd.DataFrame, column: str, values: Sequence[str]) -> np.ndarray:
    if column not in table:  # a derived field not computed: the filter cannot hold yet
        raise ViewError(f"this view filters on {column!r}, which is not computed for this index yet")
    if column == TAGS:  # a frame matches when it carries any of the tags; few distinct tag sets
        wanted = set(values)
        codes, uniques = pd.factorize(table[TAGS], use_na_sentinel=False)
        hit = np.array([bool(wanted & set(split_tags(u))) for u in uniques], dtype=bool)
        return hit[codes] if len(codes) else np.zeros(0, bool)
    return table[column].isin(list(values)).to_numpy()


def _masks(table: pd.DataFrame, view: View) -> dict[str, np.ndarray]:
    return {column: _field_mask(table, column, values) for column, values in view.filters().items()}


def _combine(masks: Mapping[str, np.ndarray], n: int, skip: str | None = None) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    for column, m in masks.items():
        if column != skip:
            mask &= m
    return mask


def view_mask(table: pd.DataFrame, view: View, skip: str | None = None) -> np.ndarray:
    """Which rows of ``table`` the view keeps (``skip``: ignore that one field's filter)."""
    return _combine(_masks(table, view), len(table), skip)


def view_rows(table: pd.DataFrame, view: View) -> np.ndarray:
    """Index row ids the view keeps, ascending (int64)."""
    return np.flatnonzero(view_mask(table, view)).astype(np.int64)


def value_counts(table: pd.DataFrame, view: View, columns: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
    """Per column, how many frames hold each value among the frames the view's OTHER filters keep.

    Counting a field without its own filter (facet counts) shows what picking another value of it
    would add, as FiftyOne's sidebar does; the counts follow every other field's filter.
    """
    out: dict[str, dict[str, int]] = {}
    masks = _masks(table, view)  # each field's mask once; a column's counts AND the others'
    for column in columns or list(table.columns):
        keep = _combine(masks, len(table), skip=column)
        counts = pd.Series(table[column].to_numpy()[keep], dtype=object).value_counts()
        if column == TAGS:  # counts of each distinct tag set, spread over its tags
            spread: dict[str, int] = {}
            for text, c in counts.items():
                for t in split_tags(text):
                    spread[t] = spread.get(t, 0) + int(c)
            out[column] = dict(sorted(spread.items(), key=lambda kv: -kv[1]))
        else:
            out[column] = {str(k): int(v) for k, v in counts.items()}
    return out


# ---- derived fields -----------------------------------------------------------------------------
def index_familiarity(store: IndexStore) -> np.ndarray:
    """Each indexed frame's familiarity percentile, measured as the calibration was (its ``k``
    nearest frames of other clips, ``core.familiarity``'s neighbour similarity)."""
    from core.familiarity import calibration_of, familiarity
    from core.neighbours import neighbours

    cal = calibration_of(store)
    x = np.asarray(store.embeddings(), dtype=np.float32)
    rows = np.arange(len(x))
    sims, _ = neighbours(store, x, int(cal["k"]), exclude="clip", query_rows=rows)
    return familiarity(cal, sims)


# ---- saved views in the workspace ---------------------------------------------------------------
def views_path(workspace: str | Path, index_dir: str | Path) -> Path:
    """The JSON file holding an index's saved views: ``<workspace>/views/<index name>-<hash>.json``."""
    import hashlib

    resolved = str(Path(index_dir).resolve())
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(resolved).name)[:60] or "index"
    return Path(workspace) / "views" / f"{slug}-{hashlib.sha1(resolved.encode()).hexdigest()[:10]}.json"


def load_views(path: str | Path, schema: Schema) -> dict[str, View]:
    """Saved views by name ({} when none); a bad file or view raises ViewError naming the file."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        items = raw["views"]
        return {str(d["name"]): view_from_dict(d, schema) for d in items}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ViewError(f"{path}: cannot read saved views ({e})") from None


def _write_views(path: Path, views: Mapping[str, View], index_dir: str | Path | None) -> None:
    doc = {"version": VIEWS_FILE_VERSION, "index": str(index_dir or ""),
           "views": [v.to_dict() for v in views.values()]}
    atomic_write_text(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def save_view(path: str | Path, view: View, schema: Schema, index_dir: str | Path | None = None) -> dict[str, View]:
    """Add or replace ``view`` (by name) in the file, atomically; returns every saved view."""
    name = view.name.strip()
    if not name:
        raise ViewError("a saved view needs a name")
    check_view(view, schema)
    views = load_views(path, schema)
    views[name] = View(name, view.labels, view.fields)
    _write_views(Path(path), views, index_dir)
    return views


def delete_view(path: str | Path, name: str, schema: Schema, index_dir: str | Path | None = None) -> dict[str, View]:
    views = load_views(path, schema)
    if views.pop(name, None) is not None:
        _write_views(Path(path), views, index_dir)
    return views


__all__ = [
    "BASE_FIELDS", "CLIP", "DERIVED_FIELDS", "FAMILIARITY", "LOW", "SPLIT", "TAGS", "TAGS_COLUMN", "TAG_SEP", "TYPICAL",
    "UNFAMILIAR", "VOTE", "View", "ViewError", "check_view", "delete_view", "familiarity_band", "frame_table",
    "index_familiarity", "load_views", "make_view", "save_view", "split_tags", "value_counts", "view_from_dict",
    "view_mask", "view_rows", "views_path",
]
