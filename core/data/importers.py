"""Turn labelled folders from other tools and datasets into SceneScope manifests.

Every importer validates the whole input first and writes the manifest atomically at the end:
one bad row (missing file, unknown value, path outside the root, malformed line) fails the
import with an error naming the file and row, and leaves any existing manifest untouched.
Row numbers are line numbers in the input file (a CSV's header is row 1, as in a spreadsheet).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from core.data.manifest import (
    BASE_COLUMNS,
    ManifestError,
    read_jsonl_rows,
    read_parquet_rows,
    validate_rows,
    write_manifest,
)
from core.data.splits import SplitError, assign_splits, check_grouped
from core.jsonl import read_json
from core.quote import one_line, quote
from core.schema import UNKNOWN, Attribute, Schema, SchemaError, default_schema

BDD100K_SOURCE = "bdd100k"
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
SENTENCE_COLUMN = "sentence"

Rows = list[dict[str, Any]]


# ---- reading input tables --------------------------------------------------------------------
def _locate(root: Path, path: str | Path) -> Path:
    """An input file as given, or (if it does not exist and is relative) inside the root."""
    p = Path(path)
    if not p.exists() and not p.is_absolute() and (root / p).exists():
        return root / p
    if not p.is_file():
        raise ManifestError(f"{p}: labels file not found")
    return p


def _read_rows(path: Path) -> tuple[Rows, list[int], list[str]]:
    """Rows of a CSV/TSV/JSONL/Parquet table, their line numbers, and the column names."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".tab", ".txt"):
        return _read_delimited(path, "," if suffix == ".csv" else "\t")
    if suffix in (".jsonl", ".ndjson", ".json"):
        return read_jsonl_rows(path)
    if suffix == ".parquet":
        return read_parquet_rows(path)
    raise ManifestError(f"{path}: unsupported table type {suffix!r} (csv, tsv, jsonl or parquet)")


def _read_delimited(path: Path, delimiter: str) -> tuple[Rows, list[int], list[str]]:
    rows: Rows = []
    numbers: list[int] = []
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise ManifestError(f"{path}: cannot read ({e.strerror or e})") from None
    with f:
        reader = csv.DictReader(f, delimiter=delimiter)
        try:
            columns = [c.strip() for c in reader.fieldnames or []]
            reader.fieldnames = columns
            for row in reader:
                # line_num is the last line the row used: right for blank-line gaps, and for a
                # quoted multi-line cell it points at the row's end.
                n = reader.line_num
                if None in row:
                    raise ManifestError(f"{path} row {n}: more cells than the header has columns")
                # Empty cells count as absent so optional columns fall back to their defaults.
                rows.append({k: v.strip() for k, v in row.items() if v is not None and v.strip()})
                numbers.append(n)
        except UnicodeDecodeError as e:
            raise ManifestError(f"{path} row {reader.line_num + 1}: not UTF-8 text ({e.reason})") from None
        except csv.Error as e:
            raise ManifestError(f"{path} row {reader.line_num}: cannot read table ({one_line(str(e), 80)})") from None
    return rows, numbers, columns


# ---- shared finishing ------------------------------------------------------------------------
def _match_value(attr: Attribute, raw: object) -> object:
    """Accept a value by its name, display name or sentence word, ignoring case and spaces."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    if text == UNKNOWN or text in attr.value_names:
        return text
    key = text.lower()
    for v in attr.values:
        if key in (v.name.lower(), v.display.lower(), v.sentence.lower()):
            return v.name
    if key == UNKNOWN:
        return UNKNOWN
    # Left as given: validation then reports the unknown value with its row number.
    return text


def _finish(
    root: Path,
    rows: Rows,
    numbers: Sequence[int],
    origin: str,
    schema: Schema,
    fmt: str,
    fractions: Sequence[float],
    seed: int,
) -> Path:
    """Validate, split by clip when the input has no splits, and write the manifest."""
    if not rows:
        raise ManifestError(f"{origin}: no rows")
    frames = validate_rows(rows, root, schema, origin, row_numbers=numbers)  # splits: all or none
    if any(r.get("split") for r in rows):
        try:
            check_grouped(frames)
        except SplitError as e:
            raise ManifestError(f"{origin}: {e}") from None
    else:
        frames = assign_splits(frames, fractions=fractions, seed=seed)
    return write_manifest(
        root, frames.to_dict("records"), schema, fmt=fmt, check_files=False, origin=origin,
        row_numbers=numbers,
    )


def _base_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    return {c: row[c] for c in BASE_COLUMNS if c in row}


def _import_rows(
    root: str | Path,
    labels_path: str | Path,
    schema: Schema | None,
    fmt: str,
    fractions: Sequence[float],
    seed: int,
    required: Sequence[str],
    labels_of: Callable[[dict[str, Any], str], dict[str, Any]],
) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: dataset folder not found")
    src = _locate(root, labels_path)
    origin = str(src)
    raw, numbers, columns = _read_rows(src)
    missing = [c for c in required if c not in columns]
    if missing:
        raise ManifestError(f"{origin}: missing column(s) {missing} (has {columns})")
    rows = [
        {**_base_fields(r), **labels_of(r, f"{origin} row {n}")} for r, n in zip(raw, numbers, strict=True)
    ]
    return _finish(root, rows, numbers, origin, schema or default_schema(), fmt, fractions, seed)


# ---- importers -------------------------------------------------------------------------------
def import_table(
    root: str | Path,
    table_path: str | Path,
    schema: Schema | None = None,
    fmt: str = "jsonl",
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> Path:
    """Import a CSV/TSV/JSONL/Parquet table with ``path`` and one column per schema attribute.

    Optional columns: clip_id, frame_index, timestamp_s, split. Values may be written as the
    schema's value names or display names (any case), or ``unknown``. Paths are relative to
    ``root``. Without a split column, splits are assigned by clip (see ``assign_splits``).
    Returns the manifest path.
    """
    schema = schema or default_schema()

    def labels_of(row: dict[str, Any], where: str) -> dict[str, Any]:
        return {a.name: _match_value(a, row[a.name]) for a in schema if a.name in row}

    required = ["path", *schema.names]
    return _import_rows(root, table_path, schema, fmt, fractions, seed, required, labels_of)


def import_hsd(
    root: str | Path,
    labels_path: str | Path,
    schema: Schema | None = None,
    fmt: str = "jsonl",
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> Path:
    """Import Honda Scenes-style sentence labels: a table with ``path`` and ``sentence``.

    Each sentence ("Approaching Construction zone on highway road in cloudy weather on dry
    surface") is parsed by ``schema.from_sentence``; attributes it leaves out are unknown.
    """
    schema = schema or default_schema()

    def labels_of(row: dict[str, Any], where: str) -> dict[str, Any]:
        sentence = row.get(SENTENCE_COLUMN)
        if not isinstance(sentence, str) or not sentence.strip():
            raise ManifestError(f"{where}: missing {SENTENCE_COLUMN!r}")
        try:
            return schema.from_sentence(sentence)
        except SchemaError as e:
            raise ManifestError(f"{where}: {e}") from None

    required = ["path", SENTENCE_COLUMN]
    return _import_rows(root, labels_path, schema, fmt, fractions, seed, required, labels_of)


def _lookup(item: Mapping[str, Any], key_path: str) -> object:
    node: object = item
    for key in key_path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def import_bdd100k(
    root: str | Path,
    labels_json: str | Path,
    images_subdir: str = "images",
    schema: Schema | None = None,
    fmt: str = "jsonl",
    split: str | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> Path:
    """Import a BDD100K label JSON (a list of ``{name, attributes: {...}, ...}``).

    Images are ``root/images_subdir/name``. Each attribute with a ``sources: {bdd100k: key.path}``
    entry is read from that key path and mapped with ``Attribute.from_alias``; unmapped values
    (e.g. "undefined") and attributes without a BDD100K source become unknown. BDD100K images
    come from distinct videos, so each is its own clip. ``split`` (one of train/val/test) labels
    every row, since BDD100K ships its own split files; otherwise splits are assigned.
    """
    schema = schema or default_schema()
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: dataset folder not found")
    src = _locate(root, labels_json)
    origin = str(src)
    items = read_json(src, ManifestError)
    if not isinstance(items, list):
        raise ManifestError(f"{origin}: expected a JSON list of image labels, got {type(items).__name__}")
    sub = PurePosixPath(images_subdir) if images_subdir else PurePosixPath()
    rows: Rows = []
    for n, item in enumerate(items, start=1):
        where = f"{origin} row {n}"
        if not isinstance(item, dict):
            raise ManifestError(f"{where}: expected an object, got {type(item).__name__}")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ManifestError(f"{where}: missing 'name'")
        if PurePosixPath(name).is_absolute() or Path(name).is_absolute():
            raise ManifestError(f"{where}: path {quote(name)} must be relative to {sub or 'the root'}")
        row: dict[str, Any] = {"path": str(sub / name), "clip_id": PurePosixPath(name).stem}
        if split is not None:
            row["split"] = split
        for a in schema:
            key_path = a.sources.get(BDD100K_SOURCE)
            raw = _lookup(item, key_path) if key_path else None
            row[a.name] = a.from_alias(BDD100K_SOURCE, raw) if isinstance(raw, str) else UNKNOWN
        rows.append(row)
    return _finish(root, rows, list(range(1, len(rows) + 1)), origin, schema, fmt, fractions, seed)


__all__ = ["BDD100K_SOURCE", "import_bdd100k", "import_hsd", "import_table"]
