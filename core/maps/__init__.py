"""The Map page's engine: a 2-D UMAP layout of an index (``layout``), new points placed on it
(``place``), and what the points show: colours and selections (``points``)."""

from core.maps.layout import (
    PCA_ABOVE,
    UMAP_FILE,
    UMAP_META_FILE,
    UMAP_SAMPLE,
    UmapParams,
    aligned_layouts,
    compute_layout,
    index_key,
    memo_key,
    sampled_layout,
    seed_layout,
    umap_projection,
)
from core.maps.place import KNN_PLACE_K, place_points
from core.maps.points import (
    ABSTAINED,
    COLOR_CORRECT,
    COLOR_SPLIT,
    CORRECT,
    DRAW_POINTS,
    UNLABELLED,
    WRONG,
    color_options,
    color_values,
    density_grid,
    export_selection,
    loo_predictions,
    selection_table,
    view_points,
)

__all__ = [
    "ABSTAINED", "COLOR_CORRECT", "DRAW_POINTS", "UMAP_SAMPLE", "density_grid", "sampled_layout", "view_points", "COLOR_SPLIT", "CORRECT", "KNN_PLACE_K", "PCA_ABOVE", "UMAP_FILE", "UMAP_META_FILE",
    "UNLABELLED", "WRONG", "UmapParams", "aligned_layouts", "color_options", "color_values", "compute_layout",
    "export_selection", "index_key", "loo_predictions", "memo_key", "place_points", "seed_layout", "selection_table",
    "umap_projection",
]
