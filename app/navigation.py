"""The workbench's pages: one registry line per page, grouped into sidebar sections.

Page scripts live in ``app/views/``, not ``app/pages/``: Streamlit treats a ``pages/`` folder beside
the entry script as a legacy multipage app until ``st.navigation`` first runs, so the first visit
to a deep link (``/map``) after a server start would bypass the workbench's sidebar.

A page whose engine has not landed (``requires`` not importable) is left out instead of failing,
so adding a page (e.g. VQA's "Ask") is one ``PageSpec`` line plus its page file.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class PageSpec:
    title: str
    file: str  # relative to app/
    icon: str  # Streamlit material icon
    section: str
    requires: tuple[str, ...] = ()  # "module" or "module:attribute" the page needs from core
    default: bool = False

    @property
    def path(self) -> Path:
        return APP_DIR / self.file

    @property
    def url_path(self) -> str:
        return Path(self.file).stem


PAGES: tuple[PageSpec, ...] = (
    PageSpec("Scene", "views/scene.py", ":material/image_search:", "Explore", default=True),
    PageSpec("Map", "views/map.py", ":material/scatter_plot:", "Explore", ("core.maps",)),
    PageSpec("Search", "views/search.py", ":material/search:", "Explore", ("core.search",)),
    PageSpec("Triage", "views/triage.py", ":material/fact_check:", "Evaluate", ("core.eval",)),
    PageSpec("Tokens", "views/tokens.py", ":material/grid_view:", "Model",
             ("core.tokens",)),
    PageSpec("Train", "views/train.py", ":material/model_training:", "Model",
             ("core.jobs:start_job", "core.compare:Comparison", "core.train.finetune")),
    PageSpec("Quantize", "views/quantize.py", ":material/compress:", "Model", ("core.quant.compare",)),
    PageSpec("Ask", "views/ask.py", ":material/forum:", "Explore", ("core.vqa.answer:RetrievalAnswerer",)),
    PageSpec("Import", "views/import_data.py", ":material/upload_file:", "Data", ("core.data.importers:import_table",)),
)


def available(spec: PageSpec) -> bool:
    """Whether the page's file and engine exist (a missing engine hides the page). A plain module
    is only looked up, not imported: importing core.tokens (torch) on every start would hold up
    the first page by seconds."""
    if not spec.path.is_file():
        return False
    for req in spec.requires:
        module, _, attr = req.partition(":")
        try:
            if not attr:
                if importlib.util.find_spec(module) is None:
                    return False
                continue
            mod = importlib.import_module(module)
        except ImportError:
            return False
        if attr and not hasattr(mod, attr):
            return False
    return True


def sections(pages: tuple[PageSpec, ...] = PAGES) -> dict[str, list[PageSpec]]:
    out: dict[str, list[PageSpec]] = {}
    for p in pages:
        if available(p):
            out.setdefault(p.section, []).append(p)
    return out
