"""The two types every page and command passes around, named as protocols.

``SceneModel`` is what reads images and texts (``core.models.SceneModel`` is the one
implementation), ``IndexStore`` what holds the embedded frames (``core.index.IndexStore``).
Annotate with these instead of ``Any``: importing this module costs nothing (no torch, no FAISS),
so the app layer and light engine modules can name the types without loading the engine, and a
test may hand in a small stand-in that has the same members.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import torch

    from core.schema import Schema


@runtime_checkable
class SceneModel(Protocol):
    """A CLIP model ready for embedding: images and texts in, L2-normalised numpy vectors out."""

    name: str
    identity: str  # name + weights checksum; an index records the identity of the model that built it
    clip: Any  # the open_clip module (its towers are read by the token engine and fine-tuning)
    preprocess: Callable[[Any], torch.Tensor]  # one PIL image -> its (3, H, W) pixels
    tokenizer: Callable[[Sequence[str]], torch.Tensor]
    device: str

    @property
    def embed_dim(self) -> int: ...

    @property
    def image_size(self) -> tuple[int, int]: ...

    @property
    def grid_size(self) -> tuple[int, int] | None: ...

    def preprocess_batch(self, images: Iterable[Any]) -> torch.Tensor: ...

    def embed_batch(self, pixels: torch.Tensor) -> np.ndarray: ...

    def embed_images(self, images: Sequence[Any], batch_size: int = 64) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray: ...


@runtime_checkable
class IndexStore(Protocol):
    """A searchable index of frame embeddings; row i of ``meta`` is stored vector i."""

    meta: pd.DataFrame  # one row per frame: path, clip_id, split, timestamp_s, one column per attribute
    manifest: dict[str, Any]
    schema: Schema
    path: Path | None

    def __len__(self) -> int: ...

    @property
    def dim(self) -> int: ...

    @property
    def data_root(self) -> Path: ...

    def embeddings(self) -> np.ndarray: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def labels(self, i: int) -> dict[str, str]: ...

    def label_table(self) -> np.ndarray: ...

    def abspath(self, i: int) -> Path: ...


__all__ = ["IndexStore", "SceneModel"]
