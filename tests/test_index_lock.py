"""Index builds lock their target: a second build into the same folder fails at once, naming it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_index import FakeModel, make_dataset

from core.cli import main
from core.index import IndexBusyError, IndexStore, build_index, build_lock, building_path, discard_build
from core.index.folder import lock_path

REPO = Path(__file__).resolve().parents[1]

# Another process holding the build lock through the shared helper, until its stdin closes.
HOLDER = """
import os, sys
from core.locks import exclusive_lock
with exclusive_lock(sys.argv[1], RuntimeError, holder=str(os.getpid())):
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    return make_dataset(tmp_path_factory.mktemp("lockdata"), n=8)


def busy_message(out: Path, pid: int) -> str:
    return re.escape(f"{out}: another build is writing this index (lock held by pid {pid})")


def test_second_build_fails_at_once_and_runs_after_the_holder_dies(dataset, tmp_path):
    out = tmp_path / "ix"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_path(out))], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        model = FakeModel()
        with pytest.raises(IndexBusyError, match=busy_message(out, holder.pid)):
            build_index(dataset, model, out, progress=False)
        assert model.batches == 0 and not out.exists() and not building_path(out).exists()
        building_path(out).mkdir()  # a discard must not pull a running build's chunks away either
        with pytest.raises(IndexBusyError, match=busy_message(out, holder.pid)):
            discard_build(out)
        assert building_path(out).is_dir()
    finally:
        holder.kill()  # dies without unlocking: the kernel releases the lock
        holder.wait()
    store = build_index(dataset, FakeModel(), out, progress=False)
    assert len(IndexStore.load(out)) == len(store) == 8 and not building_path(out).exists()


def test_cli_index_reports_a_busy_index_as_one_error_line(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("core.models.load_model", lambda name: FakeModel())
    out = tmp_path / "ix"
    args = ["index", "--data", str(dataset.root), "--out", str(out), "--split", "all"]
    with build_lock(out):  # a second descriptor of this process: flock refuses it like another process
        assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.fullmatch(f"error: {busy_message(out, os.getpid())}.*\n", err)
    assert main(args) == 0 and IndexStore.load(out).manifest["model"] == FakeModel().identity
