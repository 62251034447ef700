"""Frame sampling (real video, GIF, frame folders, broken files) and label timelines."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.schema import UNKNOWN, default_schema
from core.video import Segment, VideoError, describe, sample_frames, timeline

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
