"""IndexStore / build_index: factories, exact search, atomic + resumable builds, refusals."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch
from PIL import Image

from core.data.manifest import read_manifest, write_manifest
from core.index import (
    IndexMismatchError,
    IndexStore,
    IndexStoreError,
    build_index,
    building_path,
    discard_build,
)
from core.index.preprocess import fast_preprocess
from core.schema import default_schema

REPO = Path(__file__).resolve().parents[1]

# A stand-in model: deterministic, fast, optionally slow or failing. Kept as source text so the
# killed build in a subprocess runs exactly the same code.
FAKE_MODEL_SRC = '''
import time
import numpy as np
import torch

class FakeModel:
    """Embeds a 4x4 thumbnail through a fixed random projection (the SceneModel duck type)."""

    embed_dim = 16

    def __init__(self, seed=0, delay=0.0, fail_after=None):
        self.identity = f"fake@{seed}"
        self.name = "fake"
        self.proj = np.random.default_rng(seed).normal(size=(48, self.embed_dim)).astype(np.float32)
        self.delay, self.fail_after, self.batches = delay, fail_after, 0

    def preprocess(self, im):
        arr = np.asarray(im.resize((4, 4)), dtype=np.float32) / 255.0
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()

    def embed_batch(self, pixels):
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise RuntimeError("fake model crashed")
        self.batches += 1
        time.sleep(self.delay)
        v = pixels.reshape(len(pixels), -1).numpy() @ self.proj
        return v / np.linalg.norm(v, axis=1, keepdims=True)
'''
_ns: dict = {}
exec(FAKE_MODEL_SRC, _ns)
FakeModel = _ns["FakeModel"]


def make_dataset(root: Path, n: int = 24, seed: int = 0, size: tuple[int, int] = (24, 16)):
    """``n`` random-noise PNGs with random schema labels, all in the train split."""
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        rel = f"img/{i:03d}.png"
        (root / "img").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / rel)
        rows.append({"path": rel, "clip_id": f"clip{i // 8}", "frame_index": i % 8,
                     "timestamp_s": (i % 8) * 0.5, "split": "train", **default_schema().sample(prng)})
    write_manifest(root, rows)
    return read_manifest(root)


def exact_topk(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :k]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"), n=40)


def snapshot(path: Path) -> dict:
    return {f: (path / f).read_bytes() for f in ("index.faiss", "meta.parquet", "embeddings.npy", "manifest.json")}


# ---- build, search, factories ------------------------------------------------------------
@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "IVF4,Flat"])
def test_factories_build_and_search_like_numpy(dataset, tmp_path, factory):
    model = FakeModel()
    store = build_index(dataset, model, tmp_path / "ix", factory=factory, batch_size=8, progress=False)
    loaded = IndexStore.load(tmp_path / "ix", model=model)
    x = loaded.embeddings()
    assert x.shape == (40, 16) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    # stored vectors are the model's embeddings of the files, row i = manifest row i
    direct = model.embed_batch(torch.stack(
        [model.preprocess(Image.open(dataset.abspath(p)).convert("RGB")) for p in dataset.frames["path"]]))
    np.testing.assert_allclose(x, direct, atol=1e-6)
    m = loaded.manifest
    assert (m["model"], m["dim"], m["metric"], m["count"], m["factory"], m["split"]) == \
        ("fake@0", 16, "cosine", 40, factory, "train")
    assert m["dataset"] == str(dataset.root.resolve()) and "created" in m and "scenescope_version" in m
    assert loaded.data_root == dataset.root.resolve() and len(loaded) == 40
    assert list(loaded.meta.columns) == ["path", "clip_id", "frame_index", "timestamp_s", "split",
                                         *default_schema().names]
    assert loaded.meta["path"].tolist() == dataset.frames["path"].tolist()
    assert loaded.labels(3) == dataset.labels(3)
    q = x[:10] + 0.05 * np.random.default_rng(0).normal(size=(10, 16)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    sims, ids = loaded.search(q, 5)
    expect = exact_topk(x, q, 5)
    if factory == "HNSW32":  # approximate: demand near-perfect recall on this tiny set
        assert np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ids, expect, strict=True)]) >= 0.95
    else:  # Flat is exact; IVF4 probes all 4 lists (nprobe = min(16, nlist))
        np.testing.assert_array_equal(ids, expect)
        np.testing.assert_allclose(sims, np.take_along_axis(q @ x.T, expect, 1), atol=1e-5)
    if factory.startswith("IVF"):
        assert faiss.extract_index_ivf(loaded.index).nprobe == 4
    assert store.search(q, 5)[1].shape == (10, 5)
    assert loaded.search(q, 100)[1].shape == (10, 40)  # k is capped at the index size


def test_too_small_for_ivf_and_bad_factory_fail_before_embedding(dataset, tmp_path):
    model = FakeModel()
    with pytest.raises(IndexStoreError, match=r"needs at least 64 vectors .* only 40"):
        build_index(dataset, model, tmp_path / "ix", factory="IVF64,Flat", progress=False)
    with pytest.raises(IndexStoreError, match="at least 256 vectors"):
        build_index(dataset, model, tmp_path / "ix", factory="IVF4,PQ4", progress=False)
    with pytest.raises(IndexStoreError, match="invalid FAISS factory"):
        build_index(dataset, model, tmp_path / "ix", factory="NoSuchIndex", progress=False)
    assert model.batches == 0 and not (tmp_path / "ix").exists()


@pytest.fixture
def one_torch_thread():
    """On a shared 2-core box, 2 OpenMP threads wait on each other at every op: use one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_real_scene_model_identity_refusal_and_bf16(tmp_path, one_torch_thread):
    import open_clip

    import core.models  # registers the scenescope-tiny config
    from core.models import SceneModel

    def tiny(identity: str) -> SceneModel:
        torch.manual_seed(0)
        clip, _, pre = open_clip.create_model_and_transforms("scenescope-tiny")
        return SceneModel(name="scenescope-tiny", identity=identity, clip=clip.eval(), preprocess=pre,
                          tokenizer=open_clip.get_tokenizer("scenescope-tiny"))

    assert core.models
    ds = make_dataset(tmp_path / "data", n=8, size=(64, 36))
    model = tiny("tiny@a")
    store = build_index(ds, model, tmp_path / "ix", batch_size=5, workers=2, progress=False)
    images = [Image.open(ds.abspath(p)) for p in ds.frames["path"]]
    fast = fast_preprocess(model)  # the pipeline's torch-free preprocessing: bit-identical pixels
    assert fast is not model.preprocess
    for im in images[:3] + [images[0].convert("L"), images[1].resize((300, 400))]:
        assert torch.equal(torch.as_tensor(fast(im.convert("RGB"))), model.preprocess(im))
    np.testing.assert_allclose(store.embeddings(), model.embed_images(images), atol=1e-5)
    with pytest.raises(IndexMismatchError, match=r"built with model tiny@a; loaded model is tiny@b; rebuild"):
        IndexStore.load(tmp_path / "ix", model=dataclasses.replace(model, identity="tiny@b"))
    assert len(IndexStore.load(tmp_path / "ix", model=model)) == 8
    half = build_index(ds, model, tmp_path / "ix16", batch_size=6, progress=False, bf16=True)
    assert half.manifest["precision"] == "bf16"
    cos = np.sum(half.embeddings() * store.embeddings(), axis=1)
    assert cos.min() > 0.98 and not np.array_equal(half.embeddings(), store.embeddings())


# ---- refusals and corrupt folders ----------------------------------------------------------
def test_missing_and_corrupt_files_raise_clear_errors(dataset, tmp_path):
    with pytest.raises(IndexStoreError, match="no index here"):
        IndexStore.load(tmp_path / "nothing")
    build_index(dataset, FakeModel(), tmp_path / "ix", progress=False)
    good = snapshot(tmp_path / "ix")
    cases = [
        ("meta.parquet", None, "incomplete index .*meta.parquet"),
        ("index.faiss", b"garbage", "corrupt FAISS index"),
        ("manifest.json", b"{not json", "manifest.json: unreadable"),
        ("manifest.json", b"{}", "missing keys"),
        ("meta.parquet", b"PAR1 torn", "meta.parquet: cannot read"),
        ("embeddings.npy", b"nope", "embeddings.npy: cannot read"),
    ]
    for name, data, msg in cases:
        f = tmp_path / "ix" / name
        if data is None:
            f.unlink()
        else:
            f.write_bytes(data)
        with pytest.raises(IndexStoreError, match=msg):
            IndexStore.load(tmp_path / "ix")
        f.write_bytes(good[name])
    manifest = json.loads(good["manifest.json"])
    (tmp_path / "ix" / "manifest.json").write_text(json.dumps({**manifest, "count": 39}))
    with pytest.raises(IndexStoreError, match="files disagree"):
        IndexStore.load(tmp_path / "ix")


def test_unreadable_image_names_the_file(tmp_path):
    ds = make_dataset(tmp_path / "data", n=6)
    (tmp_path / "data" / "img" / "004.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(IndexStoreError, match=r"cannot read image img/004\.png"):
        build_index(ds, FakeModel(), tmp_path / "ix", batch_size=2, progress=False)


def test_refuses_to_replace_a_folder_that_is_not_an_index(dataset, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(IndexStoreError, match="not an index folder"):
        build_index(dataset, FakeModel(), tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# ---- atomicity, resume, discard ---------------------------------------------------------
KILLED_BUILD = '''
import sys
from core.data.manifest import read_manifest
from core.index import build_index
exec(sys.argv[3])
build_index(read_manifest(sys.argv[1]), FakeModel(seed=0, delay=0.25), sys.argv[2],
            batch_size=4, workers=1, progress=False)
'''


def test_kill_9_midway_keeps_previous_index_then_resume_equals_fresh(dataset, tmp_path):
    out = tmp_path / "ix"
    build_index(dataset, FakeModel(seed=1), out, batch_size=4, progress=False)  # the previous index
    before = snapshot(out)
    chunks = building_path(out) / "chunks"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(dataset.root), str(out), FAKE_MODEL_SRC],
                            cwd=REPO, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(list(chunks.glob("chunk_*.npy"))) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the build never wrote a chunk"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(chunks.glob("chunk_*.npy")))
    assert 3 <= done < 10, done  # killed midway (10 chunks in all)

    assert snapshot(out) == before  # previous index untouched on disk
    old = IndexStore.load(out, model=FakeModel(seed=1))
    assert old.manifest["model"] == "fake@1"
    with pytest.raises(IndexMismatchError):
        IndexStore.load(out, model=FakeModel(seed=0))

    model = FakeModel(seed=0)
    resumed = build_index(dataset, model, out, batch_size=32, resume=True, progress=False)
    assert model.batches == 10 - done  # only the missing chunks were embedded, in the old chunking
    fresh = build_index(dataset, FakeModel(seed=0), tmp_path / "fresh", batch_size=4, progress=False)
    loaded = IndexStore.load(out, model=model)
    np.testing.assert_array_equal(loaded.embeddings(), fresh.embeddings())
    assert loaded.meta.equals(fresh.meta)
    q = fresh.embeddings()[::3]
    for a, b in zip(loaded.search(q, 6), fresh.search(q, 6), strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.path == out and not building_path(out).exists() and not (out / "chunks").exists()
    assert not out.with_name("ix.old").exists()


def test_failed_build_leaves_old_index_and_discard_removes_it(dataset, tmp_path):
    out = tmp_path / "ix"
    build_index(dataset, FakeModel(seed=1), out, batch_size=8, progress=False)
    before = snapshot(out)
    with pytest.raises(RuntimeError, match="fake model crashed"):
        build_index(dataset, FakeModel(seed=0, fail_after=2), out, batch_size=8, workers=2, progress=False)
    assert snapshot(out) == before
    assert len(list((building_path(out) / "chunks").glob("chunk_*.npy"))) == 2
    # resuming with a different model would mix embeddings: refused
    with pytest.raises(IndexStoreError, match="different model"):
        build_index(dataset, FakeModel(seed=2), out, batch_size=8, resume=True, progress=False)
    assert discard_build(out) is True
    assert not building_path(out).exists() and discard_build(out) is False
    assert snapshot(out) == before
    # resume=False starts over even when a partial build is lying around
    with pytest.raises(RuntimeError):
        build_index(dataset, FakeModel(seed=0, fail_after=1), out, batch_size=8, progress=False)
    model = FakeModel(seed=0)
    build_index(dataset, model, out, batch_size=8, progress=False)
    assert model.batches == 5


def test_load_recovers_a_swap_that_died_between_renames(dataset, tmp_path):
    out = tmp_path / "ix"
    build_index(dataset, FakeModel(seed=1), out, progress=False)
    before = snapshot(out)
    os.rename(out, out.with_name("ix.old"))  # the state right after "rename out -> out.old"
    store = IndexStore.load(out)
    assert store.manifest["model"] == "fake@1" and snapshot(out) == before
    assert not out.with_name("ix.old").exists()
    # a later build over a stale .old (swap died before deleting it) still succeeds
    shutil.copytree(out, out.with_name("ix.old"))
    build_index(dataset, FakeModel(seed=0), out, progress=False)
    assert IndexStore.load(out).manifest["model"] == "fake@0" and not out.with_name("ix.old").exists()


def test_from_embeddings_save_roundtrip(tmp_path):
    rng, prng = np.random.default_rng(0), random.Random(0)
    x = rng.normal(size=(30, 8)).astype(np.float32)
    rows = [{"path": f"{i}.png", **default_schema().sample(prng)} for i in range(30)]
    store = IndexStore.from_embeddings(x, rows, model="m@1", dataset=tmp_path)
    store.save(tmp_path / "ix")
    loaded = IndexStore.load(tmp_path / "ix")
    np.testing.assert_allclose(loaded.embeddings(), x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-6)
    assert loaded.meta["path"].tolist() == [r["path"] for r in rows]
    assert [p.name for p in tmp_path.iterdir()] == ["ix"]  # no temp folders left
    with pytest.raises(IndexStoreError, match="dimension 3"):
        loaded.search(np.ones((1, 3), np.float32), 2)
