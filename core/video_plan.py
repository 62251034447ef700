"""What a clip's stream and packets say before decoding: its declared facts and the packets no
sampled frame needs.

Sampling at 2 fps keeps one frame in about 12 of a 25 fps clip, but a frame can only be decoded
after every frame it depends on since the last keyframe. :func:`skippable` reads the packets'
timestamps and keyframe flags (demuxing only: no decoding), picks the sampled frames exactly as
decoding would, and names the packets after the last sample of each keyframe interval up to the
next keyframe: nothing sampled depends on them. Decoding the rest gives the same frames, pixel for
pixel (decoding restarts at a keyframe, which by definition needs nothing before it). On the
8.8 s Udacity clip (keyframes every 1.2 s) that is 174 of 221 frames, ~15% of the decode's CPU.

A skipped packet counts as read (``DecodeReport.frames_skipped``): damage inside it goes unseen,
as nothing sampled depends on it. Only plain streams get a plan: every packet timed, times strictly increasing in decode order (no
reordered B-frames), the first packet a keyframe, times within the declared length. Anything else
is decoded straight through, as are the packets of a clip whose demuxing fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StreamInfo:
    rate: float  # nominal frames per second
    origin: float | None  # the stream's declared start time (s)
    end: float | None  # declared duration (s) from ``origin``
    frames: int | None  # declared frame count


def stream_info(container: object, stream: object) -> StreamInfo:
    tb = float(stream.time_base) if stream.time_base else None
    rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
    origin = float(stream.start_time * tb) if tb and stream.start_time is not None else None
    if tb and stream.duration:
        end = float(stream.duration * tb)
    elif container.duration:  # e.g. MKV: only the container's (all streams) duration is declared
        end = float(container.duration) / 1e6
    else:
        end = None
    return StreamInfo(rate, origin, end, int(stream.frames) if stream.frames else None)


Picker = Callable[[Iterable[tuple[float, int]], float], Iterator[tuple[float, int]]]


def skippable(path: Path, step: float, pick: Picker, max_packets: int) -> dict[int, float] | None:
    """``{pts: time in s from the first frame}`` of the packets no sample needs, or None (decode
    every packet; also past ``max_packets``). ``pick`` is the sampler (``core.video._nearest_per_target``)."""
    import av

    packets: list[tuple[int | None, bool]] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            info = stream_info(container, stream)
            tb = float(stream.time_base or 0)
            for p in container.demux(stream):
                if len(packets) > max_packets:
                    return None
                if p.size:
                    packets.append((p.pts, p.is_keyframe))
    except (av.FFmpegError, IndexError):
        return None
    if not tb or not packets or not packets[0][1] or any(pts is None for pts, _ in packets):
        return None
    pts = [p for p, _ in packets]
    if any(b <= a for a, b in zip(pts, pts[1:], strict=False)):
        return None  # reordered or repeated times: the decoder's order is not the frames' order
    raw0 = pts[0] * tb
    # Mirror decoding's clock: times count from the first frame unless frames are missing at the
    # start (then from the declared start); that case, and times past the declared end, are rare
    # enough to decode straight through.
    if info.origin is not None and raw0 - info.origin > 1.5 / info.rate:
        return None
    times = [p * tb - raw0 for p in pts]
    if info.end is not None and times[-1] > info.end + max(1.0, 0.1 * info.end):
        return None
    needed = _needed(times, [k for _, k in packets], step, pick)
    return {p: t for i, (p, t) in enumerate(zip(pts, times, strict=True)) if i not in needed}


def _needed(times: list[float], keys: list[bool], step: float, pick: Picker) -> set[int]:
    """Packet indices from each sampled frame's keyframe up to the frame after it (the sampler
    keeps a frame before its target once it sees the next one)."""
    key_of, key = [], 0
    for i, k in enumerate(keys):
        key = i if k else key
        key_of.append(key)
    needed: set[int] = set()
    start = 0
    for _, i in pick(((t, i) for i, t in enumerate(times)), step):
        needed.update(range(max(key_of[i], start), min(i + 2, len(times))))
        start = i + 2
    return needed


__all__ = ["StreamInfo", "skippable", "stream_info"]
