"""The app layer's ``scenescope`` commands, found by ``core.cli`` through the ``scenescope.commands``
entry-point group (pyproject.toml), so that core never imports app. Light to import: each front end
(gradio, streamlit) loads only when its command runs."""

from __future__ import annotations

import argparse
from pathlib import Path

WORKBENCH = Path(__file__).resolve().parent / "workbench.py"


def add_demo_ui(sub: argparse._SubParsersAction) -> None:
    """``scenescope demo-ui``: the Gradio demo with its API."""
    s = sub.add_parser("demo-ui", help="start the Gradio demo (with its API)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7860)
    s.set_defaults(fn=run_demo_ui)


def run_demo_ui(a: argparse.Namespace) -> None:
    from app.demo import launch

    launch(host=a.host, port=a.port)


def add_workbench(sub: argparse._SubParsersAction) -> None:
    """``scenescope workbench``: the Streamlit workbench, on loopback and without usage statistics."""
    s = sub.add_parser("workbench", help="start the Streamlit workbench (127.0.0.1, no usage statistics)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8501)
    s.set_defaults(fn=run_workbench)


def workbench_argv(host: str, port: int) -> list[str]:
    """``streamlit run`` arguments for the workbench. Command-line flags outrank every config file
    and STREAMLIT_* variable, so these hold whatever folder it is started from (`streamlit run` alone
    reads .streamlit/config.toml from the working directory; app/.streamlit/config.toml covers that
    way too). A set address and headless mode also keep Streamlit from looking up an external IP."""
    return ["run", str(WORKBENCH), "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false"]


def warm_imports() -> None:
    """Import what the first page's script run would otherwise import (pandas, numpy, faiss and core
    through app.handlers, the demo renderer's progress reader, the schema, the navigation's engine
    checks), before the server answers: ~1 CPU s that the first page no longer waits for after the
    browser has connected (RESULTS 15f). Nothing that needs Streamlit's runtime, and no torch."""
    from app import handlers, navigation
    from core.schema import default_schema
    from core.synth import pending  # noqa: F401 (the sidebar's frames_rendering imports it)

    handlers.list_indexes()
    navigation.sections()
    default_schema()


def run_workbench(a: argparse.Namespace) -> None:
    from streamlit.web import cli as streamlit_cli

    warm_imports()
    # In this process (not a child): stopping the command stops the server. standalone_mode=False
    # lets a bad flag reach core.cli's one-line error instead of click's own exit.
    streamlit_cli.main.main(args=workbench_argv(a.host, a.port), prog_name="streamlit", standalone_mode=False)
