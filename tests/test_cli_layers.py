"""The command line starts light and core stays below app: building the parser (``--help``) and
``scenescope models`` load no torch, app's commands arrive through an entry point, core never
imports app, and the CLI's modules sit on no import cycle."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"
HEAVY = ("torch", "torchvision", "open_clip", "faiss", "gradio", "streamlit", "app.demo", "pandas")


def _run(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints a JSON object as its last line."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_building_the_parser_and_every_help_loads_nothing_heavy():
    code = f"""
import contextlib, io, json, sys
import core.cli
def heavy(also=()):
    return [m for m in {HEAVY!r} + tuple(also) if m in sys.modules]
parser = core.cli.build_parser()
names = list(parser._subparsers._group_actions[0].choices)
with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
    core.cli.main(["--help"])
top = heavy(["numpy"])
for name in names:
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
        core.cli.main([name, "--help"])
print(json.dumps({{"names": names, "top": top, "heavy": heavy()}}))
"""
    got = _run(code)
    assert {"synth", "index", "train-default", "finetune", "demo-ui"} <= set(got["names"])
    assert got["top"] == []  # `scenescope --help` does not even load numpy
    assert got["heavy"] == []


def test_vote_space_choices_are_checked_when_parsed():
    from core.cli import build_parser
    from core.predict import VOTE_SPACES

    for space in VOTE_SPACES:
        assert build_parser().parse_args(["classify", "x.jpg", "--index", "i", "--vote-space", space]).vote_space == space
    with pytest.raises(SystemExit):
        build_parser().parse_args(["classify", "x.jpg", "--index", "i", "--vote-space", "pixels"])


def test_models_lists_open_clips_tags_without_torch():
    got = _run("import contextlib, io, json, sys\nimport core.cli\nbuf = io.StringIO()\n"
               "with contextlib.redirect_stdout(buf):\n    core.cli.main(['models'])\n"
               f"print(json.dumps({{'lines': buf.getvalue().splitlines(), "
               f"'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))")
    assert got["heavy"] == []
    import open_clip  # the reference: open_clip's own listing, with torch

    from core.models.registry import BUNDLED

    assert got["lines"] == [*BUNDLED, "file:<path>", *(f"openclip:{a}/{t}" for a, t in open_clip.list_pretrained())]


def test_the_light_tag_table_is_open_clips_and_leaves_no_trace():
    import open_clip

    from core.model_names import _pretrained_without_torch

    before = set(sys.modules)
    tags = _pretrained_without_torch()
    assert tags == open_clip.list_pretrained() and len(tags) > 50
    assert not [m for m in set(sys.modules) - before if "open_clip_table" in m]
    assert sys.modules.get("huggingface_hub", "absent") is not None  # no stand-in None left behind


def test_demo_ui_is_an_app_command_found_by_entry_point(capsys):
    from app.commands import run_demo_ui
    from core.cli import PLUGIN_GROUP, build_parser, main

    declared = {ep.name: ep.value for ep in entry_points(group=PLUGIN_GROUP)}
    assert declared["demo-ui"] == "app.commands:add_demo_ui"  # pyproject.toml, as installed
    a = build_parser().parse_args(["demo-ui", "--port", "7999"])
    assert (a.fn, a.host, a.port) == (run_demo_ui, "127.0.0.1", 7999)
    with pytest.raises(SystemExit) as e:
        main(["demo-ui", "--help"])
    assert e.value.code == 0 and "--port" in capsys.readouterr().out


def test_a_broken_plugin_is_reported_and_left_out(monkeypatch, capsys):
    import importlib.metadata

    from core import cli

    broken = importlib.metadata.EntryPoint("broken", "core.no_such_module:add", cli.PLUGIN_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [broken])
    parser = cli.build_parser()
    assert "broken" not in parser._subparsers._group_actions[0].choices
    assert "command broken (core.no_such_module:add) left out" in capsys.readouterr().err


def _imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the source, at any depth (function bodies and
    TYPE_CHECKING blocks too). Relative imports stay inside their top-level package."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [(node.lineno, node.module)]
    return out


def _imports_app(source: str) -> list[tuple[int, str]]:
    return [(line, mod) for line, mod in _imports(source) if mod == "app" or mod.startswith("app.")]


def test_core_never_imports_app():
    """Belt and braces beside ruff's TID251 ban (pyproject.toml), which a noqa could silence."""
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 50
    found = [f"{p.relative_to(ROOT)}:{line} imports {mod}" for p in files for line, mod in _imports_app(p.read_text())]
    assert not found, found
    # the scan sees the import core/cli.py used to make, inside a function
    assert _imports_app("import os\n\ndef f():\n    from app.demo import launch\n") == [(4, "app.demo")]
    assert _imports_app("import apple\nfrom application import x\n") == []


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_cli_modules_sit_on_no_import_cycle():
    """Imports at any depth: a function-level import hides a cycle, it does not remove it."""
    modules = {_module(p): p for p in CORE.rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {m: {r for _, mod in _imports(p.read_text()) if (r := resolve(mod)) and r != m} for m, p in modules.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for n in graph[todo.pop()]:
                if n == goal:
                    return True
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return False

    cli_modules = ["core.cli", "core.cli_args", "core.model_names", "core.train.recipe", "core.train.options",
                   "core.jobs.cli", "core.train.cli", "core.vqa.cli", "core.quant.cli", "core.retrieval.cli",
                   "core.models.registry", "core.train.default"]
    assert "core.train.recipe" in graph["core.train.cli"]  # the graph is read, not empty
    assert [m for m in cli_modules if reaches(m, m)] == []
