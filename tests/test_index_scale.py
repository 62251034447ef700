"""Issue 23: indexes larger than RAM and the O(k) query path (small data, fast).

References are independent of the code under test: an in-memory faiss index of the same factory,
faiss IndexFlatIP (exact search) and numpy brute force.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import faiss
import numpy as np
import pandas as pd
import pytest

from core import neighbours as nb
from core.index import IndexMismatchError, IndexStore, IndexStoreError, make_index
from core.index.ondisk import EXACT_BELOW, LISTS_FILE, build_ondisk, choose_factory, without_polysemous
from core.predict import vote_batch
from core.schema import UNKNOWN, default_schema
from core.vectors import normalize

SCHEMA = default_schema()
N, DIM = 5000, 64


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dim)).astype(np.float32)
    return (centres[rng.integers(0, 50, n)] + 0.4 * rng.normal(size=(n, dim))).astype(np.float32)


def frames(lo: int, hi: int) -> pd.DataFrame:
    rng = np.random.default_rng(lo)
    labels = {a.name: [[*a.value_names, UNKNOWN][j] for j in rng.integers(0, len(a.value_names) + 1, hi - lo)]
              for a in SCHEMA.attributes}
    return pd.DataFrame({"path": [f"clips/c{i // 10}/f{i}.jpg" for i in range(lo, hi)],
                         "clip_id": [f"c{i // 10}" for i in range(lo, hi)],
                         "split": ["train" if i % 4 else "test" for i in range(lo, hi)], **labels})


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread():
    """Training on 2 shared cores is several times slower with 2 OpenMP threads than with 1."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    x = clustered(N, DIM)
    folder = tmp_path_factory.mktemp("shards")
    np.save(folder / "s0.npy", x[:2000])  # one shard from files, read memory-mapped; two in memory
    frames(0, 2000).to_parquet(folder / "s0.parquet")
    shards = [(folder / "s0.npy", folder / "s0.parquet"), (x[2000:3600], frames(2000, 3600)),
              (x[3600:], frames(3600, N))]
    return x, shards, pd.concat([frames(0, 2000), frames(2000, 3600), frames(3600, N)], ignore_index=True)


@pytest.fixture(scope="module")
def ivf_flat(data, tmp_path_factory):
    _, shards, _ = data
    return build_ondisk(shards, tmp_path_factory.mktemp("ix") / "ondisk", model="toy@1", factory="IVF64,Flat",
                        rerank=0, familiarity=False)


def test_sharded_ondisk_equals_in_memory_index_of_the_same_factory(data, ivf_flat):
    x, _, _ = data
    ref = make_index("IVF64,Flat", normalize(x))  # one in-memory index, trained on every vector
    q = normalize(clustered(200, DIM, seed=7))
    want_d, want_i = ref.search(q, 5)
    got_d, got_i = ivf_flat.search(q, 5)
    # Trained on a sample, the coarse quantizer may differ from the reference's; with 64 lists and
    # nprobe 16 both must find the exact neighbours (faiss Flat) nearly always, and agree with each other.
    exact = faiss.IndexFlatIP(DIM)
    exact.add(normalize(x))
    _, true_i = exact.search(q, 5)
    assert np.mean(got_i == want_i) > 0.97
    assert np.mean([len(set(g) & set(t)) / 5 for g, t in zip(got_i, true_i, strict=True)]) > 0.97
    np.testing.assert_allclose(got_d[got_i == want_i], want_d[got_i == want_i], atol=1e-5)


def test_same_trained_quantizer_gives_identical_neighbours(data, tmp_path):
    """Sharding and on-disk lists change nothing: same training sample -> the very same results."""
    x, shards, _ = data
    store = build_ondisk(shards, tmp_path / "ix", model="toy@1", factory="IVF64,Flat", rerank=0, familiarity=False)
    ref = faiss.index_factory(DIM, "IVF64,Flat", faiss.METRIC_INNER_PRODUCT)
    ref.quantizer.add(faiss.extract_index_ivf(store.index).quantizer.reconstruct_n(0, 64))
    ref.is_trained = True
    ref.add(normalize(x))
    ref.nprobe = faiss.extract_index_ivf(store.index).nprobe
    q = normalize(clustered(100, DIM, seed=3))
    d0, i0 = ref.search(q, 5)
    d1, i1 = store.search(q, 5)
    np.testing.assert_array_equal(i1, i0)
    np.testing.assert_allclose(d1, d0, atol=1e-5)


def test_ondisk_store_is_memory_mapped_and_keeps_the_frame_table(data, ivf_flat):
    _, _, table = data
    assert isinstance(ivf_flat.embeddings(), np.memmap)
    lists = faiss.extract_index_ivf(ivf_flat.index).invlists
    assert isinstance(faiss.downcast_InvertedLists(lists), faiss.OnDiskInvertedLists)
    assert (ivf_flat.path / LISTS_FILE).is_file() and ivf_flat.manifest["ondisk"]["lists"] == LISTS_FILE
    assert ivf_flat.meta["path"].tolist() == table["path"].tolist()
    assert [ivf_flat.labels(i) for i in (0, 2500, N - 1)] == [
        {a: table[a].iat[i] for a in SCHEMA.names} for i in (0, 2500, N - 1)]


def test_large_index_reads_its_frame_table_by_row_id_and_maps_its_vectors(data, ivf_flat, monkeypatch, tmp_path):
    import mmap

    import core.index.store as store_mod
    from core.index.frames import FrameTable

    _, _, table = data
    monkeypatch.setattr(store_mod, "LAZY_FRAMES_ROWS", 1000)  # this 5000-row table counts as large
    whole = FrameTable.to_pandas

    def never(*_a, **_k):
        raise AssertionError("the frame table was read whole")

    monkeypatch.setattr(pd, "read_parquet", never)
    monkeypatch.setattr(FrameTable, "to_pandas", never)
    store = IndexStore.load(ivf_flat.path)
    emb = store.embeddings()  # the vectors: a view of the file's pages, never a copy in RAM
    assert isinstance(emb, np.memmap) and isinstance(emb.base, mmap.mmap) and not emb.flags.owndata
    rows = np.array([4999, 0, 2500, 1999, 2000, 0, 3600])  # across the shards' row groups, repeats, any order
    assert store.paths_of(rows) == table["path"].iloc[rows].tolist()
    assert [store.labels(i) for i in rows] == [{a: table[a].iat[i] for a in SCHEMA.names} for i in rows]
    assert str(store.abspath(2500)).endswith(table["path"].iat[2500])
    import core.index.frames as frames_mod

    monkeypatch.setattr(frames_mod, "PIN_ROWS", 0)  # as a table too big to keep its paths whole
    assert IndexStore.load(ivf_flat.path).paths_of(rows) == table["path"].iloc[rows].tolist()
    votes = vote_batch(store, clustered(5, DIM, seed=5), k=5)
    assert [[n.path for n in v.neighbors] for v in votes] == [table["path"].iloc[[n.id for n in v.neighbors]].tolist()
                                                             for v in votes]
    copy = store.save(tmp_path / "copy")  # copies the table file instead of reading it
    monkeypatch.setattr(FrameTable, "to_pandas", whole)
    assert IndexStore.load(copy).meta.equals(store.meta)  # whole on demand, for callers that need it
    assert store.meta[table.columns].astype(str).equals(table.astype(str))


def test_votes_search_and_model_check_work_on_disk(data, ivf_flat):
    x, _, table = data
    memory = IndexStore.from_embeddings(x, table, model="toy@1", factory="Flat")
    q = clustered(20, DIM, seed=11)
    plain = vote_batch(ivf_flat, q, k=5)  # through the on-disk IVF index
    _, ids = ivf_flat.search(q, 5)
    assert [[n.id for n in v.neighbors] for v in plain] == ids.tolist()
    assert [[n.path for n in v.neighbors] for v in plain] == [table["path"].iloc[r].tolist() for r in ids]
    rule = {"exclude": "clip", "query_rows": np.arange(20), "among": np.arange(0, N, 2)}
    got, want = vote_batch(ivf_flat, x[:20], k=5, **rule), vote_batch(memory, x[:20], k=5, **rule)
    assert [v.labels() for v in got] == [v.labels() for v in want]  # shaped searches are exact on both
    assert [[n.path for n in v.neighbors] for v in got] == [[n.path for n in v.neighbors] for v in want]
    IndexStore.load(ivf_flat.path, model=SimpleNamespace(identity="toy@1"))
    with pytest.raises(IndexMismatchError, match="built with model toy@1"):
        IndexStore.load(ivf_flat.path, model=SimpleNamespace(identity="other@2"))


def test_reranked_ivfpq_returns_exact_order_of_its_candidates(data, tmp_path):
    x, shards, _ = data
    store = build_ondisk(shards, tmp_path / "pq", model="toy@1", factory="IVF16,PQ32x4np", rerank=200,
                         familiarity=False)
    xn, q = normalize(x), normalize(clustered(50, DIM, seed=5))
    sims, ids = store.search(q, 5)
    _, cand = store.index.search(q, 200)
    for r in range(len(q)):  # numpy brute force among the same candidates
        c = cand[r][cand[r] >= 0]
        s = xn[c] @ q[r]
        np.testing.assert_array_equal(ids[r], c[np.argsort(-s, kind="stable")[:5]])
        np.testing.assert_allclose(sims[r], np.sort(s)[::-1][:5], atol=1e-5)
    exact = faiss.IndexFlatIP(DIM)
    exact.add(xn)
    _, true_i = exact.search(q, 5)
    _, raw_i = store.index.search(q, 5)  # PQ codes alone
    recall = np.mean([len(set(g) & set(t)) / 5 for g, t in zip(ids, true_i, strict=True)])
    raw = np.mean([len(set(g) & set(t)) / 5 for g, t in zip(raw_i, true_i, strict=True)])
    assert recall >= 0.9 and recall >= raw


def test_load_maps_the_index_instead_of_reading_it(tmp_path):
    """RssAnon (private memory) barely grows when a 40 MB Flat index is opened and searched.

    Few wide rows: the frame table (read whole into pandas) stays small beside the vectors.
    """
    x = clustered(5000, 2048)
    IndexStore.from_embeddings(x, frames(0, len(x)), model="toy@1", factory="Flat").save(tmp_path / "flat")
    IndexStore.from_embeddings(x[:50], frames(0, 50), model="toy@1", factory="Flat").save(tmp_path / "warm")
    script = textwrap.dedent(f"""
        import numpy as np
        from core.index import IndexStore
        def anon():
            return int(next(line for line in open("/proc/self/status") if line.startswith("RssAnon")).split()[1])
        IndexStore.load({str(tmp_path / "warm")!r}).search(np.ones((3, 2048), np.float32), 5)  # imports, pools
        import pandas as pd  # the frame table is read whole (pandas): warm arrow's pool with it
        pd.read_parquet({str(tmp_path / "flat" / "meta.parquet")!r})
        before = anon()
        s = IndexStore.load({str(tmp_path / "flat")!r})
        s.search(np.ones((3, 2048), np.float32), 5)
        print(anon() - before, isinstance(s.embeddings(), np.memmap))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=os.getcwd(), check=True).stdout.split()
    grew_kb, memmap = int(out[-2]), out[-1]
    assert memmap == "True"
    assert grew_kb * 1024 < x.nbytes / 4, f"loading grew private memory by {grew_kb} kB for {x.nbytes} bytes"


def test_vote_batch_reads_only_the_hit_rows(data, monkeypatch):
    x, _, table = data
    store = IndexStore.from_embeddings(x, table, model="toy@1")

    def every_row(*_a, **_k):
        raise AssertionError("vote_batch must not build a table of every row")

    monkeypatch.setattr(store, "label_table", every_row)
    monkeypatch.setattr(store, "paths", every_row)
    votes = vote_batch(store, x[:3], k=5)
    d, i = faiss.knn(normalize(x[:3]), normalize(x), 5, metric=faiss.METRIC_INNER_PRODUCT)
    assert [[n.id for n in v.neighbors] for v in votes] == i.tolist()
    assert [n.labels for n in votes[1].neighbors] == [{a: table[a].iat[j] for a in SCHEMA.names} for j in i[1]]
    assert [n.path for n in votes[2].neighbors] == table["path"].iloc[i[2]].tolist()


def test_label_codes_are_small_and_round_trip_every_label():
    table = frames(0, 300)
    first = SCHEMA.names[0]
    table.loc[7, first] = "not-in-schema"  # kept and voted as it stands, as before
    store = IndexStore.from_embeddings(clustered(300, 16), table, model="toy@1")
    codes, vocabs = store.label_codes()
    assert all(c.dtype == np.int8 for c in codes)
    for a, v in zip(SCHEMA.attributes, vocabs, strict=True):
        assert list(v[: len(a.value_names)]) == a.value_names  # schema value index
    np.testing.assert_array_equal(store.label_table(), table[SCHEMA.names].to_numpy(dtype=object))
    assert store.labels(7)[first] == "not-in-schema"


def test_chunked_exact_search_equals_the_flat_one(data, monkeypatch):
    x, _, table = data
    store = IndexStore.from_embeddings(x, table, model="toy@1")
    rows, among = np.arange(0, 300, 7), np.flatnonzero(table["split"].to_numpy() == "train")
    space = normalize(clustered(6, DIM, seed=2))
    want = [nb.neighbours(store, x[rows], 5, exclude="clip", query_rows=rows, among=among, space=s)
            for s in (None, space)]
    monkeypatch.setattr(nb, "_FLAT_BYTES", 0)
    monkeypatch.setattr(nb, "_CHUNK_ROWS", 512)
    got = [nb.neighbours(store, x[rows], 5, exclude="clip", query_rows=rows, among=among, space=s)
           for s in (None, space)]
    for (gd, gi), (wd, wi) in zip(got, want, strict=True):
        np.testing.assert_array_equal(gi, wi)
        np.testing.assert_allclose(gd, wd, atol=1e-5)


def test_defaults_by_size_and_no_polysemous_training():
    assert choose_factory(EXACT_BELOW - 1, 256) == "Flat"
    assert choose_factory(1_000_000, 256) == "IVF4096,Flat"
    assert choose_factory(1_000_000, 256, on_disk=True) == "IVF4096,PQ32np"
    index = without_polysemous(faiss.index_factory(64, "IVF16,PQ8", faiss.METRIC_INNER_PRODUCT))
    assert not faiss.downcast_index(faiss.extract_index_ivf(index)).do_polysemous_training


def test_refuses_what_it_cannot_put_on_disk(data, tmp_path):
    x, shards, _ = data
    with pytest.raises(IndexStoreError, match="no inverted lists"):
        build_ondisk(shards, tmp_path / "flat", model="toy@1", factory="Flat")
    with pytest.raises(IndexStoreError, match="shards disagree"):
        build_ondisk([(x[:100], frames(0, 100)), (x[:100, :8], frames(0, 100))], tmp_path / "bad",
                     model="toy@1", factory="IVF4,Flat")


def test_killed_build_leaves_the_previous_index(data, ivf_flat, tmp_path):
    """SIGKILL just before the merge: the finished index at ``out`` is untouched and loads."""
    import shutil

    out = tmp_path / "ix"
    shutil.copytree(ivf_flat.path, out)
    script = textwrap.dedent(f"""
        import numpy as np, pandas as pd
        from core.index.ondisk import build_ondisk
        x = np.load({str(out / "embeddings.npy")!r})
        build_ondisk([(x, pd.read_parquet({str(out / "meta.parquet")!r}))], {str(out)!r}, model="new@2",
                     factory="IVF64,Flat", familiarity=False)
    """)
    env = {**os.environ, "SCENESCOPE_CRASH_AT": "ondisk.merge"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120, cwd=os.getcwd())
    assert proc.returncode == -9
    again = IndexStore.load(out, model=SimpleNamespace(identity="toy@1"))
    assert len(again) == N
    np.testing.assert_array_equal(again.search(x_ := data[0][:5], 5)[1], ivf_flat.search(x_, 5)[1])


def test_saving_an_ondisk_store_copies_its_lists(data, ivf_flat, tmp_path):
    q = normalize(clustered(20, DIM, seed=9))
    IndexStore.load(ivf_flat.path).save(tmp_path / "copy")  # a store of its own: save() moves its path
    copy = IndexStore.load(tmp_path / "copy")
    assert (tmp_path / "copy" / LISTS_FILE).is_file()
    np.testing.assert_array_equal(copy.search(q, 5)[1], ivf_flat.search(q, 5)[1])


def test_map_fits_umap_on_a_sample_and_places_every_other_point(monkeypatch):
    """A map of more points than UMAP_SAMPLE: UMAP sees only the sample, the rest join by k-NN."""
    import core.maps.layout as sample
    from core.maps import density_grid, umap_projection, view_points

    rng = np.random.default_rng(1)
    centres = 3 * rng.normal(size=(6, DIM)).astype(np.float32)
    cluster = rng.integers(0, 6, 1500)
    x = centres[cluster] + 0.3 * rng.normal(size=(1500, DIM)).astype(np.float32)
    store = IndexStore.from_embeddings(x, frames(0, 1500), model="toy@1")
    seen = []

    def stand_in_umap(xs, params=None, progress=None):  # a fixed 2-D projection stands in for UMAP
        seen.append(len(xs))
        return np.ascontiguousarray(normalize(xs)[:, :2] * 10, dtype=np.float32)

    monkeypatch.setattr(sample, "UMAP_SAMPLE", 200)
    monkeypatch.setattr(sample, "compute_layout", stand_in_umap)
    layout = umap_projection(store)
    rows = sample.sample_rows(1500, 200, 0)
    assert seen == [200] and layout.shape == (1500, 2) and np.isfinite(layout).all()
    np.testing.assert_array_equal(layout[rows], stand_in_umap(store.embeddings()[rows]))
    rest = np.setdiff1d(np.arange(1500), rows)
    # each placed point lands beside its own cluster's sample points, as sklearn's 1-NN on the layout says
    from sklearn.neighbors import KNeighborsClassifier

    nearest = KNeighborsClassifier(1).fit(layout[rows], cluster[rows]).predict(layout[rest])
    assert np.mean(nearest == cluster[rest]) > 0.95
    assert len(np.unique(layout[rest].round(5), axis=0)) > 0.9 * len(rest)  # placed, not snapped onto the sample
    counts, xe, ye = density_grid(layout, bins=32)
    assert counts.sum() == 1500 and counts.shape == (32, 32)
    box = (float(xe[0]), float(xe[16]), float(ye[0]), float(ye[-1]))
    inside = view_points(layout, box, limit=10**6)
    assert len(inside) == counts[:16].sum() or abs(len(inside) - counts[:16].sum()) <= 2  # edge points
    assert len(view_points(layout, box, limit=50)) == min(50, len(inside))


def test_search_depth_grows_with_size(data, tmp_path):
    """Re-rank depth and nprobe follow the measured recall (bench/RESULTS.md 12): the 10M run lost
    half its true neighbours at the small-index settings."""
    from core.index.factory import DEFAULT_NPROBE, LARGE_IVF, LARGE_NPROBE, tune
    from core.index.ondisk import DEFAULT_RERANK, default_rerank

    sizes = [10_000, 300_000, 1_000_000, LARGE_IVF, 10_000_000]
    depths = [default_rerank(n) for n in sizes]
    assert depths[0] == depths[1] == DEFAULT_RERANK and depths == sorted(depths) and depths[-1] >= 2000
    _, shards, _ = data
    store = build_ondisk(shards, tmp_path / "pq", model="toy@1", factory="IVF16,PQ32x4np", familiarity=False)
    assert store.manifest["ondisk"]["rerank"] == default_rerank(len(store))
    index = faiss.index_factory(8, "IVF64,Flat")
    index.train(np.random.default_rng(0).normal(size=(64 * 40, 8)).astype(np.float32))
    ivf = faiss.extract_index_ivf(index)
    assert tune(index) is index and ivf.nprobe == DEFAULT_NPROBE
    ivf.ntotal = LARGE_IVF  # what a 3M-vector index reports; tune reads only the count
    tune(index)
    assert ivf.nprobe == LARGE_NPROBE > DEFAULT_NPROBE
