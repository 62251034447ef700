"""The one app layer under both front ends: the workbench's pages (``app/views``) and the Gradio
demo (``app/demo.py``) call these plain functions, and only these, to reach the engine.

Nothing here imports Streamlit or Gradio, so both front ends share it and tests call it directly.
Each function calls the engine (``core``) and shapes its answer for drawing; errors the user can
fix come back as one readable string instead of a traceback. Engine logic (how votes are made,
where indexes live) stays in ``core``; what is here is shaping and wiring.
"""

from __future__ import annotations

from app.handlers.ask import (
    ANSWERER_LABELS,
    BUNDLED_VLM,
    DEFAULT_KEEP,
    AnswerSpan,
    AskResult,
    EvidenceCard,
    ask,
    choice_sets,
    open_vlm,
    question_heatmap,
    question_problem,
    suggested_questions,
    vlm_status,
    when_question,
)
from app.handlers.clips import (
    CLIP_RESULTS,
    RETRIEVAL_CLIPS,
    cached_retrieval_report,
    clip_moments,
    clip_pooling,
    compute_retrieval_report,
    retrieval_table,
    search_clip_results,
)
from app.handlers.files import (
    ACCEPTED_SUFFIXES,
    ACCEPTED_TYPES,
    CLIP_FPS,
    DISPLAY_WIDTH,
    MAX_UPLOAD_MB,
    VOTE_SPACE_LABELS,
    bundled_models,
    check_upload,
    example_files,
    frame_file,
    open_engine,
    prepare_demo,
    thumbnail,
)
from app.handlers.imports import IMPORT_FORMATS, import_dataset
from app.handlers.jobs import (
    adapt_fields,
    adapt_summary,
    adapt_table,
    cancel_job,
    finetune_defaults,
    finetune_fields,
    job_comparison,
    job_errors,
    job_index_meta,
    job_limits,
    job_status,
    list_jobs,
    measured_throughput,
    resume_job,
    start_job,
    train_choices,
    train_frame_count,
)
from app.handlers.map import (
    EXPORT_FORMATS,
    PLACE_TRANSFORM_MAX,
    color_label,
    color_options,
    colors_need_votes,
    export_rows,
    labelled,
    map_categories,
    map_layout,
    place_upload,
    selected_ids,
    selection_table,
)
from app.handlers.playback import vote_captions, vote_cues
from app.handlers.quantize import QUANT_SIZES, quant_table, quant_variants, quantize_compare
from app.handlers.sample import (
    SIMILAR_MAX,
    SampleInfo,
    sample_info,
    sample_neighbours,
    sample_step,
    similar_rows,
)
from app.handlers.scene import (
    NeighbourCard,
    SceneAnalysis,
    analyze_file,
    analyze_index_scene,
    analyze_upload,
    attribute_voters,
    classify_file,
    clip_duration,
    disagreements,
    display_names,
    first_frame,
    load_query_image,
    neighbour_cards,
    upload_frames,
    vote_frame,
    vote_space_of,
)
from app.handlers.search import SEGMENT_HITS, search_scenes, search_segments, segment_table
from app.handlers.tokens import (
    pruned_summary,
    pruned_vote_table,
    token_background,
    token_choices,
    token_heatmap,
    token_kept,
    token_votes,
    tokens_available,
)
from app.handlers.triage import (
    class_key,
    evaluate_index_split,
    failure_table,
    focus_classes,
    focus_values,
    index_splits,
    leakage_pairs,
    leakage_table,
    metrics_table,
    per_class_table,
)
from app.handlers.views import (
    STALE_NOTE,
    View,
    correct_labels,
    delete_view,
    export_frames,
    field_label,
    labels_version,
    last_change,
    move_to_split,
    save_as_dataset,
    save_view,
    saved_views,
    search_in_view,
    splits,
    tag_rows,
    undo_last,
    value_label,
    view_counts,
    view_fields,
    view_from_filters,
    view_rows,
    view_table,
)
from core.pipeline import IMAGE_SUFFIXES
from core.schema import UNKNOWN
from core.workspace import (
    DEMO_INDEX,
    ENV_INDEX,
    ENV_WORKSPACE,
    INDEX_ROOT,
    ROOT,
    default_index,
    demo_missing,
    is_demo,
    list_datasets,
    list_indexes,
    list_models,
    workspace,
)

__all__ = [
    "IMPORT_FORMATS", "import_dataset",
    "STALE_NOTE", "View", "correct_labels", "delete_view", "export_frames", "field_label", "labels_version",
    "last_change", "move_to_split", "save_as_dataset", "save_view", "saved_views", "search_in_view", "splits",
    "tag_rows", "undo_last", "value_label", "view_counts", "view_fields", "view_from_filters", "view_rows",
    "view_table",
    "CLIP_RESULTS", "RETRIEVAL_CLIPS", "cached_retrieval_report", "clip_moments", "clip_pooling",
    "compute_retrieval_report", "retrieval_table", "search_clip_results",
    "QUANT_SIZES", "quant_table", "quant_variants", "quantize_compare",
    "SIMILAR_MAX", "SampleInfo", "sample_info", "sample_neighbours", "sample_step", "similar_rows", "vote_captions",
    "vote_cues",
    "ANSWERER_LABELS", "BUNDLED_VLM", "DEFAULT_KEEP", "AnswerSpan", "AskResult", "EvidenceCard", "ask", "choice_sets",
    "open_vlm", "question_heatmap", "question_problem", "suggested_questions", "vlm_status", "when_question",
    "ACCEPTED_SUFFIXES", "ACCEPTED_TYPES", "CLIP_FPS", "DEMO_INDEX", "DISPLAY_WIDTH", "ENV_INDEX", "ENV_WORKSPACE",
    "EXPORT_FORMATS", "INDEX_ROOT", "IMAGE_SUFFIXES", "MAX_UPLOAD_MB", "NeighbourCard", "PLACE_TRANSFORM_MAX", "ROOT",
    "SEGMENT_HITS", "SceneAnalysis", "UNKNOWN", "VOTE_SPACE_LABELS", "analyze_file", "analyze_index_scene",
    "analyze_upload", "attribute_voters", "bundled_models", "adapt_fields", "adapt_summary", "adapt_table", "cancel_job", "check_upload", "class_key",
    "classify_file", "clip_duration", "color_label", "color_options", "colors_need_votes", "default_index",
    "demo_missing", "disagreements", "display_names", "evaluate_index_split", "example_files", "export_rows", "failure_table",
    "finetune_defaults", "finetune_fields", "first_frame", "focus_classes", "focus_values", "frame_file", "index_splits", "is_demo",
    "job_comparison", "job_errors", "job_index_meta", "job_limits", "job_status", "labelled", "leakage_pairs", "leakage_table", "list_datasets",
    "list_indexes", "list_jobs", "list_models", "load_query_image", "map_categories", "map_layout", "measured_throughput",
    "metrics_table", "neighbour_cards", "open_engine", "per_class_table", "place_upload", "prepare_demo",
    "pruned_summary", "pruned_vote_table", "resume_job", "search_scenes", "search_segments", "segment_table", "selected_ids", "selection_table",
    "start_job", "thumbnail", "token_background", "token_choices", "token_heatmap", "token_kept", "token_votes",
    "tokens_available", "train_choices", "train_frame_count", "upload_frames", "vote_frame", "vote_space_of", "workspace",
]
