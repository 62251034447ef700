"""Is the Ray engine >= 0.8x the default engine's throughput on 2 local CPUs (issue 23)? `python bench/ray_engine.py [--quick]`

Both engines index the same synthetic dataset with the same model into a Flat index: the default
engine (one process, 2 loader threads) and the Ray engine (a local ``ray.init(num_cpus=2)``, an
actor pool of 2, one torch thread each). Ray's start-up (``ray.init``) is timed apart; the Ray
build's time includes starting its actors (each imports torch and loads the model), which is what
a user waits for. Throughput is frames per second of the whole build.

    .venv/bin/python bench/ray_engine.py --frames 2000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _quick import parse_args  # noqa: E402

from core.data import read_manifest  # noqa: E402
from core.index import build_index  # noqa: E402
from core.index.ray_engine import build_index_ray, import_ray  # noqa: E402
from core.models import load_model  # noqa: E402
from core.synth import write_synth_dataset  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--model", default="scenescope-tiny")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    args = parse_args(ap, {"frames": 64}, argv)
    ray = import_ray()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_synth_dataset(Path(tmp) / "data", scenes=args.frames, clips=0, seed=0)
        data = read_manifest(root)
        model = load_model(args.model)
        t = time.perf_counter()
        ref = build_index(data, model, Path(tmp) / "default", split="all", batch_size=args.batch_size,
                          workers=args.workers, progress=False)
        default_s = time.perf_counter() - t
        t = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - t
        t = time.perf_counter()
        got = build_index_ray(data, model, args.model, Path(tmp) / "ray", split="all", batch_size=args.batch_size,
                              workers=args.workers, progress=False)
        ray_s = time.perf_counter() - t
        ray.shutdown()
        same = float(np.abs(np.asarray(got.embeddings()) - ref.embeddings()).max())
    n = args.frames
    print(f"| engine | frames | build s | frames/s |\n|---|---|---|---|\n"
          f"| default (1 process, {args.workers} loader threads) | {n} | {default_s:.1f} | {n / default_s:.1f} |\n"
          f"| ray ({args.workers} actors, local) | {n} | {ray_s:.1f} | {n / ray_s:.1f} |\n"
          f"ray.init {init_s:.1f} s (not in the build); ray/default throughput {default_s / ray_s:.2f}x; "
          f"largest vector difference {same:.2e}")


if __name__ == "__main__":
    main()
