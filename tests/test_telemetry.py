"""Neither server requests anything off the machine (issue 18): `scenescope workbench` and
`scenescope demo-ui`, started from a folder outside the repository with a clean environment, are
watched from inside by a ``sitecustomize`` shim on PYTHONPATH. It notes every name resolved
(``socket.getaddrinfo``) and every address connected or sent to (``socket.socket.connect``,
``connect_ex``, ``sendto``) by every Python process of the server, before the call goes on. After
start-up and a few requests (the workbench runs its start page for a websocket session as a
browser would, the demo answers a ``/classify``), each noted name and address must be the
machine's own (loopback or a local socket). Usage statistics, update checks, external-IP lookups,
font or model downloads would all show up as another address or name.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import SmallIndex, free_port
from servers import START_S, clean_env, running

SCENESCOPE = Path(sys.executable).with_name("scenescope")  # the console script `pip install -e .` made
LOG_ENV = "SCENESCOPE_TEST_NET_LOG"

SHIM = '''
"""Test shim: note every name lookup and outgoing address of this process in $__ENV__."""
import json, os, socket

_log = os.environ.get("__ENV__")


def _note(kind, what):
    with open(_log, "a") as f:
        f.write(json.dumps([os.getpid(), kind, what]) + "\\n")


def _wrap(owner, name, kind, pick):
    real = getattr(owner, name)

    def noted(*args, **kwargs):
        try:
            what = pick(args, kwargs)
        except Exception:  # an unexpected call shape is noted as unknown, which the test flags
            what = "?"
        _note(kind, what)
        return real(*args, **kwargs)

    setattr(owner, name, noted)


def _host(h):
    return h.decode(errors="replace") if isinstance(h, bytes) else h


def _address(a):
    """An IP socket's address as [host, port, ...]; a Unix socket's path as a string."""
    return [_host(a[0]), *a[1:]] if isinstance(a, tuple) else str(a)


if _log:
    _note("start", None)
    _wrap(socket, "getaddrinfo", "resolve", lambda a, k: _host(a[0] if a else k["host"]))
    for _name in ("connect", "connect_ex"):  # args[0] is the socket itself
        _wrap(socket.socket, _name, "connect", lambda a, k: _address(a[1] if len(a) > 1 else k["address"]))
    _wrap(socket.socket, "sendto", "send", lambda a, k: _address(a[-1]))
'''.replace("__ENV__", LOG_ENV)

LOCAL_NAMES = {None, "", "localhost", "ip6-localhost"}


def _is_local(kind: str, what: str | list | None) -> bool:
    """A loopback name or address, or a local (Unix) socket path."""
    if kind == "resolve":
        return what in LOCAL_NAMES or _loopback_ip(what)
    if isinstance(what, str):  # AF_UNIX path ("?" is an address the shim could not read)
        return what != "?"
    return what[0] in LOCAL_NAMES or _loopback_ip(what[0])


def _loopback_ip(host: str | None) -> bool:
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@contextmanager
def _watched(argv: list[str], cwd: Path, ready_url: str, **env: str) -> Iterator[Path]:
    """Start argv from cwd under the shim, wait until ready_url answers, always stop it; yields the log."""
    shim, log = cwd / "shim", cwd / "net.log"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SHIM)
    with running(argv, cwd, clean_env(cwd, PYTHONPATH=str(shim), **{LOG_ENV: str(log)}, **env), ready_url):
        yield log
        time.sleep(1.0)  # anything sent soon after start-up (a usage ping, an update check)


def _assert_only_local(log: Path) -> None:
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(kind == "start" for _, kind, _ in rows), "the shim did not load in the server"
    outside = sorted({(kind, json.dumps(what)) for _, kind, what in rows
                      if kind != "start" and not _is_local(kind, what)})
    assert outside == [], f"requests off the machine: {outside}"


def _run_page(port: int) -> list[str]:
    """Open a session on Streamlit's websocket as the browser does and run the start page once
    (without a session the page script never runs); returns the kinds of its elements."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    deadline = time.monotonic() + START_S
    elements = []
    with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], open_timeout=30) as ws:
        rerun = BackMsg()
        rerun.rerun_script.query_string = ""
        ws.send(rerun.SerializeToString())
        while True:
            msg = ForwardMsg()
            msg.ParseFromString(ws.recv(timeout=max(1.0, deadline - time.monotonic())))
            kind = msg.WhichOneof("type")
            if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                elements.append(msg.delta.new_element.WhichOneof("type"))
            if kind == "script_finished":
                assert msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY
                return elements


def test_workbench_requests_nothing_off_the_machine(tmp_path: Path, small_index: SmallIndex) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with _watched([str(SCENESCOPE), "workbench", "--port", str(port)], tmp_path, f"{url}/_stcore/health",
                  SCENESCOPE_INDEX=str(small_index.index)) as log:
        for path in ("/", "/_stcore/host-config"):
            with urllib.request.urlopen(url + path, timeout=10) as r:
                assert r.status == 200
        elements = _run_page(port)  # the start page loads the model and the index
        assert elements and "exception" not in elements, elements
    _assert_only_local(log)


def test_demo_requests_nothing_off_the_machine(tmp_path: Path, small_index: SmallIndex) -> None:
    from gradio_client import Client, handle_file

    from core.index import IndexStore

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    image = IndexStore.load(small_index.index).abspath(0)
    with _watched([str(SCENESCOPE), "demo-ui", "--port", str(port)], tmp_path, f"{url}/config",
                  SCENESCOPE_INDEX=str(small_index.index)) as log:
        with urllib.request.urlopen(url + "/", timeout=10) as r:
            assert r.status == 200
        client = Client(url + "/", verbose=False, download_files=False, analytics_enabled=False)
        try:
            result = client.predict(handle_file(str(image)), 3, api_name="/classify")
        finally:
            client.close()
        assert result["kind"] == "image" and len(result["neighbors"]) == 3
    _assert_only_local(log)


def test_the_shim_sees_a_request_off_the_machine(tmp_path: Path) -> None:
    """The check itself: a process that looks up and connects to an outside address is caught
    (the lookup fails or the connection is refused here; it is noted before either)."""
    (tmp_path / "shim").mkdir()
    (tmp_path / "shim" / "sitecustomize.py").write_text(SHIM)
    log = tmp_path / "net.log"
    code = ("import socket\n"
            "for f in (lambda: socket.getaddrinfo('example.com', 443),\n"
            "          lambda: socket.create_connection(('192.0.2.1', 80), timeout=0.2)):\n"
            "    try: f()\n"
            "    except OSError: pass\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "shim"), LOG_ENV: str(log)}
    subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, check=True, timeout=60)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    outside = {(kind, json.dumps(what)) for _, kind, what in rows if kind != "start" and not _is_local(kind, what)}
    assert ("resolve", '"example.com"') in outside
    assert ("connect", '["192.0.2.1", 80]') in outside
    assert all(_is_local(kind, what) for _, kind, what in rows if what in ("localhost", ["127.0.0.1", 80]))
