"""Test clips written with PyAV: one encoder loop for every test that needs a video file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np


def encode_video(path: Path, frames: Iterable[np.ndarray], size: tuple[int, int], *, codec: str = "mpeg4",
                 rate: float = 10, options: dict | None = None, fmt: str | None = None,
                 container: dict | None = None, gop_size: int | None = None) -> Path:
    """Encode RGB ``frames`` (each ``size`` = (width, height)) at ``rate`` fps, frame i at pts i.
    ``options`` go to the codec, ``container`` to the muxer, ``fmt`` names the container format."""
    import av

    w, h = size
    with av.open(str(path), "w", format=fmt, options=container or {}) as out:
        stream = out.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if gop_size is not None:
            stream.codec_context.gop_size = gop_size
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
