"""Shared fixtures: one small synthetic dataset and its index for the whole test session."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
LANELINES = FIXTURES / "udacity-lanelines"
CLIP = LANELINES / "test_videos" / "solidWhiteRight.mp4"
BUNDLED_CONFIG = ROOT / "assets" / "scenescope-tiny" / "open_clip_config.json"


@dataclass(frozen=True)
class SmallIndex:
    data: Path  # synthetic dataset root (manifest + images)
    index: Path  # index folder built from it on all splits
    model: str  # registry name of the model that built it


def _model_name(tmp: Path) -> str:
    """The bundled model when it has been trained, else random weights saved as a file: model.

    Random weights keep the tests independent of the (long) bundled-model training; the UI does
    not care how good the votes are, only that they are drawn.
    """
    if BUNDLED_CONFIG.is_file():
        return "scenescope-tiny"
    import open_clip

    import core.models  # noqa: F401  (registers the scenescope-tiny architecture with open_clip)
    from core.train import save_model_dir

    cfg = json.loads((ROOT / "core" / "models" / "configs" / "scenescope-tiny.json").read_text())
    out = save_model_dir(open_clip.create_model("scenescope-tiny"), cfg, tmp / "random-model")
    return f"file:{out}"


@pytest.fixture(scope="session")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> SmallIndex:
    """120 scenes + 3 clips rendered with a fixed seed, indexed on every split."""
    from core.data import read_manifest
    from core.index import build_index
    from core.models import load_model
    from core.synth import write_synth_dataset

    tmp = tmp_path_factory.mktemp("scenescope-app")
    data = write_synth_dataset(tmp / "data", scenes=120, clips=3, seed=5, progress=False)
    name = _model_name(tmp)
    build_index(read_manifest(data), load_model(name), tmp / "index", split="all", progress=False)
    return SmallIndex(Path(data), tmp / "index", name)


@pytest.fixture(scope="session")
def mapped_index(small_index: SmallIndex) -> SmallIndex:
    """The small index with its UMAP layout cached beside it (computed once per session: the
    first UMAP fit in a process spends ~15 s compiling, so pages and the browser reuse this)."""
    from core.index import IndexStore
    from core.maps import umap_projection

    umap_projection(IndexStore.load(small_index.index))
    return small_index


@pytest.fixture(scope="session")
def index_env(small_index: SmallIndex) -> SmallIndex:
    """$SCENESCOPE_INDEX pointing at the small index for the session (the app's default index)."""
    old = os.environ.get("SCENESCOPE_INDEX")
    os.environ["SCENESCOPE_INDEX"] = str(small_index.index)
    yield small_index
    if old is None:
        os.environ.pop("SCENESCOPE_INDEX", None)
    else:
        os.environ["SCENESCOPE_INDEX"] = old


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def demo_url(small_index: SmallIndex) -> str:
    """The Gradio demo serving the small index on a free local port, for the whole session."""
    import urllib.request

    from app import demo

    port = free_port()
    blocks = demo.launch(host="127.0.0.1", port=port, index=small_index.index, block=False)
    url = f"http://127.0.0.1:{port}/"
    urllib.request.urlopen(url, timeout=30).close()
    yield url
    blocks.close()


def write_finished_job(ws: Path, store: object, layout: object = None) -> str:
    """A finished fine-tuning job as core.jobs leaves it (spec, status, log, comparison, index).

    ``layout`` (N, 2) is the before-map (default: random points); the after-map is it turned and
    jittered, as a second UMAP run would come out.
    """
    import shutil

    import numpy as np

    from app.handlers import evaluate_index_split
    from core.compare import compare_models

    job_id = "ft-20260101-000000-test"
    jdir = ws / "jobs" / job_id
    (jdir / "state").mkdir(parents=True)
    before = evaluate_index_split(store, "test", k=1)
    after = evaluate_index_split(store, "test", k=5)
    rng = np.random.default_rng(0)
    xy = np.asarray(layout, dtype=float) if layout is not None else rng.normal(size=(len(store), 2))
    turned = xy @ [[0, 1], [-1, 0]] + rng.normal(scale=0.05 * xy.std(), size=xy.shape)
    cmp = compare_models(before, after, store.schema, map_before=xy, map_after=turned,
                         labels={"before": "base", "after": "tuned", "split": "test"})
    (jdir / "spec.json").write_text(json.dumps({"data_dir": str(store.data_root), "base_model": "base"}))
    (jdir / "status.json").write_text(json.dumps({"state": "finished", "phase": "done", "epoch": 2,
                                                  "epochs": 2, "loss": 0.5, "val_f1": 0.6, "updated": 0}))
    (jdir / "state" / "state.json").write_text(json.dumps({"log": [
        {"epoch": 1, "loss": 0.9, "val_f1": 0.4, "seconds": 1.0}, {"epoch": 2, "loss": 0.5, "val_f1": 0.6,
                                                                   "seconds": 1.0}]}))
    (jdir / "comparison.json").write_text(json.dumps(cmp.to_dict()))
    shutil.copytree(store.path, jdir / "index")  # the after-index: the maps are coloured from it
    return job_id


@pytest.fixture(scope="module")
def one_torch_thread():
    """Float reductions depend on the thread count; equality checks need the same count in every
    run, whatever earlier test modules left behind."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
