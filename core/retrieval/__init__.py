"""Clip retrieval: metrics for text-to-clip / clip-to-text ranking and for moments in long drives."""

from __future__ import annotations

from core.lazy import lazy_names

# Names load on first use (core.lazy): `scenescope --help` imports this package's cli module.
_WHERE = {
    "moment_metrics": "core.retrieval.metrics",
    "rank_metrics": "core.retrieval.metrics",
    "retrieval_metrics": "core.retrieval.metrics",
    "retrieval_ranks": "core.retrieval.metrics",
    "temporal_iou": "core.retrieval.metrics",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_names(__name__, _WHERE)
