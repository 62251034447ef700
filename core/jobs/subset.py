"""A smaller training set for a quick run: a random share of the train split (and of val, for the
per-epoch check) as a dataset folder of its own, the frames hard-linked (copied across devices).

The dataset reader refuses paths that resolve outside a dataset's root, so symlinks to the
original frames would not do; hard links cost no space and resolve inside the new root.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from core.atomic import atomic_write_text
from core.data import read_manifest, write_manifest

VAL_SHARE = 4  # the subset's val split is at most a quarter of its train split
STAMP = "subset.json"


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed: copy
        shutil.copy2(src, dst)


def subset_dataset(data_dir: str | Path, out: str | Path, train_frames: int, seed: int = 0) -> Path:
    """``out`` as a dataset of ``train_frames`` random train frames of ``data_dir`` and up to a
    quarter as many val frames (the same folder when asked again with the same arguments, so a
    resumed job trains on the same frames). Splits other than train and val are left out: the
    before/after comparison reads the full dataset."""
    if train_frames < 2:
        raise ValueError(f"a training subset needs at least 2 frames, got {train_frames}")
    data_dir, out = Path(data_dir).resolve(), Path(out)
    want = {"data_dir": str(data_dir), "train_frames": int(train_frames), "seed": int(seed)}
    stamp = out / STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        return out
    dataset = read_manifest(data_dir)
    frames = dataset.frames
    rng = np.random.default_rng(seed)
    keep = []
    for split, n in (("train", train_frames), ("val", max(1, train_frames // VAL_SHARE))):
        rows = np.flatnonzero(frames["split"].to_numpy() == split)
        keep.extend(sorted(rng.choice(rows, size=min(n, len(rows)), replace=False).tolist()))
    sub = frames.iloc[keep]
    for rel in sub["path"]:
        _link(dataset.abspath(rel), out / rel)
    write_manifest(out, sub.to_dict("records"), dataset.schema)
    atomic_write_text(stamp, json.dumps(want))
    return out
