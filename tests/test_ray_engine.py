"""Issue 23: the Ray engine of `scenescope index` against the default engine, on one local Ray.

The reference is the default (single-process) engine on the same frames and model. Ray starts
once for the module (`ray.init(num_cpus=2)`: several seconds) and the two Ray runs share it: an
interrupted build (it stops after two shards are written) and its resumption, which must embed only
the missing shards and end equal to the default engine's index.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import ray
from toy import write_toy_dataset, write_toy_model

from core.data import read_manifest
from core.index import IndexStore, IndexStoreError, build_index
from core.index import ray_engine as re_
from core.models import load_model

FRAMES, SHARD_ROWS = 20, 6  # four shards, the last one short


class Stop(Exception):
    """The build's driver stopping half-way (a crash, Ctrl-C, a lost node)."""


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def toy(tmp_path_factory, one_torch_thread):
    root = tmp_path_factory.mktemp("ray")
    data = read_manifest(write_toy_dataset(root / "data", n=FRAMES))
    name = f"file:{write_toy_model(root / 'model')}"
    return root, data, name, load_model(name)


def test_interrupted_ray_build_resumes_by_shard_and_equals_the_default_engine(toy, local_ray, monkeypatch):
    root, data, name, model = toy
    out = root / "ray-index"
    real_write, written = re_._write_shard, []

    def stop_after_two(folder, i, *args):
        if len(written) == 2:
            raise Stop  # the driver dies here: later shards are never written
        real_write(folder, i, *args)
        written.append(i)

    monkeypatch.setattr(re_, "_write_shard", stop_after_two)
    with pytest.raises(Stop):
        re_.build_index_ray(data, model, name, out, split="all", shard_rows=SHARD_ROWS, batch_size=4,
                            workers=2, progress=False)
    folder = re_.shards_path(out)
    kept = {i: re_.shard_file(folder, i).stat().st_mtime_ns for i in written}
    assert len(kept) == 2 and not out.exists()

    monkeypatch.setattr(re_, "_write_shard", lambda folder, i, *a: (written.append(i), real_write(folder, i, *a)))
    store = re_.build_index_ray(data, model, name, out, split="all", shard_rows=SHARD_ROWS, batch_size=4,
                                workers=1, resume=True, progress=False)
    assert sorted(written[2:]) == sorted(set(range(4)) - set(kept))  # only the missing shards were embedded
    assert not folder.exists()

    ref = build_index(data, model, root / "default-index", split="all", progress=False, workers=0)
    for s in (store, IndexStore.load(out)):
        np.testing.assert_allclose(np.asarray(s.embeddings()), ref.embeddings(), rtol=0, atol=1e-6)
        assert s.meta.equals(ref.meta)  # the same frame table, same order and types
        assert s.manifest["model"] == ref.manifest["model"] and s.manifest["count"] == FRAMES


def test_ivf_factory_builds_on_disk_from_the_shards(toy):
    """The last step without Ray: shards as the engine writes them -> the on-disk builder."""
    root, data, name, model = toy
    ref = build_index(data, model, root / "default-flat", split="all", progress=False, workers=0)
    out = root / "ivf-from-shards"
    folder = re_.shards_path(out)
    folder.mkdir()
    for i, s in enumerate(range(0, FRAMES, SHARD_ROWS)):
        e = min(s + SHARD_ROWS, FRAMES)
        rows = np.arange(s, e)[::-1]  # batches may come back in any order
        re_._write_shard(folder, i, ref.meta.iloc[s:e], [(rows, ref.embeddings()[rows])], s)
    store = re_._finish(folder, 4, out, model, "IVF2,Flat", data, "all", {})
    assert store.manifest["ondisk"]["lists"]
    np.testing.assert_allclose(np.asarray(store.embeddings()), ref.embeddings(), rtol=0, atol=1e-6)  # re-normalised
    assert store.meta.equals(ref.meta)
    _, ids = store.search(ref.embeddings()[:3], 1)  # re-ranked exactly: each frame finds itself
    assert ids[:, 0].tolist() == [0, 1, 2]


def test_without_ray_the_engine_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(IndexStoreError, match=r"pip install 'scenescope\[ray\]'"):
        re_.import_ray()


def test_cli_without_ray_fails_with_one_line(tmp_path, monkeypatch, capsys):
    from core.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["index", "--data", str(tmp_path), "--out", str(tmp_path / "i"), "--engine", "ray"]) != 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "scenescope[ray]" in lines[0] and "requirements-ray.txt" in lines[0]
