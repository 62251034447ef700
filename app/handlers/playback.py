"""A clip's per-frame votes as WebVTT captions, so the browser's own video player draws them over
the playing clip (``st.video(subtitles=...)``) without a rerun per frame."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np
from PIL import Image

from core.schema import UNKNOWN

if TYPE_CHECKING:
    from core.predict import Vote
    from core.schema import Schema

UNSURE = "unsure"  # shown for an attribute whose vote abstained
LINE_ATTRIBUTES = 3  # attributes per caption line (two short lines for the demo schema's six)


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


def vote_caption(vote: Vote, schema: Schema) -> str:
    """One frame's votes in display names, ``Road type: Highway · Weather: Sunny``, a few per line;
    an abstained attribute reads "unsure"."""
    parts = []
    for a in schema.attributes:
        av = vote.attributes.get(a.name)
        value = UNKNOWN if av is None else av.value
        shown = UNSURE if av is None or av.abstained or value == UNKNOWN else a.display_of(value)
        parts.append(f"{a.display}: {shown}")
    return "\n".join(" · ".join(parts[i : i + LINE_ATTRIBUTES]) for i in range(0, len(parts), LINE_ATTRIBUTES))


def vote_cues(times: Sequence[float], votes: Sequence[Vote], schema: Schema, duration: float) -> list[Cue]:
    """Caption cues covering ``[0, duration]``: each sampled frame's votes from its time to the next
    frame's (the first from 0, the last to ``duration``); neighbouring frames that read the same
    merge into one cue, so the caption only changes when a vote does."""
    if len(times) != len(votes):
        raise ValueError(f"{len(times)} frame times but {len(votes)} votes")
    t = np.asarray(times, dtype=float)
    if len(t) and np.any(np.diff(t) < 0):
        raise ValueError("frame times must be in increasing order")
    cues: list[Cue] = []
    for i, vote in enumerate(votes):
        start = 0.0 if i == 0 else float(t[i])
        end = float(t[i + 1]) if i + 1 < len(t) else max(float(duration), start)
        text = vote_caption(vote, schema)
        if cues and cues[-1].text == text:
            cues[-1] = Cue(cues[-1].start_s, end, text)
        elif end > start:
            cues.append(Cue(start, end, text))
    return cues


def _stamp(s: float) -> str:
    ms = round(max(0.0, s) * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    return f"{h:02d}:{m:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def webvtt(cues: Sequence[Cue]) -> str:
    """The cues as a WebVTT file's text."""
    blocks = ["WEBVTT"]
    for n, c in enumerate(cues, start=1):
        blocks.append(f"{n}\n{_stamp(c.start_s)} --> {_stamp(c.end_s)}\n{c.text}")
    return "\n\n".join(blocks) + "\n"


def vote_captions(times: Sequence[float], votes: Sequence[Vote], schema: Schema, duration: float) -> str:
    """WebVTT captions of a clip's per-frame votes (see ``vote_cues``)."""
    return webvtt(vote_cues(times, votes, schema, duration))


class EncodedFrames(Sequence):
    """A clip's display frames for the scrubber, held JPEG-encoded and decoded one at a time when
    asked (``frames[i]``, iteration, slices), so a long clip's page holds about 30 KB a frame
    instead of the ~700 KB of a decoded 640x360 one (issue 18: memory bounded by the frame
    limit times a small constant, not by decoded pixels). ``None`` entries stay ``None``."""

    QUALITY = 90  # display only: no visible loss at this size

    def __init__(self, frames: Iterable[np.ndarray | None]) -> None:
        self._data = [None if f is None else self._encode(f) for f in frames]  # consumes a generator lazily

    @staticmethod
    def _encode(frame: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(np.asarray(frame, dtype=np.uint8)).convert("RGB").save(buf, "JPEG", quality=EncodedFrames.QUALITY)
        return buf.getvalue()

    @property
    def nbytes(self) -> int:
        """Bytes held for the frames' pixels (what the page keeps while the scene is shown)."""
        return sum(len(d) for d in self._data if d is not None)

    def __len__(self) -> int:
        return len(self._data)

    @overload
    def __getitem__(self, i: int) -> np.ndarray | None: ...
    @overload
    def __getitem__(self, i: slice) -> list[np.ndarray | None]: ...
    def __getitem__(self, i: int | slice) -> np.ndarray | None | list[np.ndarray | None]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        data = self._data[i]
        return None if data is None else np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def __iter__(self) -> Iterator[np.ndarray | None]:
        return (self[i] for i in range(len(self)))


def video_length(path: str | Path) -> float | None:
    """A video's declared length in seconds (None when the container declares none or cannot be
    opened: the caller then falls back to the sampled frames' times)."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            return float(container.duration) / 1e6 if container.duration else None
    except (OSError, IndexError, av.FFmpegError):
        return None
