"""Issue 23: IVF lists and PQ codebooks are trained on a seeded sample of the vectors, not on all of
them, and the same vectors build the same index. The reference is faiss itself, trained directly on
that sample, and exact search (IndexFlatIP)."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from core.index import make_index
from core.index.factory import POINTS_PER_LIST, parse_factory, train_rows, training_size
from core.vectors import normalize

DIM = 32


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, DIM)).astype(np.float32)
    return normalize((centres[rng.integers(0, 40, 4000)] + 0.4 * rng.normal(size=(4000, DIM))).astype(np.float32))


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread():
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def _centroids(index: faiss.Index) -> np.ndarray:
    ivf = faiss.extract_index_ivf(index)
    return ivf.quantizer.reconstruct_n(0, ivf.nlist)


def test_ivf_is_trained_on_a_seeded_sample_like_faiss_on_that_sample(x: np.ndarray) -> None:
    factory = "IVF8,Flat"
    size = training_size(parse_factory(factory, DIM), len(x))
    assert size == 8 * POINTS_PER_LIST < len(x), "a sample, not every vector"
    got = make_index(factory, x)
    ref = parse_factory(factory, DIM)
    ref.train(x[train_rows(len(x), size)])
    ref.add(x)
    np.testing.assert_array_equal(_centroids(got), _centroids(ref))
    faiss.extract_index_ivf(ref).nprobe = faiss.extract_index_ivf(got).nprobe
    q = x[::80]
    np.testing.assert_array_equal(got.search(q, 5)[1], ref.search(q, 5)[1])
    exact = faiss.IndexFlatIP(DIM)
    exact.add(x)
    truth = exact.search(q, 5)[1]
    recall = np.mean([len(set(g) & set(t)) / 5 for g, t in zip(got.search(q, 5)[1], truth, strict=True)])
    assert recall > 0.95


def test_builds_are_deterministic_and_other_trained_parts_see_every_vector(x: np.ndarray) -> None:
    a, b = make_index("IVF8,PQ4x4", x), make_index("IVF8,PQ4x4", x)
    assert np.array_equal(faiss.serialize_index(a), faiss.serialize_index(b))
    assert not faiss.downcast_index(faiss.extract_index_ivf(a)).do_polysemous_training  # search never uses it
    assert not np.array_equal(_centroids(make_index("IVF8,Flat", x, seed=1)), _centroids(make_index("IVF8,Flat", x)))
    assert training_size(parse_factory("PCA16,Flat", DIM), len(x)) == len(x)
    assert training_size(parse_factory("IVF8,PQ8", DIM), 10**6) == 256 * 256  # faiss's own PQ cap
    assert training_size(parse_factory("Flat", DIM), len(x)) == len(x)
