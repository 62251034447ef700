"""Fault injection (issue 18): disk full, read-only output folder, an unreadable frame mid-build.

Each fault must give one clear line naming what could not be written or read, and leave the
previous index or model byte-identical and loadable; after the fault is cleared a resume equals
an uninterrupted run.

Disk full uses a real small (1-16 MiB) tmpfs mount when the tests run as root (as here and in the
container); elsewhere (CI runners without mount rights) ENOSPC is injected at os.fsync, where a
full disk reports it on filesystems with delayed allocation. Read-only uses a tmpfs remounted
read-only as root (root ignores permission bits), else chmod 0555.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from test_hardening_crash import MICRO_CFG, FakeModel, StateOnly, _dataset, files

from core.data.manifest import read_manifest
from core.index import IndexStore, IndexStoreError, build_index, building_path
from core.train.checkpoint import save_model_dir

IS_ROOT = os.geteuid() == 0


def _mount(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if not IS_ROOT:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


@contextlib.contextmanager
def small_disk(path: Path, size: str = "1m") -> Iterator[bool]:
    """``path`` as a small tmpfs if mounting is allowed; yields whether it is one."""
    mounted = _mount(path, size)
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, leave: int) -> Path:
    """Fill ``path``'s filesystem until ``leave`` bytes are free."""
    st = os.statvfs(path)
    filler = path / "filler"
    filler.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


@contextlib.contextmanager
def disk_full(folder: Path, monkeypatch, mounted: bool) -> Iterator[None]:
    if mounted:
        filler = fill(folder, leave=4096)
        yield
        filler.unlink()
        return

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", no_space)
        yield


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    if IS_ROOT and subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True).returncode == 0:
        yield
        subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True)
        return
    mode = folder.stat().st_mode
    folder.chmod(0o555)
    try:
        yield
    finally:
        folder.chmod(mode)


def one_line(e: BaseException, *must: str) -> str:
    text = str(e)
    assert "\n" not in text.strip() and len(text) < 600, text
    for m in must:
        assert m in text, (m, text)
    return text


def test_disk_full_during_index_build_keeps_the_previous_index(tmp_path, monkeypatch):
    data = _dataset(tmp_path / "data")
    ds = read_manifest(data)
    fresh = build_index(ds, FakeModel(0), tmp_path / "fresh", batch_size=8, progress=False)
    with small_disk(tmp_path / "disk") as mounted:
        out = tmp_path / "disk" / "ix"
        build_index(ds, FakeModel(1), out, batch_size=8, progress=False)
        before = files(out)
        with disk_full(tmp_path / "disk", monkeypatch, mounted), pytest.raises(OSError) as e:
            build_index(ds, FakeModel(0), out, batch_size=8, progress=False)
        one_line(e.value, "No space left on device", str(tmp_path / "disk"))
        assert files(out) == before and IndexStore.load(out).manifest["model"] == "fake@1"
        resumed = build_index(ds, FakeModel(0), out, batch_size=8, progress=False, resume=True)
        np.testing.assert_array_equal(resumed.embeddings(), fresh.embeddings())
        assert IndexStore.load(out).manifest["model"] == "fake@0" and not building_path(out).exists()


def _micro_state(seed: int) -> StateOnly:
    import open_clip

    torch.manual_seed(seed)
    return StateOnly(open_clip.CLIP(**MICRO_CFG).state_dict())


def test_disk_full_during_model_save_keeps_the_previous_model(tmp_path, monkeypatch):
    from core.models import load_model

    with small_disk(tmp_path / "disk", "16m") as mounted:  # room for one 3 MB model, not two
        out = tmp_path / "disk" / "m"
        save_model_dir(_micro_state(1), MICRO_CFG, out)
        before, ident = files(out), load_model(f"file:{out}").identity
        with disk_full(tmp_path / "disk", monkeypatch, mounted), pytest.raises(OSError) as e:
            save_model_dir(_micro_state(2), MICRO_CFG, out)
        one_line(e.value, "No space left on device", str(out))
        assert files(out) == before and load_model(f"file:{out}").identity == ident
        assert sorted(p.name for p in out.parent.iterdir()) == ["m"]  # no partial folder left


def test_read_only_output_folder(tmp_path):
    from core.models import load_model

    data = _dataset(tmp_path / "data")
    ds = read_manifest(data)
    folder = tmp_path / "ro"
    mounted = _mount(folder, "4m")
    try:
        build_index(ds, FakeModel(1), folder / "ix", batch_size=8, progress=False)
        save_model_dir(_micro_state(1), MICRO_CFG, folder / "m")
        before_ix, before_m = files(folder / "ix"), files(folder / "m")
        with read_only(folder):
            with pytest.raises(OSError) as e:
                build_index(ds, FakeModel(0), folder / "ix", batch_size=8, progress=False)
            one_line(e.value, str(folder / "ix"))
            with pytest.raises(OSError) as e:
                save_model_dir(_micro_state(2), MICRO_CFG, folder / "m")
            one_line(e.value, str(folder / "m"))
            assert files(folder / "ix") == before_ix and files(folder / "m") == before_m
            assert IndexStore.load(folder / "ix").manifest["model"] == "fake@1"
            load_model(f"file:{folder / 'm'}")
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_frame_mid_build(tmp_path, damage):
    data = _dataset(tmp_path / "data")
    ds = read_manifest(data)
    fresh = build_index(ds, FakeModel(0), tmp_path / "fresh", batch_size=8, progress=False)
    out = tmp_path / "ix"
    build_index(ds, FakeModel(1), out, batch_size=8, progress=False)
    before = files(out)
    frame = data / "img" / "11.png"  # in the second of two chunks
    good = frame.read_bytes()
    frame.write_bytes(b"not an image" if damage == "garbage" else good[: len(good) // 2])
    with pytest.raises(IndexStoreError) as e:
        build_index(ds, FakeModel(0), out, batch_size=8, workers=2, progress=False)
    one_line(e.value, "img/11.png")
    assert files(out) == before and IndexStore.load(out).manifest["model"] == "fake@1"
    assert len(list((building_path(out) / "chunks").glob("chunk_*.npy"))) == 1  # the first chunk is kept
    frame.write_bytes(good)
    build_index(ds, FakeModel(0), out, batch_size=8, progress=False, resume=True)
    np.testing.assert_array_equal(IndexStore.load(out).embeddings(), fresh.embeddings())
    shutil.rmtree(tmp_path / "fresh")
