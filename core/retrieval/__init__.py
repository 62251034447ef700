"""Clip retrieval: metrics for text-to-clip / clip-to-text ranking and for moments in long drives."""

from core.retrieval.metrics import (
    moment_metrics,
    rank_metrics,
    retrieval_metrics,
    retrieval_ranks,
    temporal_iou,
)

__all__ = ["moment_metrics", "rank_metrics", "retrieval_metrics", "retrieval_ranks", "temporal_iou"]
