"""A corpus of bad media, generated here: every file gets one clear error line or a result with a
decode report, through `scenescope classify --json`, within a time limit and a memory ceiling.

The corpus runs in one subprocess (torch starts once): each case is `python -m core.cli classify
... --json` run in it with runpy, its stdout and stderr caught at the file-descriptor level (so
FFmpeg's and PIL's own output counts too), under `resource.setrlimit(RLIMIT_AS)`.
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import subprocess
import sys
import weakref
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SmallIndex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media import encode_video
from PIL import Image

from core.images import DEFAULT_MAX_PIXELS, ENV_MAX_PIXELS, ImageError, open_image

CASE_SECONDS = 60  # per file: generous for a loaded 2-core machine; a hang takes far longer
HEADROOM = 1024**3  # RLIMIT_AS: the address space after loading torch, the model and the index, + 1 GiB
RSS_CEILING = 3 * 1024**3  # peak resident memory of the whole process, torch included
HD_GROWTH = 150 * 1024**2  # a 1080p clip may not raise the process's peak by more than this


# ---- corpus ------------------------------------------------------------------------------------
def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims ``width`` x ``height`` (CRC fixed, so only size is wrong)."""
    data = bytearray(png_bytes(Image.new("RGB", (1, 1))))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    return bytes(data)


def bomb_jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 120, 200)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def write_clip(path: Path, frames: int, rate: float, size: tuple[int, int], *, options: dict | None = None,
               gradient: bool = False) -> Path:
    """An mpeg4 clip of ``frames`` frames: a static gradient (cheap to encode at any size), or
    noisy frames whose data (not the container's header) makes up nearly all of the file."""
    w, h = size
    if gradient:
        y, x = np.mgrid[0:h, 0:w]
        still = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 128)], -1).astype(np.uint8)
    rng = np.random.default_rng(0)
    pixels = (still if gradient else rng.integers(0, 255, (h, w, 3), np.uint8) for _ in range(frames))
    return encode_video(path, pixels, size, rate=rate, container=options, gop_size=600 if gradient else 12)


def audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=8000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def flip_bits(data: bytes, seed: int, flips: int = 20) -> bytes:
    out = bytearray(data)
    rng = random.Random(seed)
    for _ in range(flips):
        i = rng.randrange(len(out) // 8, len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def odd_mode_images() -> dict[str, tuple[Image.Image, str]]:
    """name -> (image, format) in colour modes other than RGB."""
    grad = np.arange(64 * 48, dtype=np.uint32).reshape(48, 64)
    return {
        "cmyk.jpg": (Image.new("CMYK", (64, 48), (10, 200, 30, 40)), "JPEG"),
        "palette.png": (Image.new("RGB", (64, 48), (200, 30, 60)).quantize(8), "PNG"),
        "grey_alpha.png": (Image.new("LA", (64, 48), (90, 128)), "PNG"),
        "sixteen_bit.png": (Image.fromarray((grad * 21).astype(np.uint16)), "PNG"),
        "one_bit.png": (Image.fromarray(grad % 3 == 0), "PNG"),
        "rgba.webp": (Image.new("RGBA", (64, 48), (10, 20, 30, 0)), "WEBP"),
        "grey.bmp": (Image.new("L", (64, 48), 77), "BMP"),
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """The bad-media files and, per case, the file, CLI options, environment and what must come back.

    ``expect``: "error" (exit 2, one line naming the file and containing ``says``), "result"
    (exit 0, JSON; ``complete`` the decode report's verdict when given) or "either".
    """
    d = tmp_path_factory.mktemp("bad-media")
    cases: list[dict] = []

    def case(name: str, expect: str, says: tuple[str, ...] = (), **kw: object) -> None:
        cases.append({"file": name, "expect": expect, "says": list(says), **kw})

    # images: bombs, damage, odd colour modes, names
    (d / "bomb.png").write_bytes(bomb_png(30000, 30000))
    case("bomb.png", "error", ("bomb.png", "900,000,000 pixels", f"{DEFAULT_MAX_PIXELS:,}-pixel limit", ENV_MAX_PIXELS))
    (d / "bomb_100mp.png").write_bytes(bomb_png(10000, 10000))
    case("bomb_100mp.png", "error", ("10000x10000 = 100,000,000 pixels", "-pixel limit"))
    (d / "bomb.jpg").write_bytes(bomb_jpeg(30000, 30000))
    case("bomb.jpg", "error", ("bomb.jpg", "900,000,000 pixels"))
    (d / "small_limit.png").write_bytes(png_bytes(Image.new("RGB", (64, 48))))
    case("small_limit.png", "error", ("64x48 = 3,072 pixels", "1,000-pixel limit"), env={ENV_MAX_PIXELS: "1000"})
    (d / "empty.png").write_bytes(b"")
    case("empty.png", "error", ("empty.png: empty file",))
    good_png = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)))
    (d / "truncated.png").write_bytes(good_png[: len(good_png) // 2])
    case("truncated.png", "error", ("truncated.png: not a readable image",))
    for seed in range(3):
        (d / f"flipped_{seed}.png").write_bytes(flip_bits(good_png, seed, flips=4))
        case(f"flipped_{seed}.png", "either")
    (d / "text.jpg").write_text("not a picture\n" * 10)
    case("text.jpg", "error", ("text.jpg: not a readable image",))
    for name, (image, fmt) in odd_mode_images().items():
        image.save(d / name, fmt)
        case(name, "result")
    (d / ".jpg").write_bytes(good_png)
    case(".jpg", "error", ("'.jpg': the name is only an extension",))
    (d / "scene.jpg ").write_bytes(good_png)
    case("scene.jpg ", "error", ("'scene.jpg ': the file name ends with a space",))
    (d / "zero.jpg").symlink_to("/dev/zero")
    case("zero.jpg", "error", ("zero.jpg: not a regular file (a character device)",))
    case("missing.jpg", "error", ("missing.jpg: file not found",))

    # clips: damage, no video, limits
    clean = write_clip(d / "clean.mp4", 40, 10, (64, 48), options={"movflags": "faststart"})
    case("clean.mp4", "result", complete=True)
    data = clean.read_bytes()
    for pct in (30, 60, 90):
        (d / f"truncated_{pct}.mp4").write_bytes(data[: len(data) * pct // 100])
        case(f"truncated_{pct}.mp4", "result", complete=False)
    (d / "truncated_head.mp4").write_bytes(data[: data.index(b"mdat") + 4])  # the header, no frames
    case("truncated_head.mp4", "error", ("truncated_head.mp4",))
    moov_last = write_clip(d / "moov_last.mp4", 40, 10, (64, 48)).read_bytes()
    (d / "truncated_moov_last.mp4").write_bytes(moov_last[: len(moov_last) // 2])
    case("truncated_moov_last.mp4", "error", ("truncated_moov_last.mp4: not a readable video",))
    for seed in range(4):
        (d / f"flipped_{seed}.mp4").write_bytes(flip_bits(data, seed))
        case(f"flipped_{seed}.mp4", "either")
    (d / "empty.mp4").write_bytes(b"")
    case("empty.mp4", "error", ("empty.mp4: empty file",))
    audio_only(d / "audio_only.mp4")
    case("audio_only.mp4", "error", ("audio_only.mp4: no video stream",))
    # A GIF with a header and a trailer and no frame in between.
    (d / "zero_frames.gif").write_bytes(b"GIF89a" + struct.pack("<HHBBB", 16, 16, 0, 0, 0) + b"\x3b")
    case("zero_frames.gif", "error", ("zero_frames.gif",))
    (d / "text.mp4").write_text("not a video\n" * 50)
    case("text.mp4", "error", ("text.mp4: not a readable video",))
    case("clean.mp4", "error", ("clean.mp4: 64x48 = 3,072 pixels", "1,000-pixel limit"), env={ENV_MAX_PIXELS: "1000"})
    # 300 s static, tiny: a small file that decodes to many frames.
    write_clip(d / "long_static.mp4", 600, 2, (96, 64), gradient=True)
    case("long_static.mp4", "result", complete=True, args=["--fps", "0.25"], warmup=True)  # 75 frames
    case("long_static.mp4", "error", ("long_static.mp4: 300.0 s is longer than the 120 s limit",
                                      "SCENESCOPE_MAX_CLIP_SECONDS"), env={"SCENESCOPE_MAX_CLIP_SECONDS": "120"})
    case("long_static.mp4", "error", ("sampling at 2 fps gives more than 500 frames", "SCENESCOPE_MAX_CLIP_FRAMES"),
         env={"SCENESCOPE_MAX_CLIP_FRAMES": "500"})
    write_clip(d / "eleven_minutes.mp4", 660, 1, (32, 32), gradient=True)
    case("eleven_minutes.mp4", "error", ("660.0 s is longer than the 600 s limit",))
    # 30 s of 1080p: its 60 decoded frames would hold 370 MB if kept.
    write_clip(d / "hd.mp4", 60, 2, (1920, 1080), gradient=True)
    case("hd.mp4", "result", complete=True, measure=True)
    return d, cases


# ---- the subprocess ------------------------------------------------------------------------------
DRIVER = r'''
import functools, json, os, resource, runpy, sys, tempfile, time, traceback
index, folder, cases_file, out_file, headroom = sys.argv[1:6]
import warnings
warnings.filterwarnings("ignore", category=RuntimeWarning, module="runpy")
import av, core.pipeline, core.video  # noqa: F401  (torch, PIL, PyAV: loaded before the ceiling is set)
core.pipeline.open_index = functools.lru_cache(None)(core.pipeline.open_index)  # load the model once

def vm_size():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

def run(case):
    argv = ["scenescope", "classify", "--index", index, os.path.join(folder, case["file"]), "--json",
            *case.get("args", [])]
    old_env = {k: os.environ.get(k) for k in case.get("env", {})}
    os.environ.update(case.get("env", {}))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush(); sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1); os.dup2(err.fileno(), 2)
        before, start, rc = peak(), time.monotonic(), None
        try:
            sys.argv = argv
            runpy.run_module("core.cli", run_name="__main__", alter_sys=True)
            rc = 0
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
            rc = "traceback"
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os.dup2(saved[0], 1); os.dup2(saved[1], 2)
            os.close(saved[0]); os.close(saved[1])
        seconds = time.monotonic() - start
        out.seek(0); err.seek(0)
        result = {**case, "rc": rc, "stdout": out.read().decode("utf-8", "replace"),
                  "stderr": err.read().decode("utf-8", "replace"), "seconds": seconds,
                  "peak_before": before, "peak_after": peak()}
    for k, v in old_env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    return result

cases = json.load(open(cases_file))
results = [run(c) for c in cases if c.get("warmup")]  # a full 64-frame batch: the model's own peak
ceiling = vm_size() + int(headroom)
resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
results += [run(c) for c in cases if not c.get("warmup")]
json.dump({"ceiling": ceiling, "peak": peak(), "results": results}, open(out_file, "w"))
'''


@pytest.fixture(scope="module")
def outcomes(corpus: tuple[Path, list[dict]], small_index: SmallIndex,
             tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder, cases = corpus
    work = tmp_path_factory.mktemp("bad-media-run")
    (work / "cases.json").write_text(json.dumps(cases))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCENESCOPE_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(small_index.index), str(folder), str(work / "cases.json"),
         str(work / "out.json"), str(HEADROOM)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=CASE_SECONDS * len(cases) + 120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((work / "out.json").read_text())


def _verdict(r: dict) -> str:
    """clear error | result | traceback | unclear (an error that is not one line naming the file)."""
    err = r["stderr"]
    if r["rc"] == "traceback" or "Traceback (most recent call last)" in err:
        return "traceback"
    if r["rc"] == 0:
        return "result"
    lines = [line for line in err.splitlines() if line.strip()]
    name = r["file"].strip() or r["file"]
    if r["rc"] == 2 and len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0]:
        return "clear error"
    return "unclear"


def test_every_bad_file_gets_one_clear_line_or_a_reported_result(outcomes: dict) -> None:
    problems = []
    for r in outcomes["results"]:
        verdict, label = _verdict(r), f"{r['file']!r} {r.get('env', '')} {r.get('args', '')}"
        if verdict in ("traceback", "unclear"):
            problems.append(f"{label}: {verdict}: rc={r['rc']} stderr={r['stderr'][-600:]!r}")
            continue
        if r["seconds"] > CASE_SECONDS:
            problems.append(f"{label}: took {r['seconds']:.0f} s")
        if verdict == "result":
            if r["expect"] == "error":
                problems.append(f"{label}: expected an error, got a result")
                continue
            out = json.loads(r["stdout"])
            if out["kind"] == "clip":
                if "decode" not in out:
                    problems.append(f"{label}: a clip result without a decode report")
                elif "complete" in r and out["decode"]["complete"] is not r["complete"]:
                    problems.append(f"{label}: decode report {out['decode']}, expected complete={r['complete']}")
                elif not out["decode"]["complete"] and not (out["decode"]["gaps"] or out["decode"]["frames_corrupt"]
                                                          or out["decode"]["errors"]):
                    problems.append(f"{label}: incomplete without saying what is missing: {out['decode']}")
            elif "complete" in r:
                problems.append(f"{label}: expected a clip, got {out['kind']}")
        else:
            if r["expect"] == "result":
                problems.append(f"{label}: expected a result, got {r['stderr'].strip()!r}")
            for words in r["says"]:
                if words not in r["stderr"]:
                    problems.append(f"{label}: error {r['stderr'].strip()!r} does not say {words!r}")
    assert not problems, "\n".join(problems)


def test_memory_stays_under_the_ceiling(outcomes: dict) -> None:
    assert outcomes["peak"] < RSS_CEILING, f"peak RSS {outcomes['peak'] / 1024**3:.2f} GiB"
    (hd,) = [r for r in outcomes["results"] if r.get("measure")]
    # The warm-up clip filled a whole embedding batch first, so what a 1080p clip adds on top is
    # its decoded frames: one at a time (a few MB), not all 60 (370 MB).
    growth = hd["peak_after"] - hd["peak_before"]
    assert growth < HD_GROWTH, f"a 30 s 1080p clip raised the peak by {growth / 1024**2:.0f} MB"


def test_bad_media_counts(outcomes: dict, capsys: pytest.CaptureFixture) -> None:
    """The closing note's figures (shown with -s): cases, clear errors, results, tracebacks, hangs."""
    verdicts = [_verdict(r) for r in outcomes["results"]]
    counts = {v: verdicts.count(v) for v in ("clear error", "result", "traceback", "unclear")}
    hangs = sum(r["seconds"] > CASE_SECONDS for r in outcomes["results"])
    reported = sum(1 for r in outcomes["results"] if r["rc"] == 0 and '"decode"' in r["stdout"])
    with capsys.disabled():
        print(f"\nbad media: {len(verdicts)} cases, {counts['clear error']} clear errors, {counts['result']} results "
              f"({reported} clips with a decode report), {counts['traceback']} tracebacks, "
              f"{counts['unclear']} unclear, {hangs} hangs; peak RSS {outcomes['peak'] / 1024**3:.2f} GiB, "
              f"address-space ceiling {outcomes['ceiling'] / 1024**3:.1f} GiB")
    assert counts["traceback"] == counts["unclear"] == hangs == 0


# ---- open_image: the one way images are opened -----------------------------------------------------
def test_open_image_refuses_bombs_with_name_pixels_and_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bomb.png").write_bytes(bomb_png(30000, 30000))
    with pytest.raises(ImageError) as info:
        open_image(tmp_path / "bomb.png")
    assert str(info.value) == (f"bomb.png: 900,000,000 pixels is over the {DEFAULT_MAX_PIXELS:,}-pixel limit "
                               f"(set {ENV_MAX_PIXELS} to change it)")
    with pytest.raises(ImageError, match=r"^upload.png: 10000x10000 = 100,000,000 pixels is over"):
        open_image(bomb_png(10000, 10000), "upload.png")
    monkeypatch.setenv(ENV_MAX_PIXELS, "1000")
    with pytest.raises(ImageError, match=r"small.png: 40x30 = 1,200 pixels is over the 1,000-pixel limit"):
        open_image(png_bytes(Image.new("RGB", (40, 30))), "small.png")
    assert open_image(png_bytes(Image.new("RGB", (40, 25))), "ok.png").size == (40, 25)
    monkeypatch.setenv(ENV_MAX_PIXELS, "many")
    with pytest.raises(ImageError, match=f"{ENV_MAX_PIXELS}='many' is not a whole number"):
        open_image(png_bytes(Image.new("RGB", (4, 4))), "x.png")


def test_open_image_odd_modes_become_the_right_rgb(tmp_path: Path) -> None:
    for name, (image, fmt) in odd_mode_images().items():
        path = tmp_path / name
        image.save(path, fmt)
        got = open_image(path)
        assert got.mode == "RGB" and got.size == (64, 48), name
        with Image.open(path) as ref:
            if ref.mode.startswith("I;16"):
                # 16-bit greys scale to 8 bits (PIL's own convert clips them at 255: all white)
                want = np.round(np.asarray(ref, np.float64) / 257).astype(np.uint8)
                assert np.array_equal(np.asarray(got)[..., 0], want), name
                assert np.asarray(got).std() > 10
            else:
                assert np.array_equal(np.asarray(got), np.asarray(ref.convert("RGB"))), name


def test_open_image_names_the_problem(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "text.png").write_text("hello")
    for name, says in [("empty.png", "empty file"), ("zero.png", "not a regular file (a character device)"),
                       ("pipe.png", "not a regular file (a FIFO)"), ("missing.png", "file not found"),
                       ("text.png", "not a readable image")]:
        with pytest.raises(ImageError) as info:
            open_image(tmp_path / name)
        assert str(info.value).startswith(f"{name}: {says}")
        assert str(tmp_path) not in str(info.value)  # the name, not the whole path


SEEDS = {"png": png_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 255, (24, 32, 3), np.uint8)))}
for _fmt in ("JPEG", "GIF", "BMP", "WEBP"):
    _buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (24, 32, 3), np.uint8)).save(_buf, _fmt)
    SEEDS[_fmt.lower()] = _buf.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SEEDS)), st.lists(st.tuples(st.floats(0, 1, allow_subnormal=False), st.integers(0, 255)), max_size=8),
       st.floats(0, 1, allow_subnormal=False))
def test_damaged_images_give_an_image_or_one_image_error(fmt: str, edits: list, keep: float) -> None:
    data = bytearray(SEEDS[fmt])
    for where, value in edits:
        data[min(len(data) - 1, int(where * len(data)))] = value
    data = bytes(data[: max(1, int(keep * len(data)))])
    try:
        image = open_image(data, f"fuzz.{fmt}")
    except ImageError as e:
        assert str(e).startswith(f"fuzz.{fmt}: ") and "\n" not in str(e) and len(str(e)) < 200
    else:
        assert image.mode == "RGB" and image.size[0] * image.size[1] <= DEFAULT_MAX_PIXELS


# ---- the other places an image is opened -------------------------------------------------------------
def test_bomb_in_index_build_and_uploads_is_one_line(tmp_path: Path, small_index: SmallIndex) -> None:
    from app import handlers
    from core.index.build import read_image
    from core.index.errors import IndexStoreError
    from core.pipeline import open_index

    (tmp_path / "bomb.png").write_bytes(bomb_png(30000, 30000))
    with pytest.raises(IndexStoreError, match=r"cannot read image frames/bomb.png: 900,000,000 pixels is over"):
        read_image(tmp_path / "bomb.png", "frames/bomb.png")
    model, store = open_index(small_index.index)
    analysis, error = handlers.analyze_upload("bomb.png", bomb_png(30000, 30000), model, store)
    assert analysis is None and error.startswith("bomb.png: 900,000,000 pixels is over the")
    image, error = handlers.load_query_image("bomb.png", bomb_png(30000, 30000))
    assert image is None and error.startswith("bomb.png: 900,000,000 pixels is over the")


# ---- streaming: a clip's frames are embedded and dropped ---------------------------------------------
def test_clip_frames_are_dropped_once_embedded(small_index: SmallIndex, monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    import core.pipeline as pipeline
    from core.predict import vote_batch
    from core.video import DecodeReport, Frames

    model, store = pipeline.open_index(small_index.index)
    rng = np.random.default_rng(0)
    made = [rng.integers(0, 255, (72, 96, 3), np.uint8) for _ in range(150)]  # > 2 batches of 64
    alive: list[weakref.ref] = []
    most_alive = 0

    def frames() -> object:
        nonlocal most_alive
        for i in range(len(made)):
            frame = made[i].copy()  # a fresh array per frame, as decoding gives
            alive.append(weakref.ref(frame))
            most_alive = max(most_alive, sum(r() is not None for r in alive))
            yield i * 0.5, frame
            del frame

    monkeypatch.setattr(pipeline, "sample_frames", lambda *a, **kw: Frames(frames(), DecodeReport()))
    (tmp_path / "clip.mp4").write_bytes(b"stand-in")
    result = pipeline.classify_path(tmp_path / "clip.mp4", model, store, k=5)
    assert len(result.votes) == 150
    # Never more than the frame in hand and the one before it, whatever the clip's length.
    assert most_alive <= 2, most_alive
    # The same neighbours, at the same similarities, as embedding all frames at once with the
    # model's own preprocessing (SceneModel.embed_images) and searching the index.
    want = vote_batch(store, model.embed_images(made), k=5)
    assert [[(n.id, n.similarity) for n in v.neighbors] for v in result.votes] == \
        [[(n.id, n.similarity) for n in v.neighbors] for v in want]


def test_uploads_name_the_problem_and_carry_the_decode_report(small_index: SmallIndex, tmp_path: Path) -> None:
    from app import handlers
    from core.pipeline import open_index

    assert handlers.check_upload(".jpg", 10).startswith("'.jpg': the name is only an extension")
    assert handlers.check_upload("clip.mp4 ", 10).startswith("'clip.mp4 ': the file name ends with a space")
    model, store = open_index(small_index.index)
    data = write_clip(tmp_path / "full.mp4", 40, 10, (64, 48), options={"movflags": "faststart"}).read_bytes()
    analysis, error = handlers.analyze_upload("cut.mp4", data[: len(data) * 2 // 3], model, store)
    assert error is None and analysis.kind == "clip"
    assert not analysis.decode.complete and analysis.decode.truncated
    assert len(analysis.frames) == len(analysis.votes) == len(analysis.times)
    assert analysis.decode.summary().startswith(f"damaged clip: {analysis.decode.frames_decoded} of 40 frames")


def test_gradio_classify_names_the_bomb(small_index: SmallIndex, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import gradio as gr

    from app import demo
    from core.pipeline import open_index

    engine = open_index(small_index.index)
    monkeypatch.setattr(demo, "engine", lambda: engine)
    (tmp_path / "bomb.png").write_bytes(bomb_png(30000, 30000))
    with pytest.raises(gr.Error) as info:
        demo.classify(str(tmp_path / "bomb.png"), progress=lambda *a, **kw: None)
    assert info.value.message.startswith("bomb.png: 900,000,000 pixels is over the")
