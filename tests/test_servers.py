"""Both servers, started the documented ways from a folder outside the repository, listen on
127.0.0.1 only (checked on the process's own sockets with psutil) and announce no usage statistics
or outside address; the demo serves the files it shows, not the rest of the dataset folder."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from conftest import ROOT, SmallIndex, free_port
from servers import clean_env, output, running

SCENESCOPE = Path(sys.executable).with_name("scenescope")  # the console script `pip install -e .` made


def _listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on."""
    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN}


def _assert_streamlit_local(proc: subprocess.Popen, port: int, cwd: Path) -> None:
    assert _listening(proc.pid) == {("127.0.0.1", port)}
    out = output(cwd)
    assert f"URL: http://127.0.0.1:{port}" in out
    # gatherUsageStats on would print the first, an unset address makes Streamlit list (and look up
    # over the network) the others.
    for banned in ("Collecting usage statistics", "External URL", "Network URL"):
        assert banned not in out


def test_workbench_command_defaults_to_loopback() -> None:
    from app.commands import run_workbench, workbench_argv
    from core.cli import build_parser

    a = build_parser().parse_args(["workbench"])
    assert (a.fn, a.host, a.port) == (run_workbench, "127.0.0.1", 8501)
    argv = workbench_argv("127.0.0.1", 8501)
    flags = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert flags == {"--server.address": "127.0.0.1", "--server.port": "8501",
                     "--server.headless": "true", "--browser.gatherUsageStats": "false"}


def test_workbench_command_listens_on_loopback_only(tmp_path: Path) -> None:
    port = free_port()
    with running([str(SCENESCOPE), "workbench", "--port", str(port)], tmp_path, clean_env(tmp_path),
                 f"http://127.0.0.1:{port}/_stcore/health") as proc:
        _assert_streamlit_local(proc, port, tmp_path)


def test_streamlit_run_from_another_folder_listens_on_loopback_only(tmp_path: Path) -> None:
    """Plain `streamlit run <repo>/app/workbench.py` from elsewhere, no address flag: the repository's
    .streamlit/config.toml is not read from there, app/.streamlit/config.toml is."""
    port = free_port()
    argv = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "workbench.py"), "--server.port", str(port)]
    with running(argv, tmp_path, clean_env(tmp_path), f"http://127.0.0.1:{port}/_stcore/health") as proc:
        _assert_streamlit_local(proc, port, tmp_path)


def test_demo_ui_listens_on_loopback_and_serves_only_what_it_shows(tmp_path: Path, small_index: SmallIndex) -> None:
    from gradio_client import Client, handle_file

    from app import handlers
    from core.data import read_manifest
    from core.index import IndexStore

    port = free_port()
    env = clean_env(tmp_path, SCENESCOPE_INDEX=str(small_index.index))
    url = f"http://127.0.0.1:{port}"
    with running([str(SCENESCOPE), "demo-ui", "--port", str(port)], tmp_path, env, f"{url}/config") as proc:
        assert _listening(proc.pid) == {("127.0.0.1", port)}
        manifest = small_index.data / "manifest.jsonl"
        assert manifest.is_file()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/gradio_api/file={manifest}", timeout=10)
        assert 400 <= refused.value.code < 500
        # ...as is a dataset image it does not show, while the example files it offers are served
        examples = handlers.example_files(IndexStore.load(small_index.index), small_index.index)
        assert examples
        ds = read_manifest(small_index.data)
        hidden = next(p for p in map(ds.abspath, ds.frames["path"]) if p not in examples)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/gradio_api/file={hidden}", timeout=10)
        assert 400 <= refused.value.code < 500
        for p in examples:
            with urllib.request.urlopen(f"{url}/gradio_api/file={p}", timeout=10) as r:
                assert r.status == 200 and r.read(1)
        # ...and the demo still works: a classify with its neighbours.
        client = Client(url + "/", verbose=False, download_files=False)
        try:
            result = client.predict(handle_file(str(hidden)), 3, api_name="/classify")
        finally:
            client.close()
        assert result["kind"] == "image" and len(result["neighbors"]) == 3
