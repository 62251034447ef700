"""Crash-point enumeration, as SQLite's tests do (issue 18): index builds, model saves, job checkpoints.

Each operation first runs once with ``SCENESCOPE_CRASH_LOG`` to list its durable steps (every
rename, replace and fsync passes ``core.atomic.crash_point``), noting at each step a digest of
everything on disk under the operation's folder. Then, for each step in turn, a fresh child process
runs it with ``SCENESCOPE_CRASH_AT=<n>`` and SIGKILLs itself right before step n. After every kill
the last good state must load, with not one byte of it changed, and a resume must give exactly
what an uninterrupted run gives.

A kill leaves only what is on disk (the page cache survives a SIGKILL, so an fsync changes nothing
a kill can show), and loading and resuming read only that. So a step whose disk state equals an
earlier step's (an fsync right before the rename of the file it synced, the fsyncs of a finished
tree) would repeat that kill's test exactly: it is skipped, unless it is the first step of its kind
(every kind of step is still killed at least once). That halves the kills without losing a state.

The children are forked from a multiprocessing fork server that has imported torch and the
project once (a fresh interpreter per kill would cost seconds each); the server itself runs no
torch code, so forking it is safe.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from core.atomic import CRASH_AT_ENV, CRASH_LOG_ENV
from core.schema import default_schema

CHILD_TIMEOUT_S = 120
MICRO_CFG = {  # an open_clip config small enough to save and load in milliseconds
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 1, "layers": 1},
}
# Imported once by the fork server, lazy imports included (the first optimizer step imports
# torch._dynamo, the first Parquet write pyarrow: seconds each, in every child otherwise).
PRELOAD = ["torch", "torch._dynamo", "torch.optim", "numpy", "faiss", "PIL.Image", "PIL.PngImagePlugin", "pandas",
           "pyarrow.parquet", "safetensors.torch", "sklearn.decomposition", "core.index", "core.data.manifest",
           "core.train.checkpoint"]
STEP_KINDS = ("file.fsync", "file.replace", "dir.fsync", "swap.rename_old", "swap.rename_new")


# ---- what the children run (module level: the fork server imports this module by name) -------
class FakeModel:
    """Embeds a 4x4 thumbnail through a fixed random projection (the SceneModel duck type)."""

    embed_dim = 16

    def __init__(self, seed: int = 0) -> None:
        self.identity, self.name = f"fake@{seed}", "fake"
        self.proj = np.random.default_rng(seed).normal(size=(48, self.embed_dim)).astype(np.float32)

    def preprocess(self, im):
        arr = np.asarray(im.resize((4, 4)), dtype=np.float32) / 255.0
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()

    def embed_batch(self, pixels):
        v = pixels.reshape(len(pixels), -1).numpy() @ self.proj
        return v / np.linalg.norm(v, axis=1, keepdims=True)


class StateOnly:
    """What save_model_dir reads of a model: its state dict."""

    def __init__(self, sd: dict) -> None:
        self.sd = sd

    def state_dict(self) -> dict:
        return self.sd


def do_build(data: str, out: str, resume: bool = False):
    from core.data.manifest import read_manifest
    from core.index import build_index

    return build_index(read_manifest(data), FakeModel(0), out, batch_size=8, workers=0, progress=False,
                       resume=resume)


def do_save_model(weights: str, out: str) -> None:
    from safetensors.torch import load_file

    from core.train.checkpoint import save_model_dir

    save_model_dir(StateOnly(load_file(weights)), MICRO_CFG, out, card="# micro\n")


def train_toy(state: str, epochs: int = 3) -> dict[str, torch.Tensor]:
    """A deterministic little training run that checkpoints every epoch and resumes from the last."""
    from core.train.checkpoint import load_state, save_state

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    meta = load_state(state, model, opt, sched)
    start = meta["epoch"] if meta else 0
    x = torch.linspace(-1, 1, 32).reshape(8, 4)
    y = torch.stack([x.sum(1), x[:, 0] - x[:, 3]], 1)
    for epoch in range(start, epochs):
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        sched.step()
        save_state(state, model, opt, sched, epoch + 1, {"log": [epoch]})
    return {k: v.clone() for k, v in model.state_dict().items()}


def tree_digest(root: Path) -> str:
    """Every name under ``root`` with its kind and bytes: what a kill there leaves behind."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")) if root.exists() else []:
        h.update(str(p.relative_to(root)).encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest() if p.is_file() else b"dir" if p.is_dir() else b"other")
    return h.hexdigest()


def record_states(root: str, states: str) -> None:
    """Make every crash_point first append the digest of ``root`` to ``states`` (one line a step)."""
    import core.atomic

    original = core.atomic.crash_point

    def recording(name: str) -> None:
        with open(states, "a") as f:
            f.write(tree_digest(Path(root)) + "\n")
        original(name)

    # every module that imported the hook by name (core.atomic itself included, so later imports too)
    for mod in list(sys.modules.values()):
        if isinstance(mod, types.ModuleType) and mod.__dict__.get("crash_point") is original:
            mod.crash_point = recording


def child(fn_name: str, args: tuple, crash_at: str | None, log: str | None,
          states: tuple[str, str] | None = None) -> None:
    os.environ.pop(CRASH_AT_ENV, None)
    os.environ.pop(CRASH_LOG_ENV, None)
    if crash_at:
        os.environ[CRASH_AT_ENV] = crash_at
    if log:
        os.environ[CRASH_LOG_ENV] = log
    if states:
        record_states(*states)
    globals()[fn_name](*args)


# ---- the harness --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ctx():
    c = mp.get_context("forkserver")
    c.set_forkserver_preload(PRELOAD + [__name__])
    return c


def run_child(ctx, fn_name: str, args: tuple, crash_at: str | None = None, log: str | None = None,
              states: tuple[str, str] | None = None) -> int:
    p = ctx.Process(target=child, args=(fn_name, args, crash_at, log, states))
    # Streamlit's AppTest (earlier in the session) leaves the workbench script as __main__, and a
    # spawned child re-runs the parent's __main__ file: start the child from a bare __main__.
    real_main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        p.start()
    finally:
        sys.modules["__main__"] = real_main
    p.join(CHILD_TIMEOUT_S)
    if p.is_alive():
        p.kill()
        p.join()
        pytest.fail(f"{fn_name} hung at crash point {crash_at}")
    return p.exitcode


def enumerate_points(ctx, tmp: Path, fn_name: str, args: tuple, root: Path, suite: str) -> list[tuple[int, str]]:
    """(n, name) of the steps to kill at: one per disk state under ``root`` and each kind at least once."""
    log, states = tmp / "points.log", tmp / "states.log"
    assert run_child(ctx, fn_name, args, log=str(log), states=(str(root), str(states))) == 0
    lines = log.read_text().splitlines()
    points = [line.split(" ", 1)[1] for line in lines]
    assert [line.split(" ")[0] for line in lines] == [str(i + 1) for i in range(len(points))]
    digests = states.read_text().splitlines()
    assert len(digests) == len(points)
    chosen, seen_states, seen_kinds = [], set(), set()
    for n, (name, digest) in enumerate(zip(points, digests, strict=True), start=1):
        if digest not in seen_states or name not in seen_kinds:
            chosen.append((n, name))
        seen_states.add(digest)
        seen_kinds.add(name)
    assert {name for _, name in chosen} == set(points)
    record(suite, steps=len(points), disk_states=len(seen_states))
    return chosen


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def bytes_lost(before: dict[str, bytes], after: dict[str, bytes]) -> int:
    return sum(len(v) for k, v in before.items() if after.get(k) != v)


@pytest.fixture
def fast_tmp(tmp_path):
    """A tmp folder in RAM where there is one: a SIGKILL leaves the page cache as it was, so the
    states are the same, but each of the ~45 kills fsyncs a dozen times and disk fsyncs on a
    busy shared machine take up to a second each."""
    if not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="scenescope-crash-", dir="/dev/shm"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


REPORT: dict[str, dict[str, int]] = {}


def record(suite: str, **counts: int) -> None:
    row = REPORT.setdefault(suite, {})
    for k, v in counts.items():
        row[k] = row.get(k, 0) + v


@pytest.fixture(scope="module", autouse=True)
def print_report():
    yield
    for suite, row in REPORT.items():
        print(f"\ncrash points, {suite}: " + ", ".join(f"{k} {v}" for k, v in row.items()))


# ---- index builds -------------------------------------------------------------------------------
def _dataset(root: Path, n: int = 16) -> Path:
    from PIL import Image

    from core.data.manifest import write_manifest

    rng, prng = np.random.default_rng(0), random.Random(0)
    (root / "img").mkdir(parents=True)
    rows = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)).save(root / f"img/{i:02d}.png")
        rows.append({"path": f"img/{i:02d}.png", "clip_id": f"c{i // 4}", "frame_index": i % 4,
                     "split": "train", **default_schema().sample(prng)})
    write_manifest(root, rows)
    return root


def test_index_build_killed_at_every_step(ctx, fast_tmp):
    tmp_path = fast_tmp
    from core.data.manifest import read_manifest
    from core.index import IndexStore, build_index, building_path

    data = _dataset(tmp_path / "data")
    previous = tmp_path / "previous"
    build_index(read_manifest(data), FakeModel(1), previous, batch_size=8, progress=False)
    before = files(previous)
    ref = do_build(str(data), str(tmp_path / "reference"))  # the uninterrupted run

    scratch = tmp_path / "scratch"
    shutil.copytree(previous, scratch / "ix")
    points = enumerate_points(ctx, tmp_path, "do_build", (str(data), str(scratch / "ix")), scratch, "index build")
    assert set(STEP_KINDS) <= {name for _, name in points}, points
    for n, point in points:
        case = tmp_path / f"case{n:02d}"
        out = case / "ix"
        shutil.copytree(previous, out)
        assert run_child(ctx, "do_build", (str(data), str(out)), crash_at=str(n)) == -signal.SIGKILL, point
        store = IndexStore.load(out)  # runs recover(): the last good state loads
        if store.manifest["model"] == "fake@1":
            lost = bytes_lost(before, files(out))
            assert lost == 0, (n, point)
        else:  # killed after the swap: the new index is whole
            np.testing.assert_array_equal(store.embeddings(), ref.embeddings())
            lost = 0
        resumed = do_build(str(data), str(out), resume=True)
        np.testing.assert_array_equal(IndexStore.load(out).embeddings(), ref.embeddings())
        assert resumed.meta.equals(ref.meta), (n, point)
        assert not building_path(out).exists() and not (out / "chunks").exists()
        assert sorted(p.name for p in case.iterdir()) == ["ix", "ix.lock"], (n, point)
        record("index build", cases=1, loaded=1, resumed_equal=1, bytes_lost=lost)
        shutil.rmtree(case)


# ---- model saves --------------------------------------------------------------------------------
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_model_save_killed_at_every_step(ctx, fast_tmp):
    tmp_path = fast_tmp
    import open_clip
    from safetensors.torch import load_file, save_file

    from core.models import load_model
    from core.train.checkpoint import save_model_dir

    weights = {}
    for v in (1, 2):
        torch.manual_seed(v)
        clip = open_clip.CLIP(**MICRO_CFG)
        weights[v] = tmp_path / f"v{v}.safetensors"
        save_file({k: t.contiguous() for k, t in clip.state_dict().items()}, weights[v])
    previous, reference = tmp_path / "previous", tmp_path / "reference"
    do_save_model(str(weights[1]), str(previous))
    do_save_model(str(weights[2]), str(reference))  # the uninterrupted save
    before, ref = files(previous), files(reference)
    old_id, new_id = (load_model(f"file:{p}").identity.split("@")[1] for p in (previous, reference))

    shutil.copytree(previous, tmp_path / "scratch" / "m")
    points = enumerate_points(ctx, tmp_path, "do_save_model", (str(weights[2]), str(tmp_path / "scratch" / "m")),
                              tmp_path / "scratch", "model save")
    assert {"file.fsync", "dir.fsync", "swap.rename_old", "swap.rename_new"} <= {name for _, name in points}, points
    for n, point in points:
        case = tmp_path / f"case{n:02d}"
        out = case / "m"
        shutil.copytree(previous, out)
        assert run_child(ctx, "do_save_model", (str(weights[2]), str(out)), crash_at=str(n)) == -signal.SIGKILL
        model = load_model(f"file:{out}")  # runs recover() first
        ident = model.identity.split("@")[1]
        assert ident in (old_id, new_id), (n, point)
        lost = bytes_lost(before, files(out)) if ident == old_id else 0
        assert lost == 0 and (ident == old_id or files(out) == ref), (n, point)
        save_model_dir(StateOnly(load_file(weights[2])), MICRO_CFG, out, card="# micro\n")  # save again
        assert files(out) == ref and sorted(p.name for p in case.iterdir()) == ["m"], (n, point)
        record("model save", cases=1, loaded=1, resumed_equal=1, bytes_lost=lost)
        shutil.rmtree(case)


# ---- job checkpoints ----------------------------------------------------------------------------
def test_training_checkpoint_killed_at_every_step(ctx, fast_tmp):
    tmp_path = fast_tmp
    from core.train.checkpoint import load_state

    ref = train_toy(str(tmp_path / "reference"))
    points = enumerate_points(ctx, tmp_path, "train_toy", (str(tmp_path / "scratch" / "state"),),
                              tmp_path / "scratch", "job checkpoint")
    assert {"file.fsync", "file.replace", "dir.fsync"} <= {name for _, name in points}, points
    epochs_seen = set()
    for n, point in points:
        state = tmp_path / f"case{n:02d}"
        assert run_child(ctx, "train_toy", (str(state),), crash_at=str(n)) == -signal.SIGKILL, point
        probe = torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(probe.parameters(), lr=0.1, momentum=0.9)
        meta = load_state(state, probe, opt, torch.optim.lr_scheduler.StepLR(opt, step_size=1))
        epochs_seen.add(meta["epoch"] if meta else 0)
        if meta:
            assert json.loads((state / "state.json").read_text())["log"] == [meta["epoch"] - 1]
        resumed = train_toy(str(state))
        for k in ref:
            assert torch.equal(resumed[k], ref[k]), (n, point, k)
        record("job checkpoint", cases=1, loaded=1, resumed_equal=1, bytes_lost=0)
        shutil.rmtree(state)
    assert epochs_seen == {0, 1, 2, 3}  # before the first checkpoint, between each, after the last
