"""Query-aware visual token selection (LaVida Drive style): dense patch-text relevance, top-k
selection, heatmaps and a token-pruned image encoder."""

from core.tokens.features import METHODS, dense_forward, patch_features, query_words, text_features
from core.tokens.geometry import input_box, patch_boxes, patch_coverage
from core.tokens.heatmap import clip_heatmaps, colormap, heatmap_frames, heatmap_image
from core.tokens.pruned import embed_pruned, encode_early_pruned, encode_pruned, keep_indices
from core.tokens.select import (
    MODES,
    QUERY_METHODS,
    RULES,
    SALIENCY,
    Selection,
    batch_scores,
    keep_count,
    occlusion_scores,
    query_scores,
    random_scores,
    rollout,
    saliency_scores,
    schema_background,
    score_patches,
    select_images,
    select_query_aware,
    select_random,
    select_saliency,
    select_tokens,
    spread_scores,
)

__all__ = [
    "METHODS", "MODES", "QUERY_METHODS", "RULES", "SALIENCY", "Selection", "batch_scores", "clip_heatmaps", "colormap",
    "dense_forward", "embed_pruned", "encode_early_pruned", "encode_pruned", "heatmap_frames", "heatmap_image", "input_box",
    "keep_count", "keep_indices", "occlusion_scores", "patch_boxes", "patch_coverage", "patch_features", "query_scores",
    "query_words", "random_scores", "rollout", "saliency_scores", "schema_background", "score_patches", "select_images",
    "select_query_aware", "select_random", "select_saliency", "select_tokens", "spread_scores", "text_features",
]
