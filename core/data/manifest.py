"""Dataset manifests: a folder plus a JSONL or Parquet table of frames and their labels."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from core.atomic import atomic_path
from core.jsonl import read_jsonl
from core.quote import one_line, quote
from core.schema import UNKNOWN, Schema, SchemaError, default_schema

MANIFEST_NAMES = ("manifest.jsonl", "manifest.parquet")
BASE_COLUMNS = ("path", "clip_id", "frame_index", "timestamp_s", "split")
SPLITS = ("train", "val", "test")
MAX_FRAME_INDEX = 2**63 - 1  # frame tables store it as int64; 2**63 would wrap to a negative number
MAX_NUMBER_TEXT = 40  # characters: longer text is no number a frame table can hold
NAME_MAX, PATH_MAX = 255, 4096  # bytes of one path part / a whole path (Linux limits)
Rows = list[dict[str, Any]]


class ManifestError(ValueError):
    """A manifest or one of its rows is wrong; the message names the file and row."""


@dataclass
class Dataset:
    """A dataset root and its manifest table (one row per frame)."""

    root: Path
    frames: pd.DataFrame
    schema: Schema

    def __len__(self) -> int:
        return len(self.frames)

    def split(self, name: str | None) -> Dataset:
        if name in (None, "all"):
            return self
        sub = self.frames[self.frames["split"] == name].reset_index(drop=True)
        return Dataset(self.root, sub, self.schema)

    def abspath(self, rel: str) -> Path:
        return resolve_inside(self.root, rel)

    def labels(self, i: int) -> dict[str, str]:
        row = self.frames.iloc[i]
        return {a: str(row[a]) for a in self.schema.names}

    def label_matrix(self) -> pd.DataFrame:
        return self.frames[self.schema.names].astype(str)


def resolve_inside(root: str | Path, rel: str) -> Path:
    """Resolve ``rel`` under ``root``; refuse absolute paths and paths that escape the root."""
    check_path_text(rel)
    root_r = Path(root).resolve()
    if Path(rel).is_absolute():
        raise ManifestError(f"path {quote(rel)} must be relative to the dataset root {root}")
    p = (root_r / rel).resolve()
    if p != root_r and root_r not in p.parents:
        raise ManifestError(f"path {quote(rel)} escapes the dataset root {root}")
    return p


def check_path_text(rel: object) -> None:
    """Refuse a path the filesystem cannot take (before any syscall turns it into a bare OSError)."""
    if not isinstance(rel, str) or not rel:
        raise ManifestError(f"path must be non-empty text, got {quote(rel)}")
    if "\0" in rel:
        raise ManifestError(f"path {quote(rel)} contains a NUL byte")
    try:
        raw = rel.encode("utf-8")
    except UnicodeEncodeError:
        raise ManifestError(f"path {quote(rel)} is not valid Unicode (a lone surrogate)") from None
    if len(raw) > PATH_MAX:
        raise ManifestError(f"path {quote(rel)} is {len(raw)} bytes long (the limit is {PATH_MAX})")
    for part in raw.split(b"/"):
        if len(part) > NAME_MAX:
            raise ManifestError(
                f"path {quote(rel)} has a part of {len(part)} bytes (file names are limited to {NAME_MAX})"
            )


def find_manifest(root: str | Path) -> Path:
    root = Path(root)
    for name in MANIFEST_NAMES:
        if (root / name).exists():
            return root / name
    raise ManifestError(f"{root}: no manifest ({' or '.join(MANIFEST_NAMES)}) found")


def validate_rows(
    rows: Iterable[Mapping],
    root: str | Path,
    schema: Schema,
    origin: str,
    check_files: bool = True,
    row_numbers: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Check every row and return them as a table; the first bad row raises ManifestError.

    ``row_numbers`` gives each row's number in its source file (a CSV header or blank JSONL
    lines shift it), so the error points at the line the user has to fix. This is the one check
    that both ``import`` and ``index`` apply: besides each row, paths must be unique and either
    every row gives a split or none does (then all are train, or the importer assigns them).
    """
    out = []
    seen: dict[str, int | str] = {}
    first_split: tuple[int, bool] | None = None  # (row, whether it gave a split)
    for i, row in enumerate(rows, start=1):
        n = row_numbers[i - 1] if row_numbers is not None else i
        where = f"{origin} row {n}"
        try:
            rec = _check_row(row, root, schema, check_files)
        except ManifestError as e:
            raise ManifestError(f"{where}: {e}") from None
        given = not _missing(row.get("split"))
        if first_split is None:
            first_split = (n, given)
        elif given != first_split[1]:
            this, other = ("no split", "has one") if first_split[1] else ("a split", "has none")
            raise ManifestError(
                f"{where}: {this}, but row {first_split[0]} {other} (give all rows a split or none)"
            )
        key = str(PurePosixPath(rec["path"]))
        if key in seen:
            raise ManifestError(f"{where}: duplicate path {quote(rec['path'])} (first at row {seen[key]})")
        seen[key] = n
        out.append(rec)
    if not out:
        raise ManifestError(f"{origin}: no rows")
    return pd.DataFrame(out, columns=list(BASE_COLUMNS) + schema.names)


def _missing(v: object) -> bool:
    """An absent cell: JSON null, an empty CSV cell or a Parquet null (never NaN: that is a value)."""
    return v is None or (isinstance(v, str) and not v.strip())


def _text(v: object, what: str) -> str:
    if isinstance(v, bool) or not isinstance(v, str | numbers.Integral):
        raise ManifestError(f"{what} must be text, got {type(v).__name__} {quote(v)}")
    text = str(v) if not isinstance(v, str) else v
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ManifestError(f"{what} {quote(v)} is not valid Unicode (a lone surrogate)") from None
    return text


def _number(v: object, what: str) -> float | int:
    """A real number from a JSON/Parquet number or CSV text; refuses bools, objects and long text."""
    if isinstance(v, bool) or v is None:
        raise ManifestError(f"{what} must be a number, got {quote(v)}")
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real) or type(v).__name__ == "Decimal":
        return float(v)
    if isinstance(v, str):
        t = v.strip()
        if len(t) > MAX_NUMBER_TEXT:
            raise ManifestError(f"{what} {quote(v)} is too long to be a number")
        try:
            return int(t)
        except ValueError:
            pass
        try:
            return float(t)
        except ValueError:
            pass
    raise ManifestError(f"{what} must be a number, got {type(v).__name__} {quote(v)}")


def frame_index_value(v: object) -> int:
    """``frame_index`` as an int in [0, 2**63 - 1]; 1.7, NaN, 1e20, True or {} are refused."""
    if _missing(v):
        return 0
    x = _number(v, "frame_index")
    if isinstance(x, float):
        if not math.isfinite(x) or not x.is_integer():
            raise ManifestError(f"frame_index must be a whole number, got {quote(v)}")
        x = int(x)
    if not 0 <= x <= MAX_FRAME_INDEX:
        raise ManifestError(f"frame_index {quote(v)} is out of range (0 to 2**63-1)")
    return x


def timestamp_value(v: object) -> float:
    """``timestamp_s`` as a finite float >= 0; NaN, +-Infinity, huge or negative ones are refused."""
    if _missing(v):
        return 0.0
    x = _number(v, "timestamp_s")
    try:
        f = float(x)
    except OverflowError:
        raise ManifestError(f"timestamp_s {quote(v)} is out of range") from None
    if not math.isfinite(f):
        raise ManifestError(f"timestamp_s must be a finite number of seconds, got {quote(v)}")
    if f < 0:
        raise ManifestError(f"timestamp_s must be >= 0, got {quote(v)}")
    return f


def _check_row(row: object, root: str | Path, schema: Schema, check_files: bool) -> dict[str, Any]:
    """One frame row checked and normalised; ManifestError says what is wrong (without the row)."""
    if not isinstance(row, Mapping):
        raise ManifestError(f"expected an object with columns, got {type(row).__name__}")
    for col in ("path",) + tuple(schema.names):
        if col not in row or _missing(row[col]):
            raise ManifestError(f"missing {col!r}")
    if not isinstance(row["path"], str):
        raise ManifestError(f"path must be text, got {type(row['path']).__name__} {quote(row['path'])}")
    path = row["path"]
    p = resolve_inside(root, path)
    if check_files:
        try:
            found = p.is_file()
        except OSError as e:  # e.g. a symlink loop, or a name the filesystem refuses
            raise ManifestError(f"cannot check file {quote(path)} ({e.strerror or e})") from None
        if not found:
            raise ManifestError(f"file not found: {quote(path)}")
    labels: dict[str, str] = {}
    for a in schema:
        val = _text(row[a.name], a.name)
        if val != UNKNOWN and val not in a.value_names:
            raise ManifestError(f"unknown value {quote(val)} for attribute {a.name!r}; expected one of {a.value_names}")
        labels[a.name] = val
    try:
        schema.check(labels, allow_unknown=True)
    except SchemaError as e:
        raise ManifestError(one_line(str(e))) from None
    split = "train" if _missing(row.get("split")) else _text(row["split"], "split")
    if split not in SPLITS:
        raise ManifestError(f"split {quote(split)} is not one of {SPLITS}")
    clip = row.get("clip_id")
    return {
        "path": path,
        "clip_id": Path(path).stem if _missing(clip) else _text(clip, "clip_id"),
        "frame_index": frame_index_value(row.get("frame_index")),
        "timestamp_s": timestamp_value(row.get("timestamp_s")),
        "split": split,
        **labels,
    }


def check_frame_numbers(frames: pd.DataFrame, origin: str) -> None:
    """Re-check a frame table's numeric columns (a Dataset built in code skips read_manifest)."""
    for col, check in (("frame_index", frame_index_value), ("timestamp_s", timestamp_value)):
        if col not in frames.columns:
            continue
        for i, v in enumerate(frames[col].tolist(), start=1):
            try:
                check(v)
            except ManifestError as e:
                raise ManifestError(f"{origin} row {i}: {e}") from None


# ---- reading manifest files -----------------------------------------------------------------
def read_jsonl_rows(path: Path) -> tuple[Rows, list[int], list[str]]:
    """Rows of a JSONL file (:func:`core.jsonl.read_jsonl`), their line numbers, and the keys seen."""
    rows, numbers_ = read_jsonl(path, ManifestError)
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return rows, numbers_, list(columns)


def read_parquet_rows(path: Path) -> tuple[Rows, list[int], list[str]]:
    """Rows of a Parquet file as Python values: nulls are absent, NaN stays NaN, uint64 stays exact."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        rows = table.to_pylist()
    except Exception as e:  # pyarrow raises several unrelated types for a torn file
        raise ManifestError(f"{path}: cannot read Parquet ({one_line(str(e), 120)})") from None
    rows = [{k: v for k, v in r.items() if v is not None} for r in rows]
    return rows, list(range(1, len(rows) + 1)), [str(c) for c in table.column_names]


def read_manifest(
    root: str | Path, schema: Schema | None = None, check_files: bool = True
) -> Dataset:
    """Read and validate ``root``'s manifest."""
    schema = schema or default_schema()
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: dataset folder not found")
    mpath = find_manifest(root)
    read = read_parquet_rows if mpath.suffix == ".parquet" else read_jsonl_rows
    rows, numbers_, _ = read(mpath)
    frames = validate_rows(rows, root, schema, str(mpath), check_files=check_files, row_numbers=numbers_)
    return Dataset(root, frames, schema)


def write_manifest(
    root: str | Path,
    rows: Iterable[Mapping],
    schema: Schema | None = None,
    fmt: str = "jsonl",
    check_files: bool = True,
    origin: str = "input",
    row_numbers: Sequence[int] | None = None,
) -> Path:
    """Validate ``rows`` and write the manifest atomically (nothing is written on a bad row).

    ``origin`` and ``row_numbers`` name the source file and its line numbers in errors.
    """
    schema = schema or default_schema()
    root = Path(root)
    name = {"jsonl": "manifest.jsonl", "parquet": "manifest.parquet"}.get(fmt)
    if name is None:
        raise ManifestError(f"unknown manifest format {fmt!r} (jsonl or parquet)")
    frames = validate_rows(
        list(rows), root, schema, origin, check_files=check_files, row_numbers=row_numbers
    )
    target = root / name
    with atomic_path(target) as tmp:
        if fmt == "parquet":
            frames.to_parquet(tmp, index=False)
        else:
            tmp.write_text(frames.to_json(orient="records", lines=True))
    for other in MANIFEST_NAMES:
        if other != name and (root / other).exists():
            (root / other).unlink()
    return target


__all__ = [
    "BASE_COLUMNS", "MAX_FRAME_INDEX", "Dataset", "ManifestError", "SPLITS", "UNKNOWN", "check_frame_numbers",
    "check_path_text", "find_manifest", "frame_index_value", "read_jsonl_rows", "read_manifest",
    "read_parquet_rows", "resolve_inside", "timestamp_value", "validate_rows", "write_manifest",
]
