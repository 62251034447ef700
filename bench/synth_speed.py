"""Does the renderer draw >= 100 frames/s per core (issue 3)? `python bench/synth_speed.py [--quick]`

Renders N frames single-process (labels drawn uniformly per place, as the dataset writer does) and
reports wall-clock and CPU-time rates; CPU time is the fair number on a shared machine.

    .venv/bin/python bench/synth_speed.py --frames 400
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _quick import parse_args  # noqa: E402

from core.schema import default_schema  # noqa: E402
from core.synth.clips import attribute_with  # noqa: E402
from core.synth.render import render_scene  # noqa: E402

TARGET_FPS = 100.0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--size", default="320x180")
    ap.add_argument("--seed", type=int, default=0)
    a = parse_args(ap, {"frames": 50}, argv)
    w, h = (int(v) for v in a.size.lower().split("x"))
    schema = default_schema()
    place = attribute_with(schema, "feature")
    rng = random.Random(a.seed)
    labels = [schema.sample(rng, {place.name: rng.choice(place.value_names)}) for _ in range(a.frames)]
    render_scene(labels[0], 0, (w, h))  # warm the overlay caches
    wall, cpu = time.perf_counter(), time.process_time()
    for i, lab in enumerate(labels):
        render_scene(lab, i, (w, h))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    fps_cpu, fps_wall = a.frames / cpu, a.frames / wall
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"synth render {w}x{h}, {a.frames} frames, 1 process, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load {load:.1f}")
    print(f"  CPU time : {1000 * cpu / a.frames:.2f} ms/frame = {fps_cpu:.0f} frames/s per core "
          f"({fps_cpu / TARGET_FPS:.2f}x the {TARGET_FPS:.0f} fps target)")
    print(f"  wall     : {1000 * wall / a.frames:.2f} ms/frame = {fps_wall:.0f} frames/s "
          f"({fps_wall / TARGET_FPS:.2f}x target; shared machine)")


if __name__ == "__main__":
    main()
