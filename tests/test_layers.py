"""The layers hold: pages reach the engine only through the app layer, what moved into ``core`` does
what the pages did by hand, and the token engine's modules do not import each other in a circle."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SmallIndex
from PIL import Image

APP = ROOT / "app"


def _imports(path: Path, *, skip_type_checking: bool = True) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in a file, at any depth (function bodies too), except
    those under ``if TYPE_CHECKING:`` (annotations only) when ``skip_type_checking``."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    if skip_type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


@pytest.mark.parametrize("page", sorted(p.name for p in (APP / "views").glob("*.py")) + ["../demo.py"])
def test_pages_reach_the_engine_only_through_the_app_layer(page: str) -> None:
    path = APP / "views" / page
    reached = [f"{path.name}:{line} imports {mod}" for line, mod in _imports(path)
               if mod == "core" or mod.startswith("core.")]
    assert not reached, reached


def test_the_token_engine_has_no_import_cycle() -> None:
    """Imports at any depth (a function-level import hides a cycle, it does not remove it)."""
    modules = {p.stem: p for p in (ROOT / "core" / "tokens").glob("*.py") if p.stem != "__init__"}
    graph = {m: {mod.split(".")[2] for _, mod in _imports(p, skip_type_checking=False)
                 if mod.startswith("core.tokens.") and mod.split(".")[2] in modules} - {m}
             for m, p in modules.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph[start])

    assert "encode" in graph["select"] and "select" in graph["pruned"]  # the graph is read, not empty
    circles = sorted(m for m in graph if reaches(m, m, {m}))
    assert not circles, {m: graph[m] for m in circles}


def test_light_modules_stay_light() -> None:
    """The types and the workspace fill the app's pickers before any model loads: neither they nor
    listing the models to start from may pull in torch."""
    code = ("import sys, core.types, core.workspace; core.workspace.list_models(); "
            "print(sorted(m for m in ('torch', 'faiss', 'open_clip') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- core.workspace ---------------------------------------------------------------------------------
def _touch_manifest(folder: Path, name: str = "manifest.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"count": 0}))
    return folder


def test_workspace_and_default_index_follow_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core import workspace

    monkeypatch.delenv(workspace.ENV_WORKSPACE, raising=False)
    monkeypatch.delenv(workspace.ENV_INDEX, raising=False)
    assert workspace.workspace() == ROOT / "workspace"
    assert workspace.default_index() == ROOT / "indexes" / "demo" and workspace.is_demo(workspace.default_index())
    monkeypatch.setenv(workspace.ENV_WORKSPACE, str(tmp_path / "ws"))
    monkeypatch.setenv(workspace.ENV_INDEX, str(tmp_path / "idx"))
    assert workspace.workspace() == tmp_path / "ws"
    assert workspace.default_index() == tmp_path / "idx" and not workspace.is_demo(tmp_path / "idx")
    # The demo's frames stay in the repository's workspace whatever the environment says.
    assert workspace.DEMO_DATA == ROOT / "workspace" / "demo-data"


def test_discovery_lists_each_folder_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core import workspace

    ws = tmp_path / "ws"
    monkeypatch.setenv(workspace.ENV_WORKSPACE, str(ws))
    job_index = _touch_manifest(ws / "jobs" / "ft-1" / "index")
    _touch_manifest(ws / "jobs" / "ft-2")  # a job without an index is not one
    monkeypatch.setenv(workspace.ENV_INDEX, str(job_index))  # the default index is also found by glob
    indexes = workspace.list_indexes()
    assert indexes[0] == job_index
    assert [p.resolve() for p in indexes].count(job_index.resolve()) == 1
    assert all((p / "manifest.json").is_file() for p in indexes[1:])
    assert not any("ft-2" in str(p) for p in indexes)

    a = _touch_manifest(ws / "a", "manifest.csv")
    b = _touch_manifest(ws / "b", "manifest.jsonl")
    elsewhere = _touch_manifest(tmp_path / "elsewhere", "manifest.csv")
    (ws / "empty").mkdir()
    assert workspace.list_datasets([elsewhere, a]) == [elsewhere, a, b]

    model = ws / "models" / "ft-1"
    model.mkdir(parents=True)
    (model / "open_clip_config.json").write_text("{}")
    assert workspace.trained_models() == [f"file:{model}"]
    names = workspace.list_models(["mine"])
    assert names[0] == "mine" and names[-1] == f"file:{model}" and len(names) == len(set(names))

    assert workspace.demo_missing(tmp_path / "nowhere") is False  # not the demo: never built implicitly


# ---- the SceneModel / IndexStore protocols ------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(small_index: SmallIndex) -> tuple:
    from core.pipeline import open_index

    return open_index(small_index.index)


def test_the_engine_types_satisfy_their_protocols(engine: tuple) -> None:
    from core import types

    model, store = engine
    assert isinstance(model, types.SceneModel) and isinstance(store, types.IndexStore)
    assert not isinstance(object(), types.IndexStore)


# ---- the full-versus-pruned vote comparison (core.tokens.vote) ---------------------------------------
@pytest.mark.parametrize(("query", "keep_ratio", "read_in"), [
    ("a construction zone", 0.25, True), (None, 0.5, False), (None, 1.0, True)])
def test_pruned_vote_equals_voting_the_pruned_embedding(engine: tuple, query: str | None, keep_ratio: float,
                                                        read_in: bool) -> None:
    """The comparison the Tokens page and /heatmap show equals calling the engine step by step:
    select_images for the kept patches, vote_batch on embed_pruned and on the full embedding."""
    from core.predict import vote_batch
    from core.tokens import embed_pruned, select_images
    from core.tokens.vote import vote_full_and_pruned

    model, store = engine
    with Image.open(store.abspath(7)) as image:
        result = vote_full_and_pruned(model, store, image, k=4, keep_ratio=keep_ratio, query=query,
                                      read_in=read_in)
        selection = select_images(model, [image], query=query, keep_ratio=keep_ratio)[0]
        pruned = embed_pruned(model, [image], keep_ratio=keep_ratio, mode="query" if query else "saliency",
                              query=query, read_in=read_in)
        full_vote = vote_batch(store, model.embed_images([image]), k=4)[0]
    pruned_vote = vote_batch(store, pruned, k=4)[0]

    np.testing.assert_array_equal(result.selection.indices, selection.indices)
    for got, want in ((result.full, full_vote), (result.pruned, pruned_vote)):
        assert got.labels() == want.labels()
        assert [n.id for n in got.neighbors] == [n.id for n in want.neighbors]
        np.testing.assert_allclose([n.similarity for n in got.neighbors],
                                   [n.similarity for n in want.neighbors], atol=1e-5)
    assert result.agree == [a for a in store.schema.names if full_vote.labels()[a] == pruned_vote.labels()[a]]
    if keep_ratio == 1.0:  # every patch kept: the pruned vote is the full vote
        assert result.pruned.labels() == result.full.labels()
