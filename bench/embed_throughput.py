"""Is build_index >= 2x a plain loop and >= 80% of the FP32 matmul bound on ViT-B-32 (issue 2)? `python bench/embed_throughput.py [--quick]`

Embedding throughput: image files on disk -> vectors in an index, with build_index.

Compares, per model, our pipeline (``build_index``: threaded decode/preprocess ahead of batched
inference) with (a) a plain per-image loop (PIL open -> preprocess -> encode one image at a time)
and (b) the FP32 matrix-multiply bound: the GFLOP/s of large square fp32 ``torch.matmul`` measured
in the same run, divided by the model's GFLOP per image. The bf16 autocast path runs as well when
the CPU supports it.

On a shared machine wall-clock rates swing with other people's load, so every figure is taken
twice: per wall-clock second, and per CPU-second of this process (times the core count), which
other processes disturb far less. The matmul rate is re-measured right before each measurement.

    .venv/bin/python bench/embed_throughput.py            # tiny: 256 images, ViT-B-32: 128
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _quick import parse_args  # noqa: E402

from core.data.manifest import Dataset, read_manifest, write_manifest  # noqa: E402
from core.index import build_index  # noqa: E402
from core.models import BUNDLED, SceneModel, load_model  # noqa: E402
from core.schema import default_schema  # noqa: E402

VIT_B32_GFLOP = 8.8  # per 224px image: 4.4 GMACs


def make_images(root: Path, n: int, size: tuple[int, int] = (320, 180), seed: int = 0):
    """``n`` random-noise JPEGs (dashcam aspect) with a manifest; returns the Dataset."""
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        rel = f"img/{i:04d}.jpg"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
            root / rel, quality=90)
        rows.append({"path": rel, "split": "train", **default_schema().sample(prng)})
    write_manifest(root, rows)
    return read_manifest(root)


class Timer:
    """Wall-clock and process CPU time of a block; ``rate(work)`` gives (per wall s, per CPU s x cores)."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rate(self, work: float) -> tuple[float, float]:
        # CPU-time rate scaled to all cores: what the run would do with the machine to itself.
        return work / self.wall, work / max(self.cpu, 1e-9) * torch.get_num_threads()


def matmul_gflops(n: int = 2048, reps: int = 4) -> tuple[float, float]:
    """Best-of FP32 GEMM rate (GFLOP/s, wall and CPU-time based) with all torch threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = (0.0, 0.0)
    for _ in range(reps):
        with Timer() as t:
            a @ b
        best = max(best, t.rate(2 * n**3 / 1e9))
    return best


def vit_gflop(model: SceneModel) -> float:
    """Analytic GFLOP per image of an open_clip ViT image tower (2 FLOP per multiply-add)."""
    v = model.clip.visual
    rows, cols = v.grid_size
    tokens, width = rows * cols + 1, v.conv1.out_channels
    patch = v.conv1.kernel_size[0] * v.conv1.kernel_size[1] * 3
    blocks = v.transformer.resblocks
    hidden = blocks[0].mlp.c_fc.out_features
    per_layer = 4 * tokens * width**2 + 2 * tokens * width * hidden + 2 * tokens**2 * width
    macs = len(blocks) * per_layer + (tokens - 1) * width * patch + width * model.embed_dim
    return 2 * macs / 1e9


def tiny_model() -> SceneModel:
    if (BUNDLED["scenescope-tiny"] / "open_clip_config.json").is_file():
        return load_model("scenescope-tiny")
    import open_clip

    torch.manual_seed(0)
    clip, _, pre = open_clip.create_model_and_transforms("scenescope-tiny")
    return SceneModel(name="scenescope-tiny", identity="scenescope-tiny@random", clip=clip.eval(),
                      preprocess=pre, tokenizer=open_clip.get_tokenizer("scenescope-tiny"))


def plain_loop(ds, model: SceneModel, n: int) -> tuple[float, float]:
    """Images/s of the naive way: one file at a time, open -> preprocess -> encode."""
    paths = [ds.abspath(p) for p in ds.frames["path"][:n]]
    model.embed_batch(model.preprocess(Image.open(paths[0]).convert("RGB"))[None])  # warm-up
    with Timer() as t:
        for p in paths:
            model.embed_batch(model.preprocess(Image.open(p).convert("RGB"))[None])
    return t.rate(n)


def model_only(model: SceneModel, batch_size: int, bf16: bool) -> tuple[float, float]:
    """Images/s of batched inference alone on in-memory pixels: the ceiling for the pipeline."""
    x = torch.randn(batch_size, 3, *model.image_size)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.inference_mode(), ctx:
        model.embed_batch(x[:8])  # warm-up: oneDNN builds its kernels on first use
        with Timer() as t:
            model.embed_batch(x)
    return t.rate(batch_size)


def ours(ds, model: SceneModel, out: Path, batch_size: int, workers: int, bf16: bool) -> tuple[float, float]:
    """Images/s of build_index end to end (files -> vectors in a saved Flat index)."""
    with Timer() as t:
        build_index(ds, model, out, batch_size=batch_size, workers=workers, progress=False, bf16=bf16)
    return t.rate(len(ds))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=256, help="JPEGs to index with light models")
    ap.add_argument("--heavy-images", type=int, default=128,
                    help="JPEGs to index with models over 2 GFLOP/image (keeps the run under 3 min)")
    ap.add_argument("--plain-images", type=int, default=16, help="images for the per-image loop")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--models", default="tiny,openclip:ViT-B-32")
    ap.add_argument("--no-bf16", action="store_true")
    args = parse_args(ap, {"images": 32, "heavy_images": 16, "plain_images": 4, "batch_size": 16}, argv)
    bf16_ok = not args.no_bf16 and torch.backends.mkldnn.is_available() and \
        "avx512_bf16" in Path("/proc/cpuinfo").read_text()
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    rows, gemms = [], []
    with tempfile.TemporaryDirectory(prefix="scenescope-bench-") as tmp:
        ds = make_images(Path(tmp) / "data", args.images)
        for name in args.models.split(","):
            model = tiny_model() if name == "tiny" else load_model(name)
            gflop = vit_gflop(model)
            n = args.images if gflop <= 2 else min(args.heavy_images, args.images)
            sub = Dataset(ds.root, ds.frames.iloc[:n].reset_index(drop=True), ds.schema)
            plain = plain_loop(sub, model, min(args.plain_images, n))
            for prec in ["fp32"] + (["bf16"] if bf16_ok else []):
                gemm = matmul_gflops()  # re-measured next to each run: the load changes
                gemms.append(gemm)
                only = model_only(model, args.batch_size, prec == "bf16")
                got = ours(sub, model, Path(tmp) / f"ix-{prec}", args.batch_size, args.workers, prec == "bf16")
                rows.append((model.identity, prec, n, gflop, plain, only, got, gemm))
    print(f"CPU: {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} cores; random-noise JPEGs 320x180 -> Flat index, batch {args.batch_size}, "
          f"{args.workers} loader threads; load average {load0:.1f} at start, "
          f"{os.getloadavg()[0]:.1f} at end (the machine is shared)")
    print("FP32 matmul 2048^2 GFLOP/s, wall / CPU-time: "
          + "; ".join(f"{w:.0f} / {c:.0f}" for w, c in gemms))
    print()
    for basis, k in (("wall-clock", 0), ("CPU-time (x cores)", 1)):
        print(f"**{basis} rates**, images/s")
        print()
        print("| model | precision | images | GFLOP/img | plain loop | model only | ours | FP32 bound "
              "| ours/plain | ours/bound |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for ident, prec, n, gflop, plain, only, got, gemm in rows:
            bound = gemm[k] / gflop
            print(f"| {ident} | {prec} | {n} | {gflop:.2f} | {plain[k]:.1f} | {only[k]:.1f} | {got[k]:.1f} "
                  f"| {bound:.1f} | {got[k] / plain[k]:.2f}x | {got[k] / bound:.0%} |")
        print()
    print(f"total bench time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
