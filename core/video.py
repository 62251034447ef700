"""Videos as timed frames (their labels over time are in :mod:`core.timeline`).

Frames are sampled by timestamp while decoding straight through (no seeking: seeking lands on
keyframes, which makes the sampled times depend on the encoder's GOP layout); packets no sampled
frame depends on are not decoded (:mod:`core.video_plan`). Only the sampled frames are converted to
RGB, one at a time, so memory does not grow with the clip's length; a
clip's duration and sampled frame count are capped (:class:`ClipLimits`), and what the decoder
could not read is counted in a :class:`DecodeReport` instead of being skipped silently.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from core.decode_report import DecodeReport
from core.images import ImageError, max_pixels, open_image, regular_file_problem, too_many_pixels
from core.video_plan import skippable, stream_info

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".gif", ".webm", ".m4v")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_MAX_BYTES = 4 * 1024**3
DEFAULT_MAX_SECONDS = 600.0  # 10 minutes: longer drives are better split into scenes
DEFAULT_MAX_SAMPLES = 1200  # 10 minutes at the default 2 fps
ENV_MAX_SECONDS = "SCENESCOPE_MAX_CLIP_SECONDS"
ENV_MAX_SAMPLES = "SCENESCOPE_MAX_CLIP_FRAMES"
# Decoded (not sampled) frames per second of clip beyond which a stream is treated as hostile:
# a header can claim any rate, and every decoded frame costs time even when none is sampled.
MAX_DECODE_RATE = 1000
# FFmpeg sizes its frame-thread pool to the machine (one frame buffer per thread); a fixed small
# pool keeps a decode's memory the same on a 2-core laptop and a 64-core server.
DECODE_THREADS = 4
# Float slack when comparing a frame's time with a sampling target (both are multiples of
# small fractions that binary floats cannot hold exactly).
_EPS = 1e-6

T = TypeVar("T")


class VideoError(ValueError):
    """A video (or frame folder) that cannot be read; the message names the file and the problem."""


@dataclass(frozen=True)
class ClipLimits:
    """The longest clip accepted, in seconds and in sampled frames.

    Defaults come from $SCENESCOPE_MAX_CLIP_SECONDS and $SCENESCOPE_MAX_CLIP_FRAMES
    (:meth:`from_env`); a clip over either is refused with a message naming the limit.
    """

    max_seconds: float = DEFAULT_MAX_SECONDS
    max_frames: int = DEFAULT_MAX_SAMPLES

    @classmethod
    def from_env(cls) -> ClipLimits:
        def read(env: str, default: float, kind: Callable[[str], float]) -> float:
            raw = os.environ.get(env, "").strip()
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise VideoError(f"{env}={raw[:40]!r} is not a number") from None
            if not (math.isfinite(value) and value > 0):
                raise VideoError(f"{env}={raw[:40]!r} must be a positive number")
            return value

        return cls(read(ENV_MAX_SECONDS, DEFAULT_MAX_SECONDS, float), int(read(ENV_MAX_SAMPLES, DEFAULT_MAX_SAMPLES, int)))

    def too_long(self, name: str, seconds: float | None = None) -> VideoError:
        what = f"{seconds:.1f} s is longer than" if seconds is not None else "the clip runs past"
        return VideoError(f"{name}: {what} the {self.max_seconds:g} s limit for a clip "
                          f"(set {ENV_MAX_SECONDS} to change it)")

    def too_many(self, name: str, fps: float) -> VideoError:
        return VideoError(f"{name}: sampling at {fps:g} fps gives more than {self.max_frames} frames, the limit "
                          f"for a clip (lower the fps, or set {ENV_MAX_SAMPLES} to change it)")


class Frames:
    """The ``(timestamp_s, HxWx3 uint8 RGB)`` samples of a clip, one at a time.

    ``report`` fills in while iterating and is final once the iteration ends.
    """

    def __init__(self, frames: Iterator[tuple[float, np.ndarray]], report: DecodeReport) -> None:
        self._frames = frames
        self.report = report

    def __iter__(self) -> Frames:
        return self

    def __next__(self) -> tuple[float, np.ndarray]:
        return next(self._frames)

    def close(self) -> None:
        close = getattr(self._frames, "close", None)
        if close is not None:
            close()


# ---- sampling --------------------------------------------------------------------------------
def _nearest_per_target(items: Iterable[tuple[float, T]], step: float) -> Iterator[tuple[float, T]]:
    """From items in time order, yield the one nearest each multiple of ``step``, each at most once.

    Targets beyond the last item's time are not filled, so a video yields about duration * fps
    frames and never repeats its last frame.
    """
    n = 0
    prev: tuple[float, T] | None = None
    emitted_prev = False
    for t, item in items:
        emitted_cur = False
        # Each turn jumps over the targets that cannot change the outcome, so a time far ahead
        # (a long pause, a damaged timestamp) costs a few turns, not one per skipped target.
        while n * step <= t + _EPS:
            target = n * step
            # Near-ties go to the earlier frame so float noise cannot flip the choice.
            if prev is not None and target - prev[0] <= t - target + _EPS:
                if not emitted_prev:
                    emitted_prev = True
                    yield prev
                # Targets up to the midpoint also go to prev, which is out already.
                n = max(n + 1, math.floor((prev[0] + t) / 2 / step))
            else:
                if not emitted_cur:
                    emitted_cur = True
                    yield t, item
                # Every later target up to t is nearer this item, which is out already (land on
                # the last one, not past it: the loop's own test decides, whatever the rounding).
                n = max(n + 1, math.floor((t + _EPS) / step))
        prev, emitted_prev = (t, item), emitted_cur


def _check_size(path: Path, max_bytes: int | None) -> None:
    size = path.stat().st_size
    if size == 0:
        raise VideoError(f"{path.name}: empty file")
    if max_bytes is not None and size > max_bytes:
        raise VideoError(f"{path.name}: {size} bytes is over the {max_bytes}-byte limit")


def _natural_key(p: Path) -> list[object]:
    # frame2 before frame10, as a human numbering frames expects.
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p.name)]


def _folder_frames(
    folder: Path, step: float, max_frames: int | None, folder_fps: float, max_bytes: int | None,
    limits: ClipLimits,
) -> Frames:
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=_natural_key,
    )
    if not files:
        raise VideoError(f"{folder.name}: folder has no image files ({', '.join(IMAGE_SUFFIXES)})")
    for p in files:
        _check_size(p, max_bytes)
    seconds = (len(files) - 1) / folder_fps
    if seconds > limits.max_seconds + _EPS:
        raise limits.too_long(folder.name, seconds)
    # Choosing the samples needs only the names, so the limit is checked before any decoding.
    picked = list(_nearest_per_target(((i / folder_fps, p) for i, p in enumerate(files)), step))
    if max_frames is not None:
        picked = picked[:max_frames]
    if len(picked) > limits.max_frames:
        raise limits.too_many(folder.name, 1.0 / step)
    report = DecodeReport(frames_expected=len(picked))

    def gen() -> Iterator[tuple[float, np.ndarray]]:
        for t, p in picked:
            try:
                arr = np.asarray(open_image(p), dtype=np.uint8)
            except ImageError as e:
                raise VideoError(f"cannot read frame image {e}") from None
            report.frames_decoded += 1
            yield t, arr
        report.finished = True

    return Frames(gen(), report)


def _av_error(path: Path, e: Exception) -> VideoError:
    msg = str(e).replace(f": '{path}'", "").strip() or type(e).__name__
    return VideoError(f"{path.name}: not a readable video ({msg[:120]})")


def _open_video(path: Path, limits: ClipLimits, fps: float) -> None:
    """Check the container at the call: it opens, has a video stream of a sane size and length,
    and at least one frame decodes."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoError(f"{path.name}: no video stream")
        stream = container.streams.video[0]
        problem = too_many_pixels(path.name, stream.codec_context.width, stream.codec_context.height, max_pixels())
        if problem:
            raise VideoError(problem)
        info = stream_info(container, stream)
        if info.end is not None:
            if info.end > limits.max_seconds + _EPS:
                raise limits.too_long(path.name, info.end)
            # Samples land on 0, 1/fps, ...: about end * fps of them for a clip ``end`` seconds long.
            if math.floor(info.end * fps - _EPS) + 1 > limits.max_frames:
                raise limits.too_many(path.name, fps)
        for packet in container.demux(stream):
            try:
                if packet.decode():
                    return
            except av.FFmpegError:
                continue
        raise VideoError(f"{path.name}: no decodable video frames")


def _video_frames(path: Path, step: float, max_frames: int | None, limits: ClipLimits) -> Frames:
    import av

    try:
        _open_video(path, limits, 1.0 / step)
    except av.FFmpegError as e:
        raise _av_error(path, e) from None
    report = DecodeReport()
    max_decoded = int(limits.max_seconds * MAX_DECODE_RATE)
    skip = (skippable(path, step, _nearest_per_target, max_decoded) if max_frames is None else None) or {}

    def decoded(container: av.container.InputContainer) -> Iterator[tuple[float, av.VideoFrame]]:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = DECODE_THREADS
        info = stream_info(container, stream)
        report.frames_expected = info.frames
        interval = 1.0 / info.rate
        origin = info.origin
        t0: float | None = None
        last = -math.inf
        holes: list[tuple[float, float]] = []
        passed: list[float] = []  # times of skipped packets, in order: frames still come out before them
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError:  # the container breaks off: the rest of the clip is lost
                report.errors += 1
                report.truncated = True
                break
            if packet.size and packet.pts in skip:  # no sample needs it: counted, not decoded
                report.frames_skipped += 1
                passed.append(skip[packet.pts])
                continue
            try:
                frames = packet.decode()
            except av.FFmpegError:  # one damaged packet: skip it, keep going
                report.errors += 1
                continue
            for frame in frames:
                if report.frames_decoded >= max_decoded:
                    raise VideoError(f"{path.name}: over {max_decoded} frames decoded, more than "
                                     f"{MAX_DECODE_RATE} per second of the {limits.max_seconds:g} s limit")
                problem = too_many_pixels(path.name, frame.width, frame.height, max_pixels())
                if problem:
                    raise VideoError(problem)
                # Some containers (raw AVI, some GIFs) leave pts unset: fall back to frame count.
                raw = frame.time if frame.time is not None else report.frames_decoded / info.rate
                if t0 is None:
                    # Count from the first frame, unless frames are missing at the start (the
                    # first decoded frame lies well after the declared start): then count from the
                    # start, so that times say where in the clip each frame is.
                    start = origin if origin is not None and raw - origin > 1.5 * interval else raw
                    t0 = start
                    if start < raw:
                        holes.append((0.0, raw - start))
                t = raw - t0
                if info.end is not None and t > info.end + max(1.0, 0.1 * info.end):
                    report.errors += 1  # a timestamp far past the declared end: damaged
                    continue
                if t <= last:  # time going backwards: a damaged (or unusable) timestamp
                    report.errors += 1
                    continue
                if t > limits.max_seconds + _EPS:
                    raise limits.too_long(path.name)
                while passed and passed[0] < t:  # skipped frames before this one are no hole
                    last = max(last, passed.pop(0))
                if t - last > 1.5 * interval and last > -math.inf:
                    holes.append((last + interval, t))
                last = t
                report.frames_decoded += 1
                report.frames_corrupt += bool(getattr(frame, "is_corrupt", False))
                yield t, frame
        last = max([last, *passed])
        if last > -math.inf and info.end is not None:
            end = info.end - (t0 - origin if origin is not None and t0 is not None else 0.0)
            if end - (last + interval) > interval:
                report.truncated = True
                holes.append((last + interval, end))
        damaged = (report.errors or report.truncated or report.frames_corrupt
                   or (report.frames_expected is not None and report.frames_read < report.frames_expected))
        # Long frames are normal in variable-rate clips (a GIF's pause): spans without frames are
        # called gaps only in a clip that shows damage.
        report.gaps = holes if damaged else []
        report.finished = True

    def gen() -> Iterator[tuple[float, np.ndarray]]:
        count = 0
        try:
            with av.open(str(path)) as container:
                for t, frame in _nearest_per_target(decoded(container), step):
                    if count >= limits.max_frames:
                        raise limits.too_many(path.name, 1.0 / step)
                    yield t, frame.to_ndarray(format="rgb24")
                    count += 1
                    if max_frames is not None and count >= max_frames:
                        return
        except av.FFmpegError as e:
            raise _av_error(path, e) from None

    return Frames(gen(), report)


def name_problem(path: Path, suffixes: Iterable[str]) -> str | None:
    """Why a file's name gives no usable type (none, hidden, trailing space, unknown), or None."""
    name, accepted = path.name, tuple(suffixes)
    if name != name.rstrip():
        return f"{name!r}: the file name ends with a space; rename it without the trailing space"
    if path.suffix.lower() in accepted:
        return None
    if name.startswith(".") and name.count(".") == 1 and name.lower() in accepted:
        return (f"{name!r}: the name is only an extension (a hidden file with no type); "
                f"rename it, e.g. to scene{name.lower()}")
    if not path.suffix:
        return f"{name!r}: the file name has no extension; expected one of {', '.join(accepted)}"
    return None


def sample_frames(
    path: str | Path,
    fps: float = 2.0,
    max_frames: int | None = None,
    folder_fps: float = 2.0,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    limits: ClipLimits | None = None,
) -> Frames:
    """Yield ``(timestamp_s, HxWx3 uint8 RGB)`` about every ``1 / fps`` seconds.

    ``path`` is a video (mp4, mov, avi, mkv, gif, webm) or a folder of frame images, sorted by
    name and ``folder_fps`` apart. Each sample is the frame nearest a multiple of ``1 / fps``;
    timestamps are the frames' own times, counted from the first frame. ``max_frames`` stops
    quietly after that many samples; ``limits`` (default :meth:`ClipLimits.from_env`) refuses a
    longer clip with a VideoError naming the limit. Files over ``max_bytes`` are refused. The
    file is checked at the call: an empty, corrupt or non-video file raises VideoError naming it;
    damage met later is counted in the returned iterator's ``report`` (a :class:`DecodeReport`).
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not folder_fps > 0:
        raise ValueError(f"folder_fps must be positive, got {folder_fps}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    limits = limits or ClipLimits.from_env()
    p = Path(path)
    if p.is_dir():
        return _folder_frames(p, 1.0 / fps, max_frames, folder_fps, max_bytes, limits)
    problem = regular_file_problem(p)
    if problem:
        raise VideoError(f"{p.name}: {problem}")
    problem = name_problem(p, VIDEO_SUFFIXES)
    if problem:
        raise VideoError(problem)
    if p.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoError(f"{p.name}: unsupported video type (expected {', '.join(VIDEO_SUFFIXES)})")
    _check_size(p, max_bytes)
    return _video_frames(p, 1.0 / fps, max_frames, limits)


__all__ = ["DEFAULT_MAX_BYTES", "ClipLimits", "DecodeReport", "Frames", "VideoError", "name_problem", "sample_frames"]
