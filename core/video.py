"""Videos as timed frames, and per-frame labels as timelines of segments.

Frames are sampled by timestamp while decoding straight through (no seeking): seeking lands on
keyframes, which makes the sampled times depend on the encoder's GOP layout.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from core.schema import UNKNOWN, Schema

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".gif", ".webm", ".m4v")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_MAX_BYTES = 4 * 1024**3
# Float slack when comparing a frame's time with a sampling target (both are multiples of
# small fractions that binary floats cannot hold exactly).
_EPS = 1e-6

T = TypeVar("T")


class VideoError(ValueError):
    """A video (or frame folder) that cannot be read; the message names the file and the problem."""


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
        while n * step <= t + _EPS:
            target = n * step
            n += 1
            # Near-ties go to the earlier frame so float noise cannot flip the choice.
            if prev is not None and target - prev[0] <= t - target + _EPS:
                if not emitted_prev:
                    emitted_prev = True
                    yield prev
            elif not emitted_cur:
                emitted_cur = True
                yield t, item
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
    folder: Path, step: float, max_frames: int | None, folder_fps: float, max_bytes: int | None
) -> Iterator[tuple[float, np.ndarray]]:
    from PIL import Image, UnidentifiedImageError

    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=_natural_key,
    )
    if not files:
        raise VideoError(f"{folder.name}: folder has no image files ({', '.join(IMAGE_SUFFIXES)})")
    for p in files:
        _check_size(p, max_bytes)

    def gen() -> Iterator[tuple[float, np.ndarray]]:
        count = 0
        for t, p in _nearest_per_target(((i / folder_fps, p) for i, p in enumerate(files)), step):
            try:
                with Image.open(p) as im:
                    arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            except (OSError, UnidentifiedImageError, ValueError) as e:
                raise VideoError(f"{p.name}: cannot read frame image ({e})") from None
            yield t, arr
            count += 1
            if max_frames is not None and count >= max_frames:
                return

    return gen()


def _av_error(path: Path, e: Exception) -> VideoError:
    msg = str(e).replace(f": '{path}'", "").strip() or type(e).__name__
    return VideoError(f"{path.name}: not a readable video ({msg})")


def _video_frames(path: Path, step: float, max_frames: int | None) -> Iterator[tuple[float, np.ndarray]]:
    import av

    def decoded(container: av.container.InputContainer) -> Iterator[tuple[float, av.VideoFrame]]:
        if not container.streams.video:
            raise VideoError(f"{path.name}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        t0: float | None = None
        for i, frame in enumerate(container.decode(stream)):
            # Some containers (raw AVI, some GIFs) leave pts unset: fall back to frame count.
            t = frame.time if frame.time is not None else i / rate
            t0 = t if t0 is None else t0
            yield t - t0, frame

    # Probe eagerly so a broken file fails at the call, not at the first next() somewhere else.
    try:
        with av.open(str(path)) as container:
            if next(decoded(container), None) is None:
                raise VideoError(f"{path.name}: no decodable video frames")
    except av.FFmpegError as e:
        raise _av_error(path, e) from None

    def gen() -> Iterator[tuple[float, np.ndarray]]:
        count = 0
        try:
            with av.open(str(path)) as container:
                for t, frame in _nearest_per_target(decoded(container), step):
                    yield t, frame.to_ndarray(format="rgb24")
                    count += 1
                    if max_frames is not None and count >= max_frames:
                        return
        except av.FFmpegError as e:
            raise _av_error(path, e) from None

    return gen()


def sample_frames(
    path: str | Path,
    fps: float = 2.0,
    max_frames: int | None = None,
    folder_fps: float = 2.0,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(timestamp_s, HxWx3 uint8 RGB)`` about every ``1 / fps`` seconds.

    ``path`` is a video (mp4, mov, avi, mkv, gif, webm) or a folder of frame images, sorted by
    name and ``folder_fps`` apart. Each sample is the frame nearest a multiple of ``1 / fps``;
    timestamps are the frames' own times, counted from the first frame. Files over
    ``max_bytes`` are refused. The file is checked at the call: an empty, corrupt or non-video
    file raises VideoError naming it (decoding errors later in a file raise it when met).
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not folder_fps > 0:
        raise ValueError(f"folder_fps must be positive, got {folder_fps}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    p = Path(path)
    if p.is_dir():
        return _folder_frames(p, 1.0 / fps, max_frames, folder_fps, max_bytes)
    if not p.is_file():
        raise VideoError(f"{p.name}: file not found")
    if p.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoError(f"{p.name}: unsupported video type (expected {', '.join(VIDEO_SUFFIXES)})")
    _check_size(p, max_bytes)
    return _video_frames(p, 1.0 / fps, max_frames)


# ---- timelines -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """A run of consecutive frames with one value of one attribute."""

    attribute: str
    value: str
    start_s: float
    end_s: float
    n_frames: int = 0


def _majority(values: Sequence[str], window: int) -> list[str]:
    """Sliding-window majority (window clipped at the ends); ties keep the frame's own value."""
    half = window // 2
    out = []
    for i, own in enumerate(values):
        counts = Counter(values[max(0, i - half) : i + half + 1])
        best = max(counts.values())
        out.append(own if counts[own] == best else next(v for v, c in counts.items() if c == best))
    return out


def timeline(
    times: Sequence[float], labels: Sequence[dict[str, str]], schema: Schema, smoothing: int = 1
) -> list[Segment]:
    """Per attribute (schema order), merge consecutive frames with the same value into segments.

    A segment ends one frame interval (the median spacing of ``times``) after its last frame,
    so adjacent segments touch. ``smoothing`` is an odd window: each frame's value is first
    replaced by the majority over that many frames, which removes one-frame flickers.
    Attributes missing from a frame's labels count as unknown.
    """
    if len(times) != len(labels):
        raise ValueError(f"{len(times)} times but {len(labels)} label sets")
    if smoothing < 1 or smoothing % 2 == 0:
        raise ValueError(f"smoothing must be an odd window of at least 1, got {smoothing}")
    if not len(times):
        return []
    t = np.asarray(times, dtype=float)
    if np.any(np.diff(t) < 0):
        raise ValueError("times must be in increasing order")
    interval = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    segments: list[Segment] = []
    for attr in schema:
        values = [str(lab.get(attr.name, UNKNOWN)) for lab in labels]
        if smoothing > 1:
            values = _majority(values, smoothing)
        start = 0
        for i in range(1, len(values) + 1):
            if i == len(values) or values[i] != values[start]:
                segments.append(
                    Segment(attr.name, values[start], float(t[start]), float(t[i - 1]) + interval, i - start)
                )
                start = i
    return segments


def describe(segment: Segment, schema: Schema) -> str:
    """A one-line human description: "<display value>, 2.0-4.5 s"."""
    value = schema.display(segment.attribute, segment.value)
    return f"{value}, {segment.start_s:.1f}-{segment.end_s:.1f} s"


__all__ = ["DEFAULT_MAX_BYTES", "Segment", "VideoError", "describe", "sample_frames", "timeline"]
