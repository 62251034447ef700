"""Frames rendered after their dataset is already usable (issue 21: a fresh clone's workbench starts
before the demo's 2,141 frames exist).

A synthetic dataset's frame table is a pure function of its arguments, so it can be written before
any frame: ``write_synth_dataset(..., frames=False)`` writes the manifest and stamp beside a pending
record (``rendering.json``: the arguments and every frame's path) and no image. ``render_pending``
renders the frames still missing through the same per-unit renderer as the foreground path (so the
files are byte for byte the same) and removes the record once all are there. Each frame is written
atomically, so a render killed midway leaves whole frames or none, and the next call renders what
is missing. One renderer at a time per dataset (an flock on ``rendering.lock``, released by the
kernel when its holder dies). ``spawn_render`` runs it in a background process at low priority;
``pending_frames`` says how far it is.

    python -m core.synth.pending DATA_DIR    # what spawn_render runs
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from core.schema import default_schema
from core.synth.dataset import PENDING, _plan, drop_pending, render_jobs

LOCK, LOG = "rendering.lock", "rendering.log"
# How the background renderer yields the CPU to the workbench and browser it runs beside (issue 21:
# at nice 10 it still took ~10% of a core from each, and the first Map missed its 5 s). "idle":
# SCHED_IDLE where the OS has it (Linux: runs when a core has nothing else to do), else nice 19;
# a number: that niceness (10 was the old setting; bench/startup.py compares the two).
PRIORITY_ENV = "SCENESCOPE_RENDER_PRIORITY"


def _record(root: Path) -> dict | None:
    try:
        return json.loads((root / PENDING).read_text())
    except FileNotFoundError:
        return None


def pending_frames(root: str | Path) -> tuple[int, int] | None:
    """(frames on disk, frames in all) while ``root``'s frames are still to render, else None.
    Cheap enough for every page run (one listing of the images folder)."""
    root = Path(root)
    try:
        record = _record(root)
        names = {f.name for f in os.scandir(root / "images")} if record else set()
    except (OSError, ValueError):
        return None
    if record is None:
        return None
    paths = record["paths"]
    return sum(Path(p).name in names for p in paths), len(paths)


@contextlib.contextmanager
def _render_lock(root: Path, wait: bool) -> Iterator[bool]:
    """Hold ``root``'s render lock (True), or yield False at once when another process holds it
    and ``wait`` is False. The file names the holder's pid (bench/startup.py reads it)."""
    with open(root / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield True


def render_pending(root: str | Path, progress: bool = False, wait: bool = True) -> int | None:
    """Render the frames ``root`` still lacks, then drop its pending record; the number of frames
    in the dataset (0 when none were pending). None when another renderer holds the lock and
    ``wait`` is False; with ``wait``, this waits for it and then finishes whatever it left."""
    root = Path(root)
    if _record(root) is None:
        return 0
    with _render_lock(root, wait) as held:
        if not held:
            return None
        record = _record(root)  # another renderer may have finished while this one waited
        if record is None:
            return 0
        for tmp in (root / "images").glob(".*.tmp"):  # the torn write of a killed renderer
            tmp.unlink()
        a, schema = record["args"], default_schema()
        jobs = _plan(root, a["scenes"], a["clips"], a["seed"], tuple(a["size"]), a["fps"], tuple(a["splits"]),
                     schema, tuple(a["clip_seconds"]))
        rows = render_jobs(jobs, schema, a["randomize"], progress, missing_only=True)
        missing = [r["path"] for r in rows if not (root / r["path"]).is_file()]
        if missing:
            raise RuntimeError(f"{root}: {len(missing)} frames still missing after rendering, e.g. {missing[0]}")
        drop_pending(root)
        return len(rows)


def spawn_render(root: str | Path) -> subprocess.Popen | None:
    """Start ``render_pending(root)`` in a background process (output in ``rendering.log``), or
    None when nothing is pending. A second one started while one runs exits at once (the lock).
    The process stays in this one's process group: Ctrl-C on `make run` stops it too, and the next
    start finishes the render."""
    root = Path(root)
    if _record(root) is None:
        return None
    with open(root / LOG, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "core.synth.pending", str(root)], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)


def yield_cpu(setting: str | None = None) -> str:
    """Lower this process's CPU priority for good (the render pool's processes inherit it); returns
    what was set. ``setting``: see PRIORITY_ENV (default: that variable, else "idle")."""
    setting = (setting or os.environ.get(PRIORITY_ENV) or "idle").strip()
    if setting != "idle":
        try:
            os.nice(int(setting))
        except ValueError:
            raise SystemExit(f"{PRIORITY_ENV}={setting!r}: expected 'idle' or a niceness such as 10") from None
        return f"nice {os.nice(0)}"
    os.nice(19 - os.nice(0))  # the floor everywhere; SCHED_IDLE below where Linux offers it
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "SCHED_IDLE"
    return "nice 19"


def main(argv: list[str]) -> int:
    root = Path(argv[0])
    print(f"{root}: rendering at {yield_cpu()}", flush=True)
    t0 = time.perf_counter()
    n = render_pending(root, wait=False)
    use = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(u.ru_utime + u.ru_stime for u in use)
    if n is None:
        print(f"{root}: another renderer is at work", flush=True)
    else:
        print(f"{root}: {n} frames there after {time.perf_counter() - t0:.1f} s ({cpu:.1f} CPU s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
