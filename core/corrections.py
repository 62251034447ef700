"""Acting on results: correct labels, tag frames and move them to another split, undoably.

Every change edits the dataset's JSONL manifest in place of the rows it touches, line by line,
so the rest of the file keeps its exact bytes. Before the manifest is replaced (atomically), the
change is appended to ``manifest.history.jsonl`` beside it: each record holds the touched lines
as they were and as they became. Undo writes the "before" lines back (the manifest is then
byte-identical to what it was) and appends an ``undo`` record, so the history only grows and no
label is ever lost.

A crash between the history append and the manifest replace leaves the old manifest and a record
whose "after" lines never landed; ``undo_last`` recognises such a record (the manifest still
holds its "before" lines) and passes over it.

The index built on the dataset follows: ``sync_index`` copies labels, split and tags into its
frame table by path (atomically) and stamps its manifest with the dataset's ``labels_version``
(the last history record's number). Vectors, FAISS index and ``created`` are untouched, so the
index's identity stays the same; votes and metrics computed before are stale, and the app keys
its caches by the labels version so they are recomputed on the next view.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from core.atomic import atomic_path, atomic_write_text, crash_point, fsync_dir
from core.data.manifest import SPLITS, ManifestError, validate_rows
from core.locks import exclusive_lock
from core.schema import Schema, default_schema
from core.views import TAG_SEP, TAGS_COLUMN

MANIFEST = "manifest.jsonl"
HISTORY = "manifest.history.jsonl"
LOCK = ".manifest.lock"
LABELS_VERSION = "labels_version"  # key in the index's manifest.json
TAG_MAX = 40
# core.index.folder's names, spelled here because importing core.index loads torch and FAISS
# (seconds), which a label change never needs; tests/test_corrections.py checks they agree.
INDEX_META, INDEX_MANIFEST = "meta.parquet", "manifest.json"
INDEX_ROW_GROUP = 8192  # core.index.frames.ROW_GROUP_ROWS: large tables are read by row group
ManifestRow = dict[str, Any]


class CorrectionError(ValueError):
    """A change that cannot be made; nothing was written. The message names the file or row."""


def history_path(root: str | Path) -> Path:
    return Path(root) / HISTORY


def read_history(root: str | Path) -> list[dict[str, Any]]:
    """Every record, oldest first ([] when nothing was changed). A torn last line (a crash in the
    middle of an append) is ignored: its manifest change was never made."""
    path = history_path(root)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def labels_version(root: str | Path) -> int:
    """The dataset's labels version: the number of the last history record (0 when none)."""
    records = read_history(root)
    return int(records[-1]["version"]) if records else 0


# ---- the manifest, line by line -----------------------------------------------------------------
def _manifest(root: Path) -> Path:
    path = root / MANIFEST
    if not path.is_file():
        raise CorrectionError(f"{root}: corrections need a {MANIFEST} manifest (this dataset has none)")
    return path


def _read_lines(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8").split("\n")


def _parse(line: str) -> ManifestRow:
    return json.loads(line.removeprefix("\ufeff"))


def _rows_by_path(lines: Sequence[str]) -> dict[str, int]:
    found = {}
    for n, line in enumerate(lines):
        if line.strip():
            found[str(_parse(line).get("path"))] = n
    return found


def _render(before: str, row: ManifestRow) -> str:
    """A changed row as one JSON line, keeping the old line's BOM and line-end (CR)."""
    text = json.dumps(row, ensure_ascii=False)
    if before.startswith("\ufeff"):
        text = "\ufeff" + text
    return text + ("\r" if before.endswith("\r") else "")


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes("\n".join(lines).encode("utf-8"))


def _append_history(root: Path, record: Mapping[str, Any]) -> None:
    """Append one record durably (fsync) before the manifest it describes is replaced."""
    path = history_path(root)
    new = not path.exists()
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        crash_point("history.fsync")
        os.fsync(f.fileno())
    if new:
        fsync_dir(root)


def _busy(_holders: list[str]) -> Exception:
    return CorrectionError("another change to this dataset is being written; try again")


def _change(root: str | Path, paths: Sequence[str], edit: Callable[[ManifestRow], ManifestRow], op: str,
            detail: Mapping[str, Any], schema: Schema | None, index_dir: str | Path | None) -> dict[str, Any] | None:
    """Apply ``edit`` to the rows of ``paths``; record and write it. None when nothing changed."""
    root, schema = Path(root), schema or default_schema()
    manifest = _manifest(root)
    with exclusive_lock(root / LOCK, _busy):
        lines = _read_lines(manifest)
        where = _rows_by_path(lines)
        changed = []
        for p in dict.fromkeys(map(str, paths)):
            if p not in where:
                raise CorrectionError(f"{manifest}: no frame with path {p!r}")
            n = where[p]
            row = edit(_parse(lines[n]))
            try:
                validate_rows([row], root, schema, f"{manifest}", check_files=False, row_numbers=[n + 1])
            except ManifestError as e:
                raise CorrectionError(str(e)) from None
            after = _render(lines[n], row)
            if after != lines[n]:
                changed.append({"line": n + 1, "path": p, "before": lines[n], "after": after})
        if not changed:
            return None
        record = {"version": labels_version(root) + 1, "op": op, **detail,
                  "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rows": changed}
        _append_history(root, record)
        for c in changed:
            lines[c["line"] - 1] = c["after"]
        _write_lines(manifest, lines)
    if index_dir is not None:
        sync_index(index_dir, schema)
    return record


def correct_labels(root: str | Path, paths: Sequence[str], labels: Mapping[str, str], schema: Schema | None = None,
                   index_dir: str | Path | None = None) -> dict[str, Any] | None:
    """Set attribute values (``labels``: attribute -> value) on the frames at ``paths``."""
    schema = schema or default_schema()
    unknown = [a for a in labels if a not in schema.names]
    if unknown:
        raise CorrectionError(f"unknown attribute {unknown[0]!r}; expected one of {schema.names}")
    return _change(root, paths, lambda r: {**r, **{a: str(v) for a, v in labels.items()}}, "correct",
                   {"labels": dict(labels)}, schema, index_dir)


def _check_tag(tag: str) -> str:
    t = str(tag).strip()
    if not t or len(t) > TAG_MAX or TAG_SEP in t:
        raise CorrectionError(f"tag {tag!r}: 1 to {TAG_MAX} characters, without {TAG_SEP!r}")
    return t


def tag_rows(root: str | Path, paths: Sequence[str], add: Sequence[str] = (), remove: Sequence[str] = (),
             schema: Schema | None = None, index_dir: str | Path | None = None) -> dict[str, Any] | None:
    """Add and remove tags (free words) on the frames at ``paths``; kept as a list per row."""
    plus, minus = [_check_tag(t) for t in add], {_check_tag(t) for t in remove}

    def edit(row: ManifestRow) -> ManifestRow:
        old = row.get(TAGS_COLUMN) or []
        tags = [t for t in dict.fromkeys([*old, *plus]) if t not in minus]
        out = {k: v for k, v in row.items() if k != TAGS_COLUMN}
        return {**out, TAGS_COLUMN: tags} if tags else out

    return _change(root, paths, edit, "tag", {"add": plus, "remove": sorted(minus)}, schema, index_dir)


def set_split(root: str | Path, paths: Sequence[str], split: str, schema: Schema | None = None,
              index_dir: str | Path | None = None) -> dict[str, Any] | None:
    """Move the frames at ``paths`` to ``split`` (one of the dataset splits)."""
    if split not in SPLITS:
        raise CorrectionError(f"split {split!r} is not one of {SPLITS}")
    return _change(root, paths, lambda r: {**r, "split": split}, "split", {"split": split}, schema, index_dir)


def undo_last(root: str | Path, schema: Schema | None = None,
              index_dir: str | Path | None = None) -> dict[str, Any] | None:
    """Undo the newest change not undone yet (None when there is none): its rows get their
    "before" lines back, and an ``undo`` record is appended."""
    root, schema = Path(root), schema or default_schema()
    manifest = _manifest(root)
    with exclusive_lock(root / LOCK, _busy):
        records = read_history(root)
        undone = {r["undoes"] for r in records if r.get("op") == "undo"}
        lines = _read_lines(manifest)
        for rec in reversed(records):
            if rec.get("op") == "undo" or rec["version"] in undone:
                continue
            now = [lines[c["line"] - 1] if c["line"] - 1 < len(lines) else None for c in rec["rows"]]
            if all(n == c["before"] for n, c in zip(now, rec["rows"], strict=True)):
                continue  # a crash kept this change from landing: nothing to undo
            if any(n != c["after"] for n, c in zip(now, rec["rows"], strict=True)):
                raise CorrectionError(f"{manifest} was edited outside SceneScope since change "
                                      f"{rec['version']}; it cannot be undone line by line")
            back = [{**c, "before": c["after"], "after": c["before"]} for c in rec["rows"]]
            record = {"version": labels_version(root) + 1, "op": "undo", "undoes": rec["version"],
                      "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rows": back}
            _append_history(root, record)
            for c in back:
                lines[c["line"] - 1] = c["after"]
            _write_lines(manifest, lines)
            break
        else:
            return None
    if index_dir is not None:
        sync_index(index_dir, schema)
    return record


def last_change(root: str | Path) -> dict[str, Any] | None:
    """The newest record that ``undo_last`` would undo (ignoring crashed ones is its job)."""
    records = read_history(root)
    undone = {r["undoes"] for r in records if r.get("op") == "undo"}
    live = [r for r in records if r.get("op") != "undo" and r["version"] not in undone]
    return live[-1] if live else None


# ---- the index follows ---------------------------------------------------------------------------
def sync_index(index_dir: str | Path, schema: Schema | None = None) -> bool:
    """Copy labels, split and tags from the dataset's manifest into the index's frame table by
    path, then stamp the index with the labels version; True when anything was written.

    Idempotent, so it also repairs an index whose update a crash interrupted.
    """
    index_dir, schema = Path(index_dir), schema or default_schema()
    info = json.loads((index_dir / INDEX_MANIFEST).read_text())
    root = Path(info["dataset"])
    lines = _read_lines(_manifest(root))
    rows = {str(r.get("path")): r for r in (_parse(x) for x in lines if x.strip())}
    meta = pd.read_parquet(index_dir / INDEX_META)
    found = [rows.get(p) for p in meta["path"].astype(str)]
    new = meta.copy()
    for col in [*schema.names, "split"]:
        new[col] = [str(r[col]) if r and col in r else v for r, v in zip(found, meta[col], strict=True)]
    tags = [TAG_SEP.join(r.get(TAGS_COLUMN) or []) if r else "" for r in found]
    if TAGS_COLUMN in meta or any(tags):
        new[TAGS_COLUMN] = tags
    version = labels_version(root)
    same = new.equals(meta)
    if not same:
        with atomic_path(index_dir / INDEX_META) as tmp:
            new.to_parquet(tmp, index=False, row_group_size=INDEX_ROW_GROUP)
    if not same or info.get(LABELS_VERSION) != version:
        info[LABELS_VERSION] = version
        atomic_write_text(index_dir / INDEX_MANIFEST, json.dumps(info, indent=2) + "\n")
        return True
    return False


def index_in_sync(index_dir: str | Path) -> bool:
    """Whether the index carries its dataset's current labels version."""
    info = json.loads((Path(index_dir) / INDEX_MANIFEST).read_text())
    root = Path(info["dataset"])
    if not (root / MANIFEST).is_file():
        return True
    return int(info.get(LABELS_VERSION, 0)) == labels_version(root)


__all__ = [
    "CorrectionError", "HISTORY", "LABELS_VERSION", "correct_labels", "history_path", "index_in_sync", "labels_version",
    "last_change", "read_history", "set_split", "sync_index", "tag_rows", "undo_last",
]
