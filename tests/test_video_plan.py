"""Decoding only the packets the samples need (core.video_plan) gives the same frames, pixel for
pixel, as decoding every packet; and the clip path's votes are the same as before (issue 23)."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from media import encode_video

import core.video as video
from core.video import sample_frames
from core.video_plan import skippable

CLIP = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "udacity-lanelines" / "test_videos" / "solidWhiteRight.mp4"
needs_clip = pytest.mark.skipif(not CLIP.is_file(), reason=f"real fixture video not found at {CLIP}")


def _write(path: Path, codec: str, options: dict, frames: list[np.ndarray], rate: int = 10,
           container: dict | None = None) -> Path:
    h, w = frames[0].shape[:2]
    return encode_video(path, frames, (w, h), codec=codec, rate=rate, options=options, container=container)


def _moving(n: int, size: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    """Frames that change a little each step (inter-frame prediction matters) with some noise."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size[0], size[1] * 2, 3), dtype=np.uint8)
    return [np.roll(base, 2 * i, axis=1)[:, : size[1]].copy() for i in range(n)]


def _both(path: Path, fps: float, monkeypatch: pytest.MonkeyPatch) -> tuple[list, list, object, object]:
    planned = sample_frames(path, fps=fps)
    a = list(planned)
    with monkeypatch.context() as m:
        m.setattr(video, "skippable", lambda *args: None)  # every packet decoded, as before
        full = sample_frames(path, fps=fps)
        b = list(full)
    return a, b, planned.report, full.report


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(ta == tb and np.array_equal(fa, fb) for (ta, fa), (tb, fb) in zip(a, b, strict=True))


@pytest.mark.parametrize(("name", "codec", "options", "planned"), [
    ("h264.mp4", "libx264", {"g": "8", "bf": "0", "refs": "3"}, True),
    ("h264.mkv", "libx264", {"g": "8", "bf": "0", "refs": "3"}, True),
    ("vp9.webm", "libvpx-vp9", {"g": "8"}, True),
    ("mpeg4.avi", "mpeg4", {"g": "6"}, True),
    ("bframes.mp4", "libx264", {"g": "8", "bf": "2"}, False),  # reordered: decoded straight through
])
@pytest.mark.parametrize("fps", [2.0, 0.7])
def test_planned_decode_gives_the_same_frames(tmp_path, monkeypatch, name, codec, options, planned, fps):
    clip = _write(tmp_path / name, codec, options, _moving(40))
    assert (skippable(clip, 1 / fps, video._nearest_per_target, 10**6) is not None) == planned
    a, b, rep_a, rep_b = _both(clip, fps, monkeypatch)
    assert _same(a, b)
    assert rep_a.complete and rep_b.complete and rep_b.frames_skipped == 0
    assert rep_a.frames_read == rep_b.frames_decoded
    assert (rep_a.frames_skipped > 0) == planned


def test_truncated_planned_clip_reports_the_same_gap(tmp_path, monkeypatch):
    # faststart: the frame index comes first, so a cut file still opens and declares 40 frames.
    clip = _write(tmp_path / "full.mp4", "libx264", {"g": "8", "bf": "0"}, _moving(40),
                  container={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    a, b, rep_a, rep_b = _both(cut, 2.0, monkeypatch)
    assert _same(a, b)
    assert rep_a.truncated and rep_b.truncated and not rep_a.complete
    # The cut-off packet is whole enough to demux: skipped, it counts as read (nothing sampled
    # needs it), where decoding it finds it damaged. The gap starts at most that frame later.
    ((a0, a1),), ((b0, b1),) = rep_a.gaps, rep_b.gaps
    assert a1 == b1 and 0 <= a0 - b0 <= 0.1 + 1e-9
    assert 0 <= rep_a.frames_read - rep_b.frames_decoded <= 1


@needs_clip
def test_real_clip_same_frames_fewer_decoded(monkeypatch):
    a, b, rep_a, rep_b = _both(CLIP, 2.0, monkeypatch)
    assert len(a) == 18 and _same(a, b)
    assert rep_a.complete and 0 < rep_a.frames_decoded < rep_b.frames_decoded == rep_a.frames_read


@needs_clip
def test_clip_path_votes_unchanged(tmp_path, monkeypatch, small_index):
    """classify_path with the plan and its thread choice against the path before: every packet
    decoded, the batch embedded at the process's thread count."""
    import av
    import torch

    from core import pipeline
    from core.index import IndexStore
    from core.models import load_model

    # A short real clip: the fixture's first 3 s, smaller, keyframes every 10 frames.
    with av.open(str(CLIP)) as src:
        frames = [f.to_ndarray(format="rgb24")[::3, ::3] for f in islice(src.decode(video=0), 75)]
    clip = _write(tmp_path / "short.mp4", "libx264", {"g": "10", "bf": "0"}, frames, rate=25)
    model = load_model(small_index.model)
    store = IndexStore.load(small_index.index, model=model)
    threads = torch.get_num_threads()
    now = pipeline.classify_path(clip, model, store)
    assert torch.get_num_threads() == threads and now.decode.frames_skipped > 0
    with monkeypatch.context() as m:
        m.setattr(video, "skippable", lambda *args: None)
        m.setattr(pipeline, "FRAMES_PER_THREAD", 1)
        before = pipeline.classify_path(clip, model, store)
    assert np.array_equal(now.times, before.times) and len(now.votes) == 6
    assert [v.labels() for v in now.votes] == [v.labels() for v in before.votes]
    assert [[n.id for n in v.neighbors] for v in now.votes] == [[n.id for n in v.neighbors] for v in before.votes]


def test_gif_with_partial_frames_gives_the_same_frames(tmp_path, monkeypatch):
    # Each GIF frame repaints a band over the last: only the first is a keyframe.
    from PIL import Image

    frames, cur = [], _moving(1)[0]
    for i in range(40):
        cur = cur.copy()
        cur[(i * 3) % 44:(i * 3) % 44 + 4] = (i * 37) % 256
        frames.append(Image.fromarray(cur))
    clip = tmp_path / "bands.gif"
    frames[0].save(clip, save_all=True, append_images=frames[1:], duration=100, loop=0)
    a, b, rep_a, rep_b = _both(clip, 2.0, monkeypatch)
    assert _same(a, b) and len(a) == 8
    assert rep_a.complete and rep_a.frames_read == rep_b.frames_decoded == 40
