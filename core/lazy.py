"""Package names that load on first use (PEP 562 module ``__getattr__``).

A feature package whose ``cli`` module the command line imports to build its parser re-exports its
names this way, so that `scenescope --help` does not pay for torch or numpy. The standard library has
no helper for it; scientific-python's ``lazy_loader`` has one, but one small function did not justify
a new dependency, and one copy here replaces a copy per package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_names(package: str, where: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` that imports ``where[name]`` when ``name`` is first read."""

    def __getattr__(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(where[name]), name)

    return __getattr__
