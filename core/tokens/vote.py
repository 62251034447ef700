"""What the k-NN vote sees with only the kept tokens: one image voted from its full encoding and from
its pruned one, side by side (the Tokens page and the Gradio demo's /heatmap)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.models.scene_model import ImageLike
from core.predict import Vote, vote_batch
from core.tokens.encode import encode_pruned
from core.tokens.select import Selection, select_images

if TYPE_CHECKING:
    from core.types import IndexStore, SceneModel


@dataclass
class PrunedVote:
    """An image's patch selection, and its votes from the full and from the pruned encoding."""

    selection: Selection
    full: Vote
    pruned: Vote

    @property
    def agree(self) -> list[str]:
        """Attributes (schema order) whose pruned vote equals the full vote."""
        full, pruned = self.full.labels(), self.pruned.labels()
        return [a for a in full if full[a] == pruned.get(a)]


def vote_full_and_pruned(
    model: SceneModel,
    store: IndexStore,
    image: ImageLike,
    *,
    k: int = 5,
    keep_ratio: float = 0.25,
    query: str | None = None,
    rule: str = "pooled",
    method: str = "raw",
    background: np.ndarray | None = None,
    read_in: bool = True,
) -> PrunedVote:
    """Select ``image``'s patches (by relevance to ``query``, or query-free saliency without one),
    then vote with ``store``'s ``k`` nearest frames from the full and from the pruned encoding.

    The pruned vote equals ``vote_batch`` on ``embed_pruned`` with the same options (the test
    checks it); the patches are scored once here and used for both the heatmap's selection and
    the encoding, where calling both would score them twice (occlusion: a pass per patch).
    """
    query = query or None
    selection = select_images(model, [image], query=query, keep_ratio=keep_ratio, rule=rule, method=method,
                              background=background)[0]
    pixels = model.preprocess_batch([image])
    # embed_pruned keeps the same top patches (same scores, same stable order) in ascending order.
    kept = torch.from_numpy(np.sort(selection.indices).astype(np.int64))[None]
    pruned = encode_pruned(model, pixels, kept, read_in).float().cpu().numpy()
    full = vote_batch(store, model.embed_batch(pixels), k=k)[0]
    return PrunedVote(selection, full, vote_batch(store, pruned, k=k)[0])


__all__ = ["PrunedVote", "vote_full_and_pruned"]
