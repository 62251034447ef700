"""Starting a server as a user would, from another folder, for the server and telemetry tests."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_S = 120  # model and index load on a busy 2-core machine; a hang fails instead of blocking


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any STREAMLIT_*/GRADIO_* setting (what a user's shell
    has), and HOME in ``home``, so no ~/.streamlit/config.toml helps either."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMLIT_", "GRADIO_"))}
    env.update(HOME=str(home), **extra)
    return env


def output(cwd: Path) -> str:
    return (cwd / "server.log").read_text(errors="replace")


@contextmanager
def running(argv: list[str], cwd: Path, env: dict[str, str], ready_url: str) -> Iterator[subprocess.Popen]:
    """Start argv in cwd (output to cwd/server.log), wait until ready_url answers 200, always stop it."""
    log = open(cwd / "server.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_S
        while True:
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{argv[:3]} did not answer {ready_url}:\n{output(cwd)[-3000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()
