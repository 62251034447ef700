"""Is the Map page responsive at 100k points (issue 4)? `python bench/map_scale.py [--quick]`

Times the cached UMAP layout and new-point placement. Above ``--sample`` points (default 20k)
UMAP is fitted on a sample and the other points placed by k-NN (issue 23: maps of millions); the
page's interactions (density grid + drawn sample of a view, a selection) are timed too.

    .venv/bin/python bench/map_scale.py --sizes 100000 1000000 --no-transform --warmup   # issue 23
    .venv/bin/python bench/map_scale.py --page-only --sizes 100000 1000000   # the page's own work per view

Points are random unit vectors drawn around ``--clusters`` random centres (closer to scene
embeddings than uniform noise, which has no neighbourhood structure for UMAP to find). For each
``--sizes`` entry the script saves an index, times ``umap_projection`` cold (PCA above 50k points),
warm from the disk cache, and ``place_points`` (k-NN, and umap's transform after an in-process refit
at the last size unless ``--no-transform``). The first UMAP fit and the first transform in a
process also pay numba compilation; ``--warmup`` times that separately.

    .venv/bin/python bench/map_scale.py --sizes 20000 100000 --epochs 200 50
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _quick import parse_args  # noqa: E402

import core.maps as maps  # noqa: E402
from core.index import IndexStore  # noqa: E402
from core.schema import default_schema  # noqa: E402


def clustered(n: int, d: int, clusters: int, seed: int, draw: int = 0) -> np.ndarray:
    centres = np.random.default_rng(seed).normal(size=(clusters, d))
    rng = np.random.default_rng([seed, draw])
    x = centres[rng.integers(0, clusters, n)] + rng.normal(size=(n, d)) * 0.6
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def fake_store(x: np.ndarray, folder: Path) -> IndexStore:
    schema = default_schema()
    first = {a.name: a.value_names[0] for a in schema.attributes}
    rows = [{"path": f"f{i}.png", **first} for i in range(len(x))]
    IndexStore.from_embeddings(x, rows, model="bench@0").save(folder)
    return IndexStore.load(folder)


class Stages:
    """A progress callback that notes when each stage (PCA, neighbours, epochs, saving) starts."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.starts: dict[str, float] = {}

    def __call__(self, fraction: float, message: str) -> None:
        stage = message.split(" (")[0].split(" of ")[0].split(" to ")[0]
        stage = {"reducing": "PCA"}.get(stage.split()[0], stage)
        self.starts.setdefault(stage, time.perf_counter() - self.t0)

    def summary(self) -> str:
        marks = sorted(self.starts.items(), key=lambda kv: kv[1])
        ends = [t for _, t in marks[1:]] + [time.perf_counter() - self.t0]
        return ", ".join(f"{name} {end - start:.1f}s" for (name, start), end in zip(marks, ends, strict=True))


def timed(label: str, fn, results: list[tuple[str, float]]):
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    results.append((label, dt))
    print(f"{label:<58s} {dt:8.2f} s", flush=True)
    return out


def bench_size(n: int, n_epochs: int | None, args: argparse.Namespace, folder: Path, transform: bool,
               results: list[tuple[str, float]]) -> None:
    x = clustered(n, args.dim, args.clusters, seed=n)
    store = fake_store(x, folder)
    tag = f"n={n:,} epochs={n_epochs or 'default'}"
    stages = Stages()
    timed(f"umap_projection cold  {tag}", lambda: maps.umap_projection(store, progress=stages, n_epochs=n_epochs),
          results)
    print(f"    stages: {stages.summary()}", flush=True)
    maps.layout._LAYOUTS.clear()  # as in a fresh process: read the disk cache
    layout = timed(f"umap_projection cached {tag}", lambda: maps.umap_projection(store, n_epochs=n_epochs), results)
    # What the page does with it (issue 23): the first view is a density grid of every point plus a
    # WebGL-sized sample; each zoom recomputes both for the box on the server.
    timed(f"first view: density grid + drawn sample n={n:,}",
          lambda: (maps.density_grid(layout), maps.view_points(layout)), results)
    lo, hi = layout.min(axis=0), layout.max(axis=0)
    mid = (lo + hi) / 2
    box = (float(lo[0]), float(mid[0]), float(lo[1]), float(mid[1]))
    timed(f"interaction: zoom to a quarter (grid + sample) n={n:,}",
          lambda: (maps.density_grid(layout, box=box), maps.view_points(layout, box)), results)
    pick = maps.view_points(layout, box, limit=200)
    timed(f"interaction: select 200 points (table) n={n:,}", lambda: maps.selection_table(store, pick), results)
    q = clustered(args.queries, args.dim, args.clusters, seed=n, draw=1)  # same centres, new points
    timed(f"place_points knn  {args.queries} pts, n={n:,}", lambda: maps.place_points(store, q, layout=layout),
          results)
    timed(f"place_points knn  1 pt, n={n:,}", lambda: maps.place_points(store, q[:1], layout=layout), results)
    if transform:
        timed(f"place_points transform first call (refit) n={n:,}",
              lambda: maps.place_points(store, q, method="transform", n_epochs=n_epochs), results)
        timed(f"place_points transform {args.queries} pts (fitted) n={n:,}",
              lambda: maps.place_points(store, q, method="transform", n_epochs=n_epochs), results)
        maps.place._fitted_reducer.cache_clear()


def page_views(n: int, results: list[tuple[str, float]]) -> None:
    """What the Map page itself does per view above its point budget (issue 23), on a synthetic 2-D
    layout (its cost depends on N and the budget, not on how the layout was made): the server's
    density grid and drawn sample (``app.handlers.density_view``), the figure (heatmap + WebGL
    points, ``app.figures``) and its JSON, which is what the browser receives."""
    from app import figures, handlers

    rng = np.random.default_rng(n)
    layout = (rng.normal(scale=8, size=(100, 2))[rng.integers(0, 100, n)] + rng.normal(size=(n, 2))).astype(np.float32)
    categories = np.asarray(["a", "b", "c"], dtype=object)[rng.integers(0, 3, n)]
    style = {"a": ("A", "#0072B2"), "b": ("B", "#E69F00"), "c": ("C", "#009E73")}
    sent: dict[str, float] = {}

    def draw(label: str, box: handlers.Box | None) -> None:
        view = handlers.density_view(layout, box)
        fig = figures.map_figure(layout[view.rows], categories[view.rows], style, size=3.0, ids=view.rows)
        figures.add_density(fig, view.counts, view.x_edges, view.y_edges)
        sent[label] = len(fig.to_json()) / 1e6

    lo, hi = layout.min(axis=0), layout.max(axis=0)
    mid = (lo + hi) / 2
    for label, box in (("first view", None), ("zoom to a quarter", (float(lo[0]), float(mid[0]), float(lo[1]),
                                                                   float(mid[1])))):
        tag = f"page: {label} (server view + figure + JSON) n={n:,}"
        timed(tag, lambda label=label, box=box: draw(label, box), results)
        print(f"    figure JSON {sent[label]:.1f} MB, {handlers.draw_budget():,} points drawn at most", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--epochs", type=int, nargs="+", default=[0, 50],
                    help="UMAP n_epochs per size (0 = umap default: 200 above 10k points)")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--no-transform", action="store_true")
    ap.add_argument("--transform-all", action="store_true",
                    help="time the transform refit at every size (default: the last size only)")
    ap.add_argument("--warmup", action="store_true", help="compile umap's numba code first (not timed)")
    ap.add_argument("--page-only", action="store_true",
                    help="time only the Map page's own work per view on a synthetic 2-D layout of each size")
    ap.add_argument("--sample", type=int, default=None,
                    help=f"UMAP fitted on this many points, the rest placed by k-NN (default {maps.UMAP_SAMPLE})")
    args = parse_args(ap, {"sizes": [3000], "epochs": [30], "queries": 20, "no_transform": True}, argv)
    if args.sample:
        maps.layout.UMAP_SAMPLE = args.sample
    epochs = (args.epochs + args.epochs[-1:] * len(args.sizes))[: len(args.sizes)]
    print(f"cpus={os.cpu_count()} dim={args.dim} clusters={args.clusters}", flush=True)
    results: list[tuple[str, float]] = []
    if args.page_only:
        for n in args.sizes:
            page_views(n, results)
        args.sizes, epochs = [], []
    if args.warmup and args.sizes:
        timed("numba warm-up (umap on 200 points)",
              lambda: maps.compute_layout(clustered(200, 16, 4, 9), maps.UmapParams(n_epochs=10)), results)
    with tempfile.TemporaryDirectory() as tmp:
        for n, ep in zip(args.sizes, epochs, strict=True):
            transform = not args.no_transform and (args.transform_all or n == args.sizes[-1])
            bench_size(n, ep or None, args, Path(tmp) / f"idx{n}", transform, results)
    print("\n| step | seconds |\n|---|---|")
    for label, dt in results:
        print(f"| {label} | {dt:.2f} |")


if __name__ == "__main__":
    main()
