"""The app layer's ``scenescope`` commands, found by ``core.cli`` through the ``scenescope.commands``
entry-point group (pyproject.toml), so that core never imports app. Light to import: gradio loads
only when the command runs."""

from __future__ import annotations

import argparse


def add_demo_ui(sub: argparse._SubParsersAction) -> None:
    """``scenescope demo-ui``: the Gradio demo with its API."""
    s = sub.add_parser("demo-ui", help="start the Gradio demo (with its API)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7860)
    s.set_defaults(fn=run_demo_ui)


def run_demo_ui(a: argparse.Namespace) -> None:
    from app.demo import launch

    launch(host=a.host, port=a.port)
