"""Corrections: labels, tags and splits written to the manifest with a history; undo; the index follows;
a crash mid-write leaves the last good state."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.atomic import CRASH_AT_ENV, CRASH_LOG_ENV
from core.corrections import (
    HISTORY,
    LABELS_VERSION,
    CorrectionError,
    correct_labels,
    index_in_sync,
    last_change,
    read_history,
    set_split,
    sync_index,
    tag_rows,
    undo_last,
)
from core.data import read_manifest, write_manifest
from core.index import IndexStore
from core.schema import default_schema
from core.views import TAGS_COLUMN

SCHEMA = default_schema()
ROOT = Path(__file__).resolve().parents[1]


def make_dataset(tmp: Path, n: int = 12) -> tuple[Path, Path]:
    """A manifest of ``n`` frames (no image files: corrections never read them) and an index on it."""
    rng = random.Random(3)
    rows = [{"path": f"frames/{i:03d}.jpg", "clip_id": f"c{i % 3}", "split": ("train", "val", "test")[i % 3],
             **SCHEMA.sample(rng)} for i in range(n)]
    root = tmp / "data"
    root.mkdir()
    write_manifest(root, rows, SCHEMA, check_files=False)
    x = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
    store = IndexStore.from_embeddings(x, pd.DataFrame(rows), model="toy@0", factory="Flat", dataset=root)
    store.save(tmp / "index")
    return root, tmp / "index"


def other_value(labels: dict, attr: str) -> str:
    """A value of ``attr`` that differs from the frame's and keeps its labels valid."""
    for v in SCHEMA[attr].value_names:
        if v != labels[attr] and SCHEMA.is_valid({**labels, attr: v}):
            return v
    pytest.skip("no other valid value")  # not reached with the default schema's first attribute


def test_correct_then_undo_restores_manifest_byte_identical(tmp_path) -> None:
    root, index = make_dataset(tmp_path)
    before = (root / "manifest.jsonl").read_bytes()
    store = IndexStore.load(index)
    path, labels = store.meta["path"].iat[4], store.labels(4)
    attr = SCHEMA.names[0]
    new = other_value(labels, attr)

    rec = correct_labels(root, [path], {attr: new}, SCHEMA, index_dir=index)
    assert rec["version"] == 1 and rec["rows"][0]["path"] == path
    assert read_manifest(root, check_files=False).frames.set_index("path").at[path, attr] == new
    moved = IndexStore.load(index)
    assert moved.labels(4)[attr] == new and moved.manifest[LABELS_VERSION] == 1
    assert moved.manifest["created"] == store.manifest["created"]  # identity unchanged
    assert np.array_equal(np.asarray(moved.embeddings()), np.asarray(store.embeddings()))

    undone = undo_last(root, SCHEMA, index_dir=index)
    assert undone["undoes"] == 1
    assert (root / "manifest.jsonl").read_bytes() == before
    assert IndexStore.load(index).labels(4) == labels
    assert [r["op"] for r in read_history(root)] == ["correct", "undo"]  # append-only
    assert undo_last(root, SCHEMA, index_dir=index) is None and last_change(root) is None


def test_tags_and_split_follow_into_index_and_refuse_bad_input(tmp_path) -> None:
    root, index = make_dataset(tmp_path)
    paths = IndexStore.load(index).meta["path"].tolist()[:3]
    tag_rows(root, paths, add=["review", "blurry"], index_dir=index)
    tag_rows(root, paths[:1], remove=["blurry"], index_dir=index)
    set_split(root, paths, "test", index_dir=index)
    meta = IndexStore.load(index).meta
    assert meta[TAGS_COLUMN].tolist()[:3] == ["review", "review,blurry", "review,blurry"]
    assert (meta["split"].iloc[:3] == "test").all() and index_in_sync(index)
    with pytest.raises(CorrectionError, match="no frame with path"):
        correct_labels(root, ["frames/none.jpg"], {SCHEMA.names[0]: SCHEMA[SCHEMA.names[0]].value_names[0]})
    with pytest.raises(CorrectionError, match="row"):
        correct_labels(root, paths[:1], {SCHEMA.names[0]: "not_a_value"})
    with pytest.raises(CorrectionError, match="split"):
        set_split(root, paths, "holdout")
    assert len(read_history(root)) == 3  # refused changes wrote nothing
    for _ in range(3):
        undo_last(root, index_dir=index)
    assert TAGS_COLUMN not in json.dumps([json.loads(x) for x in (root / "manifest.jsonl").read_text().split("\n") if x])


CHILD = """
import sys
from core.corrections import correct_labels
correct_labels(sys.argv[1], [sys.argv[2]], {sys.argv[3]: sys.argv[4]}, index_dir=sys.argv[5])
"""


def _run_child(env_key: str, value: str, args: list[str]) -> int:
    env = {**os.environ, env_key: value}
    return subprocess.run([sys.executable, "-c", CHILD, *args], cwd=ROOT, env=env, timeout=120).returncode


def test_crash_mid_write_leaves_last_good_state(tmp_path) -> None:
    root, index = make_dataset(tmp_path)
    store = IndexStore.load(index)
    attr = SCHEMA.names[0]
    path, labels = store.meta["path"].iat[2], store.labels(2)
    args = [str(root), path, attr, other_value(labels, attr), str(index)]
    before = (root / "manifest.jsonl").read_bytes()
    meta_before = (index / "meta.parquet").read_bytes()

    # Killed right before the manifest's rename: the history holds the record, the manifest is old.
    assert _run_child(CRASH_AT_ENV, "file.replace", args) == -9
    assert (root / "manifest.jsonl").read_bytes() == before
    assert (index / "meta.parquet").read_bytes() == meta_before
    assert len(read_history(root)) == 1
    assert undo_last(root, index_dir=index) is None  # the change never landed: nothing to undo

    # Killed while the index follows (its frame table replaced, its manifest not yet): the
    # dataset holds the change, and the next sync repairs the index.
    # The durable steps are listed in this process (a child's count would be the line number).
    log = tmp_path / "points.log"
    os.environ[CRASH_LOG_ENV] = str(log)
    try:
        correct_labels(root, [path], {attr: args[3]}, index_dir=index)
    finally:
        del os.environ[CRASH_LOG_ENV]
    undo_last(root, index_dir=index)
    names = [line.split()[1] for line in log.read_text().split("\n") if line]
    replaces = [n for n, name in enumerate(names, start=1) if name == "file.replace"]
    assert len(replaces) == 3  # manifest, index frame table, index manifest
    assert _run_child(CRASH_AT_ENV, str(replaces[2]), args) == -9
    assert not index_in_sync(index)
    assert sync_index(index) and index_in_sync(index)
    assert IndexStore.load(index).labels(2)[attr] == args[3]
    assert (root / HISTORY).is_file()


def test_index_file_names_agree_with_the_index_package() -> None:
    from core import corrections
    from core.index.folder import MANIFEST_FILE, META_FILE
    from core.index.frames import ROW_GROUP_ROWS

    assert (corrections.INDEX_META, corrections.INDEX_MANIFEST) == (META_FILE, MANIFEST_FILE)
    assert corrections.INDEX_ROW_GROUP == ROW_GROUP_ROWS


def test_export_selection_is_a_dataset_of_its_frames(tmp_path) -> None:
    import io
    import zipfile

    from core.export import export_frames_folder, export_frames_zip

    root, index = make_dataset(tmp_path)
    store = IndexStore.load(index)
    for i, p in enumerate(store.meta["path"]):  # stand-in frame files (the export copies bytes)
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(f"frame {i}".encode())
    out = export_frames_folder(store, np.array([5, 1, 5]), tmp_path / "for-labelling")
    ds = read_manifest(out)  # a dataset: every file present, every row valid
    assert ds.frames["path"].tolist() == store.meta["path"].iloc[[1, 5]].tolist()
    assert [ds.labels(i) for i in range(2)] == [store.labels(1), store.labels(5)]
    assert (out / store.meta["path"].iat[5]).read_bytes() == b"frame 5"
    with pytest.raises(ValueError, match="already exists"):
        export_frames_folder(store, np.array([1]), out)
    names = zipfile.ZipFile(io.BytesIO(export_frames_zip(store, np.array([2])))).namelist()
    assert sorted(names) == sorted(["selection/manifest.jsonl", f"selection/{store.meta['path'].iat[2]}"])
