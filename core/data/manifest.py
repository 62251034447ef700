"""Dataset manifests: a folder plus a JSONL or Parquet table of frames and their labels."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.atomic import atomic_path
from core.schema import UNKNOWN, Schema, SchemaError, default_schema

MANIFEST_NAMES = ("manifest.jsonl", "manifest.parquet")
BASE_COLUMNS = ("path", "clip_id", "frame_index", "timestamp_s", "split")
SPLITS = ("train", "val", "test")


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
    root_r = Path(root).resolve()
    if not rel or Path(rel).is_absolute():
        raise ManifestError(f"path {rel!r} must be relative to the dataset root {root}")
    p = (root_r / rel).resolve()
    if p != root_r and root_r not in p.parents:
        raise ManifestError(f"path {rel!r} escapes the dataset root {root}")
    return p


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
    lines shift it), so the error points at the line the user has to fix.
    """
    out = []
    for i, row in enumerate(rows, start=1):
        where = f"{origin} row {row_numbers[i - 1] if row_numbers is not None else i}"
        if not isinstance(row, Mapping):
            raise ManifestError(f"{where}: expected an object with columns, got {type(row).__name__}")
        for col in ("path",) + tuple(schema.names):
            if col not in row or row[col] in (None, ""):
                raise ManifestError(f"{where}: missing {col!r}")
        try:
            p = resolve_inside(root, str(row["path"]))
        except ManifestError as e:
            raise ManifestError(f"{where}: {e}") from None
        if check_files and not p.is_file():
            raise ManifestError(f"{where}: file not found: {row['path']}")
        labels = {a: str(row[a]) for a in schema.names}
        try:
            schema.check(labels, allow_unknown=True)
        except SchemaError as e:
            raise ManifestError(f"{where}: {e}") from None
        split = str(row.get("split") or "train")
        if split not in SPLITS:
            raise ManifestError(f"{where}: split {split!r} is not one of {SPLITS}")
        try:
            frame_index = int(row.get("frame_index") or 0)
            timestamp_s = float(row.get("timestamp_s") or 0.0)
        except (TypeError, ValueError) as e:
            raise ManifestError(f"{where}: frame_index/timestamp_s must be numbers ({e})") from None
        rec = {
            "path": str(row["path"]),
            "clip_id": str(row.get("clip_id") or Path(str(row["path"])).stem),
            "frame_index": frame_index,
            "timestamp_s": timestamp_s,
            "split": split,
            **labels,
        }
        out.append(rec)
    if not out:
        raise ManifestError(f"{origin}: no rows")
    return pd.DataFrame(out, columns=list(BASE_COLUMNS) + schema.names)


def read_manifest(
    root: str | Path, schema: Schema | None = None, check_files: bool = True
) -> Dataset:
    """Read and validate ``root``'s manifest."""
    schema = schema or default_schema()
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: dataset folder not found")
    mpath = find_manifest(root)
    if mpath.suffix == ".parquet":
        try:
            rows = pd.read_parquet(mpath).to_dict("records")
        except Exception as e:  # pyarrow raises several unrelated types for a torn file
            raise ManifestError(f"{mpath}: cannot read Parquet ({e})") from None
    else:
        rows = []
        with open(mpath) as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ManifestError(f"{mpath} row {n}: invalid JSON ({e.msg})") from None
    frames = validate_rows(rows, root, schema, str(mpath), check_files=check_files)
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
    "BASE_COLUMNS", "Dataset", "ManifestError", "SPLITS", "UNKNOWN", "find_manifest",
    "read_manifest", "resolve_inside", "validate_rows", "write_manifest",
]
