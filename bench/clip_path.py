"""Is classifying the 8.8 s Udacity clip at most 1 s in a warm process (issue 23)? `python bench/clip_path.py [--quick]`

In one process the model is loaded and the index opened once; then the clip goes through the
product's one clip path, ``core.pipeline.classify_path`` (what `scenescope classify` and the Scene
page call), ``--repeats`` times at each torch thread count. Its stages are timed apart through the
same functions the path calls, one after the other: decode (``core.video.sample_frames``,
iterated to the end), preprocess (``pipeline._preprocessor``: ``fast_preprocess``), embed
(``pipeline._encode`` per ``CLIP_BATCH`` frames, which picks its own torch thread count), vote
(``pipeline._vote`` + ``core.timeline.timeline``); the path itself decodes and preprocesses in a
thread while it embeds, so its wall time is below the stages' sum. For reference it also times torchvision's own ``model.preprocess``
and ``model.embed_batch`` at the thread count under test (what the issue measured). Reports min and
median wall seconds, and min CPU seconds (all the process's threads: the figure a shared machine
disturbs least), per stage and for the whole path; then the threaded path's CPU by thread (decode thread, the
caller's while decoding runs and after, FFmpeg's threads), which bounds its wall time on an idle machine. ``--before`` also times the path as it was
before the decode thread (12c: sequential, batches of 64; RESULTS 12d) and ``--before-issue`` as it
was before issue 23's first fix (also every packet decoded, batches embedded at the process's
thread count), interleaved pass by pass with the current one so that all see the same load, and
checks that they give the same frames and votes.

    .venv/bin/python bench/clip_path.py --threads 1 2 --repeats 7 --before
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _quick import parse_args  # noqa: E402

CLIP = Path("/work/shared/fixtures/udacity-lanelines/test_videos/solidWhiteRight.mp4")
STAGES = ("decode", "preprocess", "embed", "vote", "stages_sum", "classify_path",
          "torchvision_preprocess", "embed_at_threads")


def _timed(fn):  # -> ((wall s, CPU s), result)
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return (time.perf_counter() - t, time.process_time() - c), out


def one_pass(clip: Path, model, store, fps: float, threaded: bool = True) -> dict[str, tuple[float, float]]:
    """One run of each stage, then one whole ``classify_path``."""
    from core import pipeline
    from core.timeline import timeline
    from core.video import sample_frames

    prep = pipeline._preprocessor(model)
    out: dict[str, tuple[float, float]] = {}
    out["decode"], samples = _timed(lambda: list(sample_frames(clip, fps=fps)))
    frames = [f for _, f in samples]
    out["preprocess"], pixels = _timed(lambda: [prep(f) for f in frames])
    out["embed"], emb = _timed(lambda: np.concatenate([
        pipeline._encode(model, pixels[i: i + pipeline.CLIP_BATCH])
        for i in range(0, len(pixels), pipeline.CLIP_BATCH)]))
    times = np.asarray([t for t, _ in samples])
    out["vote"], _ = _timed(lambda: timeline(times, [v.labels() for v in pipeline._vote(store, emb, 5)],
                                             store.schema))
    out["stages_sum"] = tuple(sum(out[s][i] for s in ("decode", "preprocess", "embed", "vote")) for i in (0, 1))
    out["classify_path"], result = _timed(lambda: pipeline.classify_path(clip, model, store, fps=fps, threaded=threaded))
    assert len(result.votes) == len(samples)
    import torch
    from PIL import Image
    out["torchvision_preprocess"], tv = _timed(lambda: [model.preprocess(Image.fromarray(f)) for f in frames])
    out["embed_at_threads"], _ = _timed(lambda: model.embed_batch(torch.stack(tv)))
    out["frames"] = (len(samples), len(samples))
    return out


@contextmanager
def variant(name: str):
    """``now``: the path as it is (yields ``threaded``); ``12c``: sequential, batches of 64;
    ``before``: that and every packet decoded, batches at the process's thread count."""
    from core import pipeline, video

    saved = video.skippable, pipeline.FRAMES_PER_THREAD, pipeline.CLIP_BATCH
    if name in ("12c", "before"):
        pipeline.CLIP_BATCH = pipeline.EMBED_BATCH
    if name == "before":
        video.skippable, pipeline.FRAMES_PER_THREAD = (lambda *a: None), 1
    try:
        yield name == "now"
    finally:
        video.skippable, pipeline.FRAMES_PER_THREAD, pipeline.CLIP_BATCH = saved


def thread_cpu(clip: Path, model, store, fps: float) -> dict[str, float]:
    """CPU seconds of one threaded pass by thread: the decode thread, the caller's while decoding runs and after
    it ends (the tail), and the rest (FFmpeg's own threads). Thread clocks barely depend on the machine's load:
    on an idle 2-core machine the wall time lies between CPU / 2 and about the decode's chain plus the tail."""
    from core import pipeline

    marks: dict[str, float] = {}
    read_ahead = pipeline.read_ahead

    def timed_source(src):
        t = time.thread_time()
        yield from src
        marks["decode_thread"] = time.thread_time() - t

    def timed(src, depth, name="read-ahead"):
        yield from read_ahead(timed_source(src), depth, name)
        marks["main_at_end"] = time.thread_time()

    pipeline.read_ahead = timed
    try:
        c, m = time.process_time(), time.thread_time()
        pipeline.classify_path(clip, model, store, fps=fps)
        c, m_end = time.process_time() - c, time.thread_time()
    finally:
        pipeline.read_ahead = read_ahead
    main = marks["main_at_end"] - m
    return {"process": c, "decode_thread": marks["decode_thread"], "caller_while_decoding": main,
            "caller_after": m_end - marks["main_at_end"], "other_threads": c - (m_end - m) - marks["decode_thread"]}


def _votes(clip: Path, model, store, fps: float, threaded: bool = True) -> list:
    from core.pipeline import classify_path

    r = classify_path(clip, model, store, fps=fps, threaded=threaded)
    return [(float(t), v.labels(), [n.id for n in v.neighbors]) for t, v in zip(r.times, r.votes, strict=True)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=CLIP)
    ap.add_argument("--index", default="indexes/demo", help="an index folder (the demo index by default)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to time")
    ap.add_argument("--repeats", type=int, default=7, help="timed passes per thread count (after one warm-up)")
    ap.add_argument("--fps", type=float, default=2.0)
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--before", action="store_true", help="also time the path before the decode thread (12c)")
    ap.add_argument("--before-issue", action="store_true", help="also time the path before issue 23's fixes")
    args = parse_args(ap, {"repeats": 2, "threads": [1]}, argv)
    import torch

    from core.pipeline import open_index

    t = time.perf_counter()
    model, store = open_index(args.index)
    print(f"model + index opened in {time.perf_counter() - t:.1f} s ({len(store)} frames); "
          f"torch default threads {torch.get_num_threads()}")
    names = ["now"] + ["12c"] * args.before + ["before"] * args.before_issue
    now = _votes(args.clip, model, store, args.fps)
    print(f"same as the same batches one after the other: {now == _votes(args.clip, model, store, args.fps, False)}")
    for v in names[1:]:
        with variant(v) as threaded:
            same = _votes(args.clip, model, store, args.fps, threaded) == now
        print(f"same frame times, votes and neighbours as {v}: {same}")
    report = {}
    for n in args.threads:
        torch.set_num_threads(n)
        runs: dict[str, list] = {v: [] for v in names}
        for i in range(args.repeats + 1):  # pass 0 warms up: first-call costs (allocators, caches)
            for v in names:
                with variant(v) as threaded:
                    r = one_pass(args.clip, model, store, args.fps, threaded)
                runs[v] += [r] if i else []
        for v in names:
            rows = {s: {"min": min(r[s][0] for r in runs[v]), "median": statistics.median(r[s][0] for r in runs[v]),
                        "cpu_min": min(r[s][1] for r in runs[v])} for s in STAGES}
            report[f"{v}, {n} threads"] = {"frames": runs[v][0]["frames"][0], "stages": rows,
                                           "load": os.getloadavg()[0]}
            print(f"\n{v}, torch threads {n}: {runs[v][0]['frames'][0]} frames, {args.repeats} passes "
                  f"(seconds; load average {os.getloadavg()[0]:.1f})")
            print(f"  {'stage':<24}{'min':>8}{'median':>8}{'CPU min':>9}")
            for s in STAGES:
                print(f"  {s:<24}{rows[s]['min']:>8.3f}{rows[s]['median']:>8.3f}{rows[s]['cpu_min']:>9.3f}")
        cpu = [thread_cpu(args.clip, model, store, args.fps) for _ in range(3)]
        cpu = {k: statistics.median(c[k] for c in cpu) for k in cpu[0]}
        report[f"thread CPU, {n} threads"] = cpu
        print("  CPU s by thread, threaded path (median of 3): " + ", ".join(f"{k} {v:.3f}" for k, v in cpu.items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
