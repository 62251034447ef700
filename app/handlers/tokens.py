"""Query-aware token selection (LaVida Drive) for the Tokens page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image

from core.schema import UNKNOWN, Schema

if TYPE_CHECKING:
    from core.types import IndexStore, SceneModel


# ---- tokens ----------------------------------------------------------------------------------------
def tokens_available() -> bool:
    """Whether the token engine (``core.tokens``) is part of this build."""
    try:
        from core.tokens import embed_pruned, heatmap_image, select_images  # noqa: F401
    except ImportError:
        return False
    return True


def token_choices() -> dict[str, tuple[str, ...]]:
    """The token engine's choices: query ``rules``, query-free ``methods``, ``query_methods``."""
    from core import tokens

    return {"rules": tuple(tokens.RULES), "methods": tuple(tokens.METHODS),
            "query_methods": tuple(tokens.QUERY_METHODS)}


def token_background(model: SceneModel, schema: Schema) -> np.ndarray:
    """The schema's value phrases embedded, for feature surgery (see ``core.tokens.score_patches``)."""
    from core.tokens import schema_background

    return schema_background(model, schema)


def token_votes(model: SceneModel, store: IndexStore, image: Image.Image | np.ndarray, k: int = 5,
                keep_ratio: float = 0.25, query: str | None = None, **options: Any) -> Any:
    """The image's kept patches and its votes from the full and from the pruned encoding
    (``core.tokens.vote.PrunedVote``; ``options``: rule, method, background, read_in)."""
    from core.tokens.vote import vote_full_and_pruned

    return vote_full_and_pruned(model, store, image, k=int(k), keep_ratio=float(keep_ratio),
                                query=(query or "").strip() or None, **options)


def token_heatmap(image: Image.Image | np.ndarray, selection: Any, query: str | None = None) -> Image.Image:
    """The image under its patches' relevance colours, kept patches outlined (titled by ``query``)."""
    from core.tokens import heatmap_image

    return heatmap_image(image, selection, title=query or None)


def token_kept(image: Image.Image | np.ndarray, selection: Any) -> Image.Image:
    """The image with the patches the selection dropped dimmed, padded on the right as wide as
    ``token_heatmap``'s colour bar: side by side at equal widths, both then stand equally tall."""
    from core.tokens import heatmap_image
    from core.tokens.heatmap import BAR_WIDTH

    kept = heatmap_image(image, selection, alpha=0.0, dim_pruned=0.85, colorbar=False)
    canvas = Image.new("RGB", (kept.width + BAR_WIDTH, kept.height), (255, 255, 255))
    canvas.paste(kept, (0, 0))
    return canvas



def pruned_summary(result: Any, query: str | None = None) -> dict[str, Any]:
    """A ``PrunedVote`` as the demo's API returns it: tokens kept, both votes, where they agree."""
    sel = result.selection
    return {"kept_tokens": sel.k, "total_tokens": int(sel.scores.size), "query": query or None,
            "full": result.full.labels(), "pruned": result.pruned.labels(), "agree": result.agree}


def pruned_vote_table(summary: dict[str, Any], schema: Schema) -> pd.DataFrame:
    """``pruned_summary``'s two votes side by side in the schema's words, one row per attribute."""
    full, pruned, agree = summary["full"], summary["pruned"], set(summary.get("agree") or ())
    return pd.DataFrame([{"Attribute": a.display, "Full image": a.display_of(full.get(a.name, UNKNOWN)),
                          "Kept tokens only": a.display_of(pruned.get(a.name, UNKNOWN)),
                          "Same": "yes" if a.name in agree else "no"}
                         for a in schema.attributes if a.name in full or a.name in pruned])
