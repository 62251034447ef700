"""k-NN at scale (issue 23): `python bench/knn_scale.py [--quick] [--n 1000000]`

For each index type (Flat, HNSW32, IVF-Flat, IVF-PQ, IVF-PQ with on-disk lists and exact
re-ranking) over ``--n`` synthetic clustered unit vectors of ``--dim`` dimensions:

- build time (train on a sample of ~128 points per list, add; the on-disk one through
  ``core.index.ondisk.build_ondisk`` from ``--shards`` shards), and the folder's size on disk;
- in a fresh process: RSS growth of ``IndexStore.load`` (psutil; also the private, anonymous part,
  since memory-mapped pages count in RSS but can be dropped by the kernel), p50/p99 latency of one
  query through ``IndexStore.search`` at 1 and 2 faiss threads, recall@5 against exact search, and
  the cost of one vote through ``core.predict.vote_batch`` with the index open (first vote apart:
  it builds the label codes).

The queries are fresh draws from the same clusters. Prints one markdown table row per index.
By default the vectors are generated in RAM (N x d x 4 B); ``--memmap`` writes them to an on-disk .npy
instead and computes the exact truth block by block, for sizes past RAM (10M x 512 is 20.5 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _quick import parse_args  # noqa: E402

KINDS = ("Flat", "HNSW32", "IVF-Flat", "IVF-PQ", "IVF-PQ-disk")


def clustered_chunks(n: int, d: int, clusters: int, seed: int, draw: int, chunk: int = 1 << 17):
    """Unit vectors around ``clusters`` random centres, yielded as (first row, block): bounded temporaries,
    and the same rows whether they are gathered in RAM (``clustered``) or written to disk (``memmap_data``)."""
    centres = np.random.default_rng(seed).normal(size=(clusters, d)).astype(np.float32)
    rng = np.random.default_rng([seed, draw])
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x = centres[rng.integers(0, clusters, m)] + rng.normal(size=(m, d)).astype(np.float32) * 0.6
        yield s, x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n: int, d: int, clusters: int, seed: int, draw: int) -> np.ndarray:
    out = np.empty((n, d), np.float32)
    for s, block in clustered_chunks(n, d, clusters, seed, draw):
        out[s:s + len(block)] = block
    return out


def memmap_data(work: Path, n: int, d: int, clusters: int, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``--memmap`` data: the vectors written block by block to ``work/vectors.npy`` (opened
    memory-mapped) and the exact top-5 of ``q`` computed on the same pass, so that RAM stays bounded by a
    block (10M x 512 float32 is 20.5 GB). The merge of per-block top-5s is faiss's own
    ``knn_ground_truth`` (a ``ResultHeap`` over blocks), the same inner-product scan as ``faiss.knn``."""
    from faiss import METRIC_INNER_PRODUCT
    from faiss.contrib.exhaustive_search import knn_ground_truth

    out = np.lib.format.open_memmap(work / "vectors.npy", mode="w+", dtype=np.float32, shape=(n, d))

    def blocks():
        for s, block in clustered_chunks(n, d, clusters, seed=0, draw=0):
            out[s:s + len(block)] = block
            yield block

    _, gt = knn_ground_truth(q, blocks(), 5, metric_type=METRIC_INNER_PRODUCT, ngpu=0)
    out.flush()
    return np.load(work / "vectors.npy", mmap_mode="r"), gt


def frame_table(n: int, seed: int, start: int = 0, stop: int | None = None):
    """Rows ``start:stop`` of the ``n``-row synthetic frame table (all of it by default): a slice is built on
    its own, the same rows as the whole table's, so ``--memmap`` never holds the whole table."""
    import pandas as pd

    from core.index.store import meta_table
    from core.schema import default_schema

    stop = n if stop is None else stop
    rng = np.random.default_rng(seed)
    cols = {a.name: np.asarray(a.value_names, dtype=object)[rng.integers(0, len(a.value_names), n)[start:stop]]
            for a in default_schema().attributes}
    rows = np.arange(start, stop)
    clip = rows // 20
    return meta_table(pd.DataFrame({"path": [f"clips/c{c:07d}/frame_{i % 20:04d}.jpg" for i, c in zip(rows, clip, strict=True)],
                                    "clip_id": [f"c{c:07d}" for c in clip], "frame_index": rows % 20,
                                    "split": "train", **cols}), default_schema())


def factory_of(kind: str, n: int, d: int, nlist: int | None = None) -> str:
    """The product's choice for the size (``choose_factory``), or ``IVF<nlist>`` when given: at 10M the
    default's 16,384 lists need k-means of 2M points on 16,384 centroids, hours on 2 cores."""
    from core.index.ondisk import choose_factory

    ivf = choose_factory(max(n, 100_000), d, on_disk=False)  # IVF<nlist>,Flat
    pq = choose_factory(max(n, 100_000), d, True)
    if nlist:
        ivf, pq = (f"IVF{nlist},{f.split(',', 1)[1]}" for f in (ivf, pq))
    return {"Flat": "Flat", "HNSW32": "HNSW32", "IVF-Flat": ivf, "IVF-PQ": pq, "IVF-PQ-disk": pq}[kind]


def build(kind: str, x: np.ndarray, table, folder: Path, shards: int, rerank: int, nlist: int | None = None,
          threads: int = 1, memmap: bool = False) -> tuple[str, float]:
    import faiss

    from core.index import IndexStore
    from core.index.factory import parse_factory, tune
    from core.index.ondisk import build_ondisk, training_size, without_polysemous
    from core.index.store import make_manifest
    from core.schema import default_schema

    n, d = x.shape
    factory = factory_of(kind, n, d, nlist)
    # On a shared machine OpenMP threads spin against other work; builds are timed on one thread
    # unless --build-threads says otherwise.
    faiss.omp_set_num_threads(threads)
    t = time.perf_counter()
    if kind == "IVF-PQ-disk":
        parts = disk_shards(x, None if memmap else table, shards, folder.parent)
        t = time.perf_counter()
        build_ondisk(parts, folder, model="bench@1", factory=factory, rerank=rerank, familiarity=False)
        return factory, time.perf_counter() - t
    index = without_polysemous(parse_factory(factory, d))
    if not index.is_trained:
        rows = np.sort(np.random.default_rng(0).choice(n, training_size(index, n), replace=False))
        index.train(x[rows])
    index.add(x)
    seconds = time.perf_counter() - t
    manifest = make_manifest(model="bench@1", dim=d, count=n, dataset=".", split=None, factory=factory,
                             schema=default_schema())
    IndexStore(tune(index), table, manifest, embeddings=x).save(folder)
    return factory, seconds


def disk_shards(x: np.ndarray, table, shards: int, work: Path) -> list[tuple]:
    """The on-disk build's shards. In RAM each is saved as its own .npy file (as an embedding job
    would leave it); under ``--memmap`` (``table`` None) the shards are slices of the memory-mapped
    vectors, not copies (at 10M x 512 a copy is another 20.5 GB of disk), and each shard's frame table
    is built on its own and written to Parquet, which ``build_ondisk`` reads one shard at a time."""
    bounds = np.linspace(0, len(x), shards + 1).astype(int)
    parts = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if table is None:
            frame_table(len(x), 0, a, b).to_parquet(work / f"shard{i}.parquet")
            parts.append((x[a:b], work / f"shard{i}.parquet"))
        else:
            np.save(work / f"shard{i}.npy", x[a:b])
            parts.append((work / f"shard{i}.npy", table.iloc[a:b]))
    return parts


def measure(folder: str, queries: str, truth: str, latency_queries: int, sweep: list[tuple[int, int]] = (),
            ef_sweep: list[int] = ()) -> dict:
    """Run in a fresh process: load RAM, latency at 1/2 threads, recall@5, vote cost; then, for an
    on-disk index, p50 (1 thread) and recall@5 at each (nprobe, re-rank) of ``sweep``, for an HNSW one at
    each efSearch of ``ef_sweep``."""
    import faiss
    import psutil

    from core.index import IndexStore
    from core.index.store import ONDISK_KEY
    from core.predict import vote_batch

    q, gt = np.load(queries), np.load(truth)
    proc = psutil.Process()

    def anon() -> int:
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("RssAnon")).split()[1]) * 1024

    rss0, anon0 = proc.memory_info().rss, anon()
    t = time.perf_counter()
    store = IndexStore.load(folder)
    load_s = time.perf_counter() - t
    rss1, anon1 = proc.memory_info().rss, anon()
    out = {"load_s": load_s, "rss_mb": (rss1 - rss0) / 2**20, "anon_mb": (anon1 - anon0) / 2**20}
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        for i in range(10):  # warm the page cache and faiss's pools
            store.search(q[i:i + 1], 5)
        times = []
        for i in range(latency_queries):
            t = time.perf_counter()
            store.search(q[i % len(q):i % len(q) + 1], 5)
            times.append(time.perf_counter() - t)
        out[f"p50_{threads}"], out[f"p99_{threads}"] = (float(np.percentile(times, p)) * 1e3 for p in (50, 99))
    faiss.omp_set_num_threads(1)
    _, ids = store.search(q, 5)
    out["recall5"] = float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ids, gt, strict=True)]))
    t = time.perf_counter()
    vote_batch(store, q[:1], k=5)
    out["first_vote_ms"] = (time.perf_counter() - t) * 1e3
    times = []
    for i in range(min(latency_queries, len(q))):
        t = time.perf_counter()
        vote_batch(store, q[i:i + 1], k=5)
        times.append(time.perf_counter() - t)
    out["vote_p50_ms"] = float(np.percentile(times, 50)) * 1e3
    out["rss_after_mb"] = (proc.memory_info().rss - rss0) / 2**20
    out["sweep"] = [dict(nprobe=nprobe, rerank=rerank, **_recall_p50(store, q, gt, nprobe, rerank, latency_queries))
                    for nprobe, rerank in sweep if store.manifest.get(ONDISK_KEY)]
    hnsw = isinstance(faiss.downcast_index(store.index), faiss.IndexHNSW)
    out["ef_sweep"] = [dict(ef=ef, **_ef_recall_p50(store, q, gt, ef, latency_queries)) for ef in ef_sweep if hnsw]
    out["rss_end_mb"], out["anon_end_mb"] = (proc.memory_info().rss - rss0) / 2**20, (anon() - anon0) / 2**20
    return out


def _recall_p50(store, q: np.ndarray, gt: np.ndarray, nprobe: int, rerank: int, latency_queries: int) -> dict:
    """Search settings are not saved with the index: set them on the open store, then measure."""
    import faiss

    from core.index.store import ONDISK_KEY

    faiss.extract_index_ivf(store.index).nprobe = nprobe
    store.manifest[ONDISK_KEY]["rerank"] = rerank
    return _recall_and_p50(store, q, gt, latency_queries)


def _ef_recall_p50(store, q: np.ndarray, gt: np.ndarray, ef: int, latency_queries: int) -> dict:
    """HNSW at search depth ``ef`` (faiss's ParameterSpace sets it through any wrapper)."""
    import faiss

    faiss.ParameterSpace().set_index_parameter(store.index, "efSearch", ef)
    return _recall_and_p50(store, q, gt, latency_queries)


def _recall_and_p50(store, q: np.ndarray, gt: np.ndarray, latency_queries: int) -> dict:
    """recall@5 over all queries and p50/p99 of single queries, on one thread, at the store's settings."""
    import faiss

    faiss.omp_set_num_threads(1)
    _, ids = store.search(q, 5)
    recall = float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ids, gt, strict=True)]))
    times = []
    for i in range(latency_queries):
        t = time.perf_counter()
        store.search(q[i % len(q):i % len(q) + 1], 5)
        times.append(time.perf_counter() - t)
    return {"recall5": recall, "p50_1": float(np.percentile(times, 50)) * 1e3, "p99_1": float(np.percentile(times, 99)) * 1e3}


def du(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="vectors in the index")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=500, help="fresh queries (recall@5 over all of them)")
    ap.add_argument("--latency-queries", type=int, default=300, help="single queries timed per thread count")
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--shards", type=int, default=4, help="shards of the on-disk build")
    ap.add_argument("--rerank", type=int, default=200, help="IVF-PQ-disk candidates re-ranked exactly")
    ap.add_argument("--nlist", type=int, default=None, help="IVF lists (default: the product's choice for the size)")
    ap.add_argument("--build-threads", type=int, default=1, help="faiss threads while building")
    ap.add_argument("--sweep", nargs="*", default=[], metavar="NPROBE:RERANK",
                    help="on-disk index: also recall@5 and p50 at these search settings, e.g. 16:1000 32:1000")
    ap.add_argument("--ef-sweep", nargs="*", type=int, default=[], metavar="EF",
                    help="HNSW index: also recall@5 and p50 at these efSearch values, e.g. 64 128 256")
    ap.add_argument("--work", default=None, help="folder for the indexes (default: a temporary one)")
    ap.add_argument("--memmap", action="store_true",
                    help="generate the vectors into WORK/vectors.npy (memory-mapped; removed at the end) and compute "
                         "the exact truth block by block, so RAM stays bounded (10M x 512: 20.5 GB of disk, not RAM); "
                         "the on-disk build's shards are slices of that file")
    ap.add_argument("--keep", action="store_true",
                    help="keep each built index in WORK/KIND, so it can be measured again alone with --measure "
                         "(a 10M x 512 build is ~50 min; without it each is removed once measured, to free the disk)")
    ap.add_argument("--measure", nargs=3, metavar=("FOLDER", "QUERIES", "TRUTH"),
                    help="only measure a kept index folder against a run's queries and exact truth (WORK/queries.npy, WORK/truth.npy); prints JSON")
    args = parse_args(ap, {"n": 100_000, "queries": 200, "latency_queries": 100}, argv)
    sweep = [tuple(int(v) for v in s.split(":")) for s in args.sweep]
    if args.measure:
        print(json.dumps(measure(*args.measure, args.latency_queries, sweep, args.ef_sweep)))
        return []

    import faiss

    work = Path(args.work or tempfile.mkdtemp(prefix="knn_scale-"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    q = clustered(args.queries, args.dim, args.clusters, seed=0, draw=1)
    if args.memmap:
        x, gt = memmap_data(work, args.n, args.dim, args.clusters, q)
    else:
        x = clustered(args.n, args.dim, args.clusters, seed=0, draw=0)
        _, gt = faiss.knn(q, x, 5, metric=faiss.METRIC_INNER_PRODUCT)
    # under --memmap the on-disk build makes each shard's table itself; the in-RAM kinds need all of it
    table = None if args.memmap and set(args.kinds) == {"IVF-PQ-disk"} else frame_table(args.n, seed=0)
    np.save(work / "queries.npy", q)
    np.save(work / "truth.npy", gt)
    print(f"# {args.n} x {args.dim} vectors, {args.clusters} clusters, {os.cpu_count()} CPUs; "
          f"data + exact truth {time.perf_counter() - t:.1f} s; work folder {work}", flush=True)
    print(f"| index | factory | build s ({args.build_threads} thread{'s' * (args.build_threads > 1)}) | disk MB (index / all) | load RSS MB (private; after the queries) | p50 / p99 ms 1 thr "
          "| p50 / p99 ms 2 thr | recall@5 | vote ms p50 (first) |")
    print("|---|---|---|---|---|---|---|---|---|")
    results = []
    for kind in args.kinds:
        folder = work / kind
        shutil.rmtree(folder, ignore_errors=True)
        factory, build_s = build(kind, x, table, folder, args.shards, args.rerank, args.nlist, args.build_threads,
                                args.memmap)
        index_bytes = sum((folder / f).stat().st_size for f in ("index.faiss", "lists.ivfdata") if (folder / f).exists())
        cmd = [sys.executable, __file__, "--measure", str(folder), str(work / "queries.npy"), str(work / "truth.npy"),
               "--latency-queries", str(args.latency_queries), "--sweep", *args.sweep,
               "--ef-sweep", *map(str, args.ef_sweep)]
        m = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        print(f"| {kind} | `{factory}` | {build_s:.1f} | {index_bytes / 2**20:.0f} / {du(folder) / 2**20:.0f} | "
              f"{m['rss_mb']:.0f} ({m['anon_mb']:.0f}; {m['rss_after_mb']:.0f}) | {m['p50_1']:.2f} / {m['p99_1']:.2f} | "
              f"{m['p50_2']:.2f} / {m['p99_2']:.2f} | {m['recall5']:.3f} | {m['vote_p50_ms']:.2f} "
              f"({m['first_vote_ms']:.0f}) |", flush=True)
        for row in m["sweep"]:
            print(f"|  at nprobe {row['nprobe']}, re-rank {row['rerank']} | | | | | {row['p50_1']:.2f} / {row['p99_1']:.2f} "
                  f"| | {row['recall5']:.3f} | |", flush=True)
        for row in m["ef_sweep"]:
            print(f"|  at efSearch {row['ef']} | | | | | {row['p50_1']:.2f} / {row['p99_1']:.2f} | | {row['recall5']:.3f} | |",
                  flush=True)
        if m["sweep"]:
            print(f"<!-- after the sweep: RSS +{m['rss_end_mb']:.0f} MB, private +{m['anon_end_mb']:.0f} MB -->", flush=True)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        results.append({"kind": kind, "factory": factory, "build_s": build_s, **m})
    del x
    (work / "vectors.npy").unlink(missing_ok=True)
    if not args.work and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
