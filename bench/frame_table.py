"""What does an open index's frame table cost in RAM, read whole vs by row id (issue 23)? `python bench/frame_table.py [--quick]`

Saves an index of ``--rows`` frames (8-dimension vectors: the table, not the vectors, is measured),
then in a fresh process per mode opens it with ``IndexStore.load`` and reports the growth of
private memory (RssAnon), the open time, and the time of one lookup of 10 rows' paths and labels
(what a vote reads). ``whole``: the table read into pandas (below ``LAZY_FRAMES_ROWS`` rows);
``by-row``: ``core.index.frames.FrameTable`` (row groups, memory-mapped; label codes built once).

    .venv/bin/python bench/frame_table.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _quick import parse_args  # noqa: E402

CHILD = r"""
import json, sys, time
import numpy as np
import core.index.store as st
from core.index import IndexStore

def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
folder, mode = sys.argv[1], sys.argv[2]
st.LAZY_FRAMES_ROWS = 10**12 if mode == "whole" else 0
before = anon()
t = time.perf_counter()
store = IndexStore.load(folder)
opened = time.perf_counter() - t
rng = np.random.default_rng(0)
store.labels(0)  # label codes built once (one attribute column at a time)
times = []
for _ in range(50):  # fresh random rows each time, as a vote's neighbours would be
    ids = rng.integers(0, len(store), 10)
    t = time.perf_counter()
    store.paths_of(ids), store.label_rows(ids)
    times.append(time.perf_counter() - t)
lookup = float(np.median(times))
print(json.dumps({"mode": mode, "private_mb": anon() - before, "open_s": opened, "lookup_ms": lookup * 1e3}))
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = parse_args(ap, {"rows": 20_000}, argv)
    from core.index import IndexStore
    from core.schema import UNKNOWN, default_schema

    schema = default_schema()
    rng = np.random.default_rng(0)
    n = args.rows
    rows = {"path": [f"clips/c{i // 100:06d}/frame_{i:08d}.jpg" for i in range(n)],
            "clip_id": [f"c{i // 100:06d}" for i in range(n)]}
    for a in schema.attributes:
        vocab = np.array([*a.value_names, UNKNOWN], dtype=object)
        rows[a.name] = vocab[rng.integers(0, len(vocab), n)]
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ix"
        IndexStore.from_embeddings(rng.normal(size=(n, 8)).astype(np.float32), pd.DataFrame(rows),
                                   model="bench@0").save(folder)
        size = (folder / "meta.parquet").stat().st_size / 2**20
        print(f"{n:,} rows, meta.parquet {size:.1f} MB\n\n| mode | private MB (open + label codes + lookups) | open s | "
              f"10 random rows' paths + labels, ms (median of 50) |\n|---|---|---|---|")
        for mode in ("whole", "by-row"):
            out = subprocess.run([sys.executable, "-c", CHILD, str(folder), mode], capture_output=True, text=True,
                                 check=True, cwd=Path(__file__).resolve().parents[1])
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {mode} | {r['private_mb']:.0f} | {r['open_s']:.2f} | {r['lookup_ms']:.2f} |")


if __name__ == "__main__":
    main()
