"""Clip retrieval: metrics for text-to-clip / clip-to-text ranking and for moments in long drives."""

from __future__ import annotations

import importlib

# Names load on first use (PEP 562): the command line imports this package's cli module to build its
# parser, and `scenescope --help` must not pay for torch or numpy.
_WHERE = {
    "moment_metrics": "core.retrieval.metrics",
    "rank_metrics": "core.retrieval.metrics",
    "retrieval_metrics": "core.retrieval.metrics",
    "retrieval_ranks": "core.retrieval.metrics",
    "temporal_iou": "core.retrieval.metrics",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
