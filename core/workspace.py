"""Where things live: the workspace, the index folders and the demo, defined once.

The workbench, the Gradio demo and the engine's demo builder all find indexes, datasets and
trained models through these functions, so a path changes in one place. Light on purpose (no
torch, no FAISS): the app calls it to fill its pickers before any model is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV_WORKSPACE = "SCENESCOPE_WORKSPACE"
ENV_INDEX = "SCENESCOPE_INDEX"
DEFAULT_WORKSPACE = ROOT / "workspace"
INDEX_ROOT = ROOT / "indexes"
DEMO_INDEX = INDEX_ROOT / "demo"
# The demo's rendered frames stay in the repository's own workspace whatever $SCENESCOPE_WORKSPACE
# says: a workspace pointed elsewhere (a test's, a user's scratch) must not re-render the demo.
DEMO_DATA = DEFAULT_WORKSPACE / "demo-data"


def workspace() -> Path:
    """Where fine-tuning jobs, their models and indexes go: $SCENESCOPE_WORKSPACE or workspace/."""
    env = os.environ.get(ENV_WORKSPACE)
    return Path(env) if env else DEFAULT_WORKSPACE


def default_index() -> Path:
    """$SCENESCOPE_INDEX, else the embedded demo index."""
    env = os.environ.get(ENV_INDEX)
    return Path(env) if env else DEMO_INDEX


def is_demo(index_dir: str | Path) -> bool:
    """Whether ``index_dir`` is the embedded demo index (the only one made implicitly)."""
    return Path(index_dir).resolve() == DEMO_INDEX.resolve()


def demo_missing(index_dir: str | Path) -> bool:
    """Whether ``index_dir`` is the demo index and not built yet (``core.demo.ensure_demo`` builds it)."""
    return is_demo(index_dir) and not (Path(index_dir) / "manifest.json").is_file()


def list_indexes() -> list[Path]:
    """The default index, every index under ``indexes/``, then indexes made by training jobs."""
    found = [default_index()]
    candidates = sorted(INDEX_ROOT.glob("*/manifest.json")) + sorted(workspace().glob("jobs/*/index/manifest.json"))
    seen = {found[0].resolve()}
    for m in candidates:
        if m.parent.resolve() not in seen:
            seen.add(m.parent.resolve())
            found.append(m.parent)
    return found


def list_datasets(extra: Iterable[str | Path] = ()) -> list[Path]:
    """Dataset folders (with a manifest): ``extra`` first, then those directly under the workspace."""
    out: list[Path] = []
    for p in [*map(Path, extra), *sorted(workspace().glob("*/manifest.*"))]:
        folder = p if p.is_dir() else p.parent
        if folder.resolve() not in {o.resolve() for o in out} and any(folder.glob("manifest.*")):
            out.append(folder)
    return out


def trained_models() -> list[str]:
    """Registry names (``file:<folder>``) of the models fine-tuning jobs saved in the workspace."""
    return [f"file:{p.parent}" for p in sorted(workspace().glob("models/*/open_clip_config.json"))]


def list_models(first: Iterable[str] = ()) -> list[str]:
    """Model names to start from: ``first``, the bundled ones, then models trained in the workspace."""
    from core.model_names import BUNDLED

    return list(dict.fromkeys([*first, *BUNDLED, *trained_models()]))


__all__ = [
    "DEFAULT_WORKSPACE", "DEMO_DATA", "DEMO_INDEX", "ENV_INDEX", "ENV_WORKSPACE", "INDEX_ROOT", "ROOT",
    "default_index", "demo_missing", "is_demo", "list_datasets", "list_indexes", "list_models", "trained_models", "workspace",
]
