"""Frame sampling (real video, GIF, frame folders, broken files) and label timelines."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from media import encode_video
from PIL import Image

from core.schema import UNKNOWN, default_schema
from core.timeline import Segment, describe, timeline
from core.video import VideoError, sample_frames

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
LANELINES = FIXTURES / "udacity-lanelines"
VIDEO = LANELINES / "test_videos" / "solidWhiteRight.mp4"
IMAGES = LANELINES / "test_images"

needs_video = pytest.mark.skipif(not VIDEO.is_file(), reason=f"real fixture video not found at {VIDEO}")
needs_images = pytest.mark.skipif(not IMAGES.is_dir(), reason=f"real fixture images not found at {IMAGES}")


@pytest.fixture(scope="module")
def video_2fps() -> list[tuple[float, np.ndarray]]:
    return list(sample_frames(VIDEO, fps=2.0))


# ---- real video ------------------------------------------------------------------------------
@needs_video
def test_real_video_2fps(video_2fps):
    times = [t for t, _ in video_2fps]
    assert 16 <= len(video_2fps) <= 19  # about 8.8 s * 2 fps
    assert times[0] == 0.0
    gaps = np.diff(times)
    assert np.all(gaps > 0)
    assert np.allclose(gaps, 0.5, atol=0.05)
    for _, frame in video_2fps:
        assert frame.shape == (540, 960, 3)
        assert frame.dtype == np.uint8
    # Real footage, not a blank decode: frames vary and differ over time.
    assert video_2fps[0][1].std() > 10
    assert np.abs(video_2fps[0][1].astype(int) - video_2fps[-1][1].astype(int)).mean() > 1


@needs_video
def test_real_video_1fps_is_about_half(video_2fps):
    one = list(sample_frames(VIDEO, fps=1.0))
    assert abs(len(one) - len(video_2fps) / 2) <= 1
    assert np.allclose(np.diff([t for t, _ in one]), 1.0, atol=0.05)
    # Sampling picks real frames: the 1 fps frames are a subset of the 2 fps ones.
    by_time = {round(t, 3): f for t, f in video_2fps}
    for t, f in one:
        assert np.array_equal(by_time[round(t, 3)], f)


@needs_video
def test_real_video_max_frames_and_size_guard(tmp_path):
    assert len(list(sample_frames(VIDEO, fps=2.0, max_frames=3))) == 3
    with pytest.raises(VideoError, match=VIDEO.name):
        sample_frames(VIDEO, max_bytes=1000)


@needs_video
def test_truncated_video_raises(tmp_path):
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(VIDEO.read_bytes()[:2048])
    with pytest.raises(VideoError, match="truncated.mp4"):
        list(sample_frames(bad))


def test_text_file_renamed_mp4_raises(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 20)
    with pytest.raises(VideoError, match="notes.mp4") as info:
        sample_frames(bad)
    # PyAV's own exception must not leak as the cause shown to the user.
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_empty_missing_and_unsupported_files_raise(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(VideoError, match="empty.mp4.*empty"):
        sample_frames(empty)
    with pytest.raises(VideoError, match="missing.mov"):
        sample_frames(tmp_path / "missing.mov")
    doc = tmp_path / "readme.txt"
    doc.write_text("x")
    with pytest.raises(VideoError, match="readme.txt.*unsupported"):
        sample_frames(doc)
    with pytest.raises(ValueError):
        sample_frames(empty, fps=0)


# ---- GIF and frame folders -------------------------------------------------------------------
def _solid(level: int, size: tuple[int, int] = (32, 24)) -> Image.Image:
    return Image.fromarray(np.full((size[1], size[0], 3), level, np.uint8))


def test_gif_written_with_pil(tmp_path):
    gif = tmp_path / "anim.gif"
    frames = [_solid(i * 40) for i in range(6)]
    # 250 ms per frame: 1.5 s in all; at 2 fps every other frame.
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=250, loop=0)
    out = list(sample_frames(gif, fps=2.0))
    assert [round(t, 2) for t, _ in out] == [0.0, 0.5, 1.0]
    assert [int(f[0, 0, 0]) for _, f in out] == [0, 80, 160]
    assert out[0][1].shape == (24, 32, 3) and out[0][1].dtype == np.uint8


@pytest.mark.parametrize("ext", ["avi", "mkv", "mov", "mp4"])
def test_containers_written_with_pyav(tmp_path, ext):
    import av

    path = tmp_path / f"clip.{ext}"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):  # 2 s at 10 fps, brightness rising by 12 per frame
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 12, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    got = list(sample_frames(path, fps=2.0))
    assert [round(t, 2) for t, _ in got] == [0.0, 0.5, 1.0, 1.5]
    # Lossy codec: the level is close to the one written for frames 0, 5, 10, 15.
    assert [abs(int(f[..., 0].mean()) - 60 * k) <= 4 for k, (_, f) in enumerate(got)] == [True] * 4
    assert got[0][1].shape == (48, 64, 3)


def test_folder_of_frames(tmp_path):
    # Natural order: frame_2 comes before frame_10.
    for i in range(12):
        _solid(i * 20).save(tmp_path / f"frame_{i}.png")
    (tmp_path / "notes.txt").write_text("ignored")
    out = list(sample_frames(tmp_path, fps=2.0, folder_fps=4.0))
    assert [t for t, _ in out] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert [int(f[0, 0, 0]) for _, f in out] == [0, 40, 80, 120, 160, 200]
    # Default folder_fps is 2: every frame at 2 fps.
    assert len(list(sample_frames(tmp_path))) == 12
    assert len(list(sample_frames(tmp_path, max_frames=5))) == 5


def test_folder_errors(tmp_path):
    with pytest.raises(VideoError, match="no image files"):
        sample_frames(tmp_path)
    _solid(0).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not really a png")
    with pytest.raises(VideoError, match="b.png"):
        list(sample_frames(tmp_path))


@needs_images
def test_fixture_jpegs_as_frame_folder():
    out = list(sample_frames(IMAGES, fps=2.0))
    assert len(out) == len([p for p in IMAGES.iterdir() if p.suffix.lower() == ".jpg"]) == 6
    assert [t for t, _ in out] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    for _, frame in out:
        assert frame.shape == (540, 960, 3) and frame.dtype == np.uint8


# ---- timelines -------------------------------------------------------------------------------
SCHEMA = default_schema()


def _frames_with(attr_index: int, seq: list[int]) -> list[dict[str, str]]:
    """Label sets where one attribute follows ``seq`` (value indices) and the rest are constant.

    Every attribute other than the varied one gets its first value; rules between attributes
    do not matter to the timeline.
    """
    attrs = SCHEMA.attributes
    out = []
    for k in seq:
        lab = {a.name: a.values[0].name for a in attrs}
        lab[attrs[attr_index].name] = attrs[attr_index].values[k].name
        out.append(lab)
    return out


def test_timeline_merges_runs():
    attr = SCHEMA.attributes[0]
    times = [0.5 * i for i in range(7)]
    labels = _frames_with(0, [0, 0, 1, 1, 1, 2, 2])
    segs = timeline(times, labels, SCHEMA)
    mine = [s for s in segs if s.attribute == attr.name]
    assert mine == [
        Segment(attr.name, attr.values[0].name, 0.0, 1.0, 2),
        Segment(attr.name, attr.values[1].name, 1.0, 2.5, 3),
        Segment(attr.name, attr.values[2].name, 2.5, 3.5, 2),
    ]
    # Constant attributes are one segment each, in schema order, covering the whole clip.
    others = [s for s in segs if s.attribute != attr.name]
    assert [s.attribute for s in others] == SCHEMA.names[1:]
    assert all((s.start_s, s.end_s, s.n_frames) == (0.0, 3.5, 7) for s in others)


def test_timeline_smoothing_removes_one_frame_blip():
    attr = SCHEMA.attributes[-1]
    idx = len(SCHEMA.attributes) - 1
    times = [0.5 * i for i in range(7)]
    labels = _frames_with(idx, [0, 0, 0, 1, 0, 0, 0])
    raw = [s for s in timeline(times, labels, SCHEMA) if s.attribute == attr.name]
    assert len(raw) == 3 and raw[1].value == attr.values[1].name and raw[1].n_frames == 1
    smooth = [s for s in timeline(times, labels, SCHEMA, smoothing=3) if s.attribute == attr.name]
    assert smooth == [Segment(attr.name, attr.values[0].name, 0.0, 3.5, 7)]
    # A two-frame run survives a 3-window but not a 5-window.
    labels2 = _frames_with(idx, [0, 0, 0, 1, 1, 0, 0, 0])
    times2 = [0.5 * i for i in range(8)]
    assert len([s for s in timeline(times2, labels2, SCHEMA, smoothing=3) if s.attribute == attr.name]) == 3
    assert len([s for s in timeline(times2, labels2, SCHEMA, smoothing=5) if s.attribute == attr.name]) == 1


def test_timeline_smoothing_keeps_segments_contiguous():
    rng = random.Random(0)
    attr = SCHEMA.attributes[0]
    for _ in range(20):
        n = rng.randint(1, 30)
        seq = [rng.randrange(len(attr.values)) for _ in range(n)]
        times = [0.25 * i for i in range(n)]
        for w in (1, 3, 5):
            segs = [s for s in timeline(times, _frames_with(0, seq), SCHEMA, smoothing=w) if s.attribute == attr.name]
            assert sum(s.n_frames for s in segs) == n
            assert segs[0].start_s == 0.0
            for a, b in zip(segs, segs[1:], strict=False):
                assert a.end_s == pytest.approx(b.start_s)
                assert a.value != b.value


def test_timeline_missing_attribute_is_unknown_and_errors():
    attr = SCHEMA.attributes[0]
    segs = timeline([0.0, 1.0], [{}, {}], SCHEMA)
    assert {s.value for s in segs} == {UNKNOWN}
    assert len(segs) == len(SCHEMA.attributes)
    assert timeline([], [], SCHEMA) == []
    with pytest.raises(ValueError):
        timeline([0.0], [{}, {}], SCHEMA)
    with pytest.raises(ValueError):
        timeline([0.0, 1.0], [{}, {}], SCHEMA, smoothing=2)
    with pytest.raises(ValueError):
        timeline([1.0, 0.0], [{}, {}], SCHEMA)
    single = timeline([2.0], [{attr.name: attr.values[0].name}], SCHEMA)[0]
    assert (single.start_s, single.end_s, single.n_frames) == (2.0, 2.0, 1)


def test_describe_uses_display_names():
    for attr in SCHEMA:
        v = attr.values[-1]
        text = describe(Segment(attr.name, v.name, 2.0, 4.5, 6), SCHEMA)
        assert text == f"{v.display}, 2.0-4.5 s"
    attr = SCHEMA.attributes[0]
    assert describe(Segment(attr.name, UNKNOWN, 0.0, 1.3), SCHEMA) == f"{UNKNOWN}, 0.0-1.3 s"


# ---- limits, decode reports and names (issue 18) ----------------------------------------------
def write_clip(path: Path, frames: int, rate: float = 10, size: tuple[int, int] = (64, 48), *,
               fmt: str | None = None, options: dict | None = None) -> Path:
    """An mpeg4 clip whose frame i is a flat grey of level 8 * i (mod 256)."""
    w, h = size
    greys = (np.full((h, w, 3), (i * 8) % 256, np.uint8) for i in range(frames))
    return encode_video(path, greys, size, rate=rate, fmt=fmt, container=options)


def _reference_sampling(times: list[float], step: float) -> list[int]:
    """Brute force: for each target n * step up to the last time, the nearest of all items (ties
    and near-ties to the earlier one), each item once, in order."""
    eps = 1e-6
    picked: list[int] = []
    if not times:
        return picked
    n = 0
    while n * step <= times[-1] + eps:
        target = n * step
        best = min(abs(t - target) for t in times)
        i = next(i for i, t in enumerate(times) if abs(t - target) <= best + eps)
        if not picked or picked[-1] != i:
            picked.append(i)
        n += 1
    return picked


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 600), max_size=40, unique=True), st.sampled_from([1, 2, 3, 5, 10, 30]),
       st.sampled_from([0.5, 0.25, 1.0, 2.0, 1 / 3]))
def test_sampling_matches_brute_force(ticks, per_second, step):
    from core.video import _nearest_per_target

    # Strictly increasing, as decoding guarantees (it drops frames whose time does not advance).
    times = sorted(t / per_second for t in ticks)
    got = [i for _, i in _nearest_per_target(((t, i) for i, t in enumerate(times)), step)]
    assert got == _reference_sampling(times, step)


def test_sampling_jumps_over_a_huge_timestamp():
    from core.video import _nearest_per_target

    # A damaged timestamp 30,000 years in: no turn per skipped target (this once took forever).
    items = [(0.0, "a"), (0.5, "b"), (1e12, "c"), (1e12 + 0.5, "d")]
    assert list(_nearest_per_target(items, 0.5)) == items


def test_complete_clip_has_a_complete_report(tmp_path):
    frames = sample_frames(write_clip(tmp_path / "ok.mp4", 20), fps=2.0)
    got = list(frames)
    assert [round(t, 2) for t, _ in got] == [0.0, 0.5, 1.0, 1.5]
    d = frames.report.to_dict()
    # Every frame is decoded or skipped as not needed by the samples (core.video_plan).
    assert d.pop("frames_decoded") + d.pop("frames_skipped") == 20
    assert d == {"frames_expected": 20, "frames_corrupt": 0, "errors": 0, "gaps": [], "truncated": False,
                 "complete": True}
    assert frames.report.summary() == ""


def test_truncated_clip_reports_what_is_missing(tmp_path):
    # faststart: the frame index comes first, so a cut file still opens and declares 40 frames.
    clip = write_clip(tmp_path / "full.mp4", 40, options={"movflags": "faststart"})
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    frames = sample_frames(cut, fps=2.0)
    got = list(frames)
    rep = frames.report
    assert 0 < rep.frames_decoded < 40 and rep.frames_expected == 40
    assert len(got) < 8 and rep.truncated and not rep.complete
    # One gap, from the end of the last frame read (decoded, or skipped as not needed by the
    # samples; frame i lasts from 0.1 i to 0.1 (i + 1)) to the declared end, 4.0 s.
    (a, b), = rep.gaps
    assert a == pytest.approx(0.1 * rep.frames_read) and b == pytest.approx(4.0)
    d = rep.to_dict()
    assert d["complete"] is False and d["gaps"] == [[round(a, 3), round(b, 3)]]
    assert f"{rep.frames_decoded} of 40 frames decoded" in rep.summary()


def test_bit_flipped_clip_is_not_reported_complete(tmp_path):
    data = bytearray(write_clip(tmp_path / "full.mp4", 40).read_bytes())
    rng = random.Random(1)
    for _ in range(30):  # flips in the frame data (the header is in the first bytes)
        i = rng.randrange(len(data) // 4, len(data) * 3 // 4)
        data[i] ^= 1 << rng.randrange(8)
    bad = tmp_path / "flipped.mp4"
    bad.write_bytes(bytes(data))
    frames = sample_frames(bad, fps=2.0)
    list(frames)
    rep = frames.report
    assert rep.finished and not rep.complete
    assert rep.frames_corrupt + rep.errors > 0
    assert "damaged clip" in rep.summary()


def test_clip_limits_refuse_long_clips_with_the_limit_named(tmp_path, monkeypatch):
    from core.video import ENV_MAX_SAMPLES, ENV_MAX_SECONDS, ClipLimits

    clip = write_clip(tmp_path / "long.mp4", 30, rate=2)  # 15 s
    with pytest.raises(VideoError, match=rf"long.mp4: 15.0 s is longer than the 10 s limit.*{ENV_MAX_SECONDS}"):
        sample_frames(clip, limits=ClipLimits(max_seconds=10))
    monkeypatch.setenv(ENV_MAX_SECONDS, "12")
    with pytest.raises(VideoError, match="the 12 s limit"):
        sample_frames(clip)
    monkeypatch.delenv(ENV_MAX_SECONDS)
    monkeypatch.setenv(ENV_MAX_SAMPLES, "20")
    with pytest.raises(VideoError, match=rf"sampling at 2 fps gives more than 20 frames.*{ENV_MAX_SAMPLES}"):
        sample_frames(clip, fps=2.0)
    assert len(list(sample_frames(clip, fps=1.0))) == 15  # 15 samples: within the limit
    monkeypatch.setenv(ENV_MAX_SAMPLES, "lots")
    with pytest.raises(VideoError, match=f"{ENV_MAX_SAMPLES}='lots' is not a number"):
        sample_frames(clip)
    monkeypatch.delenv(ENV_MAX_SAMPLES)
    assert ClipLimits.from_env() == ClipLimits(600.0, 1200)


def test_clip_without_declared_duration_is_stopped_at_the_limit(tmp_path):
    from core.video import ClipLimits

    # A live Matroska stream declares no duration: only decoding finds how long it runs.
    clip = write_clip(tmp_path / "live.mkv", 60, rate=4, fmt="matroska", options={"live": "1"})
    frames = sample_frames(clip, fps=1.0, limits=ClipLimits(max_seconds=5))
    with pytest.raises(VideoError, match="live.mkv: the clip runs past the 5 s limit"):
        list(frames)
    with pytest.raises(VideoError, match="more than 6 frames"):
        list(sample_frames(clip, fps=2.0, limits=ClipLimits(max_frames=6)))


def test_folder_limits(tmp_path):
    from core.video import ClipLimits

    for i in range(12):
        _solid(i * 20).save(tmp_path / f"frame_{i}.png")
    with pytest.raises(VideoError, match="more than 5 frames"):
        sample_frames(tmp_path, limits=ClipLimits(max_frames=5))
    with pytest.raises(VideoError, match="5.5 s is longer than the 3 s limit"):
        sample_frames(tmp_path, limits=ClipLimits(max_seconds=3))
    frames = sample_frames(tmp_path, max_frames=5)
    assert len(list(frames)) == 5 and frames.report.complete


def test_video_frame_size_limit(tmp_path, monkeypatch):
    clip = write_clip(tmp_path / "big.mp4", 4)
    monkeypatch.setenv("SCENESCOPE_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(VideoError, match=r"big.mp4: 64x48 = 3,072 pixels is over the 1,000-pixel limit"):
        sample_frames(clip)


def test_names_and_special_files_get_accurate_messages(tmp_path):
    clip = write_clip(tmp_path / "x.mp4", 4).read_bytes()
    (tmp_path / ".mp4").write_bytes(clip)
    with pytest.raises(VideoError, match=r"'.mp4': the name is only an extension"):
        sample_frames(tmp_path / ".mp4")
    (tmp_path / "clip.mp4 ").write_bytes(clip)
    with pytest.raises(VideoError, match=r"'clip.mp4 ': the file name ends with a space"):
        sample_frames(tmp_path / "clip.mp4 ")
    (tmp_path / "noext").write_bytes(clip)
    with pytest.raises(VideoError, match="'noext': the file name has no extension"):
        sample_frames(tmp_path / "noext")
    (tmp_path / "zero.mp4").symlink_to("/dev/zero")
    with pytest.raises(VideoError, match=r"zero.mp4: not a regular file \(a character device\)"):
        sample_frames(tmp_path / "zero.mp4")
    os.mkfifo(tmp_path / "pipe.mp4")  # opening it would block forever
    with pytest.raises(VideoError, match=r"pipe.mp4: not a regular file \(a FIFO\)"):
        sample_frames(tmp_path / "pipe.mp4")
    (tmp_path / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    with pytest.raises(VideoError, match="gone.mp4: broken link"):
        sample_frames(tmp_path / "gone.mp4")
