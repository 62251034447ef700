"""bench/knn_scale.py --memmap (issue 23): the bounded-RAM data path gives the in-RAM path's vectors,
exact truth and recall, so a 10M x 512 run (20.5 GB of vectors) can use it."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture()
def knn_scale(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # the script imports its sibling _quick
    return importlib.import_module("knn_scale")


def test_memmap_data_matches_in_ram(knn_scale, tmp_path):
    # 40,000 rows: more than one generation block (131,072 rows is one; use small blocks to cross them)
    n, d = 40_000, 32
    q = knn_scale.clustered(30, d, 50, seed=0, draw=1)
    x, gt = knn_scale.memmap_data(tmp_path, n, d, 50, q)
    assert isinstance(x, np.memmap) and (tmp_path / "vectors.npy").stat().st_size >= n * d * 4
    ref = knn_scale.clustered(n, d, 50, seed=0, draw=0)
    np.testing.assert_array_equal(np.asarray(x), ref)
    _, ref_gt = faiss.knn(q, ref, 5, metric=faiss.METRIC_INNER_PRODUCT)  # independent: one exact scan
    np.testing.assert_array_equal(gt, ref_gt)


def test_memmap_truth_merges_across_blocks(knn_scale, tmp_path, monkeypatch):
    """Blocks of 1000 rows: each query's top 5 spans blocks, so the merge itself is exercised."""
    chunks = knn_scale.clustered_chunks
    monkeypatch.setattr(knn_scale, "clustered_chunks", lambda *a, **k: chunks(*a, **{**k, "chunk": 1000}))
    q = knn_scale.clustered(20, 16, 5, seed=0, draw=1)
    x, gt = knn_scale.memmap_data(tmp_path, 10_000, 16, 5, q)
    _, ref_gt = faiss.knn(q, np.asarray(x), 5, metric=faiss.METRIC_INNER_PRODUCT)
    assert len(set((gt // 1000).ravel())) > 1
    np.testing.assert_array_equal(gt, ref_gt)


def test_frame_table_slice_is_the_whole_tables_rows(knn_scale):
    whole = knn_scale.frame_table(1000, seed=0)
    part = knn_scale.frame_table(1000, seed=0, start=300, stop=700)
    pd.testing.assert_frame_equal(part, whole.iloc[300:700].reset_index(drop=True))


def test_memmap_run_gives_the_in_ram_truth_and_recall(knn_scale, tmp_path):
    """The whole --memmap run against the in-RAM path (built and measured here, in this process)."""
    n, d, clusters, settings = 4000, 16, 1000, {"nlist": 16, "shards": 2, "rerank": 30}
    mapped = knn_scale.main(["--n", str(n), "--dim", str(d), "--queries", "50", "--latency-queries", "3",
                             "--kinds", "IVF-PQ-disk", "--sweep", "2:10", "--work", str(tmp_path / "mm"), "--memmap",
                             *[f"--{k}={v}" for k, v in settings.items()]])
    x, q = (knn_scale.clustered(m, d, clusters, seed=0, draw=draw) for m, draw in ((n, 0), (50, 1)))
    _, gt = faiss.knn(q, x, 5, metric=faiss.METRIC_INNER_PRODUCT)
    np.testing.assert_array_equal(np.load(tmp_path / "mm" / "truth.npy"), gt)
    np.save(tmp_path / "q.npy", q)
    np.save(tmp_path / "gt.npy", gt)
    (tmp_path / "ram").mkdir()
    knn_scale.build("IVF-PQ-disk", x, knn_scale.frame_table(n, seed=0), tmp_path / "ram" / "index", **settings)
    ram = knn_scale.measure(str(tmp_path / "ram" / "index"), str(tmp_path / "q.npy"), str(tmp_path / "gt.npy"), 3,
                            [(2, 10)])
    assert mapped[0]["recall5"] == ram["recall5"]
    assert mapped[0]["sweep"][0]["recall5"] == ram["sweep"][0]["recall5"] < ram["recall5"]  # not all 1.0
    assert not (tmp_path / "mm" / "vectors.npy").exists()  # 20.5 GB at 10M x 512: removed after the run
    assert not list((tmp_path / "mm").glob("shard*.npy"))  # shards were slices of it, not copies


def test_ef_sweep_sets_hnsw_search_depth(knn_scale, tmp_path):
    """--ef-sweep: each row's recall is what faiss gives with that efSearch set on the saved index itself."""
    n, d = 4000, 16
    x, q = (knn_scale.clustered(m, d, 1000, seed=0, draw=draw) for m, draw in ((n, 0), (50, 1)))
    _, gt = faiss.knn(q, x, 5, metric=faiss.METRIC_INNER_PRODUCT)
    np.save(tmp_path / "q.npy", q)
    np.save(tmp_path / "gt.npy", gt)
    knn_scale.build("HNSW32", x, knn_scale.frame_table(n, seed=0), tmp_path / "h", shards=1, rerank=0)
    rows = knn_scale.measure(str(tmp_path / "h"), str(tmp_path / "q.npy"), str(tmp_path / "gt.npy"), 3, [], [4, 64])
    index = faiss.read_index(str(tmp_path / "h" / "index.faiss"))
    for row in rows["ef_sweep"]:
        faiss.ParameterSpace().set_index_parameter(index, "efSearch", row["ef"])
        ids = index.search(q, 5)[1]
        assert row["recall5"] == np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ids, gt, strict=True)])
    assert rows["ef_sweep"][0]["recall5"] < rows["ef_sweep"][1]["recall5"]


def test_keep_leaves_an_index_that_measure_reads_again(knn_scale, tmp_path, capsys):
    """--keep: the built index stays in WORK/KIND and --measure alone gives the run's recall on it again."""
    work = tmp_path / "w"
    rows = knn_scale.main(["--n", "3000", "--dim", "16", "--queries", "40", "--latency-queries", "3",
                           "--kinds", "IVF-PQ-disk", "--nlist", "16", "--shards", "2", "--rerank", "20",
                           "--sweep", "2:10", "--work", str(work), "--keep"])
    assert (work / "IVF-PQ-disk" / "index.faiss").exists()
    capsys.readouterr()
    knn_scale.main(["--measure", str(work / "IVF-PQ-disk"), str(work / "queries.npy"), str(work / "truth.npy"),
                    "--latency-queries", "3", "--sweep", "2:10"])
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["recall5"] == rows[0]["recall5"]
    assert again["sweep"][0]["recall5"] == rows[0]["sweep"][0]["recall5"]
