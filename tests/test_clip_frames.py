"""A long uploaded clip's scrubber frames (issue 18, item 1): the workbench keeps each sampled
frame JPEG-encoded (``handlers.EncodedFrames``) and decodes the one shown, so the memory a clip
takes while its page is open stays far below its decoded pixels, and the peak while reading it
does not grow with its length."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np
from test_video import write_clip

W, H = 640, 360  # already display width: shrink keeps the size, so raw bytes are W * H * 3 a frame
RAW = W * H * 3


def _read(path: Path) -> tuple[object, np.ndarray, int]:
    """(frames, times, traced peak bytes) of ``upload_frames`` on the clip's bytes."""
    from app import handlers

    data = path.read_bytes()
    tracemalloc.start()
    try:
        frames, times, error = handlers.upload_frames(path.name, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error is None, error
    return frames, times, peak


def test_a_long_clips_frames_are_held_encoded_and_its_peak_does_not_grow_with_length(tmp_path: Path) -> None:
    from app.handlers import CLIP_FPS

    rate = Fraction(CLIP_FPS).limit_denominator(100)  # one clip frame per sample
    short, n_short = write_clip(tmp_path / "short.mp4", 10, rate=rate, size=(W, H)), 10
    long, n_long = write_clip(tmp_path / "long.mp4", 60, rate=rate, size=(W, H)), 60
    frames_s, _, peak_s = _read(short)
    frames, times, peak = _read(long)
    assert (len(frames_s), len(frames), len(times)) == (n_short, n_long, n_long)
    np.testing.assert_allclose(times, np.arange(n_long) / float(rate), atol=1e-6)
    # 50 more frames read: held all at once they would add 50 * RAW (41 MB) to the peak
    assert peak - peak_s < 5 * RAW, (peak_s, peak)
    assert frames.nbytes < n_long * RAW / 20, frames.nbytes  # what the page holds
    for i in (0, 7, n_long - 1):  # each decodes to the frame written: flat grey of level 8 * i
        f = frames[i]
        assert f.shape == (H, W, 3) and f.dtype == np.uint8
        assert abs(float(f.mean()) - (8 * i) % 256) < 3, (i, f.mean())
    assert [g.shape for g in frames[2:4]] == [(H, W, 3)] * 2 and len(list(frames)) == n_long


def test_encoded_frames_keep_missing_frames_missing() -> None:
    from app.handlers.playback import EncodedFrames

    grey = np.full((4, 6, 3), 200, np.uint8)
    frames = EncodedFrames([grey, None])
    assert len(frames) == 2 and frames[1] is None and frames[-1] is None
    assert np.abs(frames[0].astype(int) - 200).max() <= 2
