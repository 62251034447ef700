"""SceneModel: one loaded CLIP with its preprocessing, tokenizer and identity."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

ImageLike = Image.Image | np.ndarray


def to_pil(image: ImageLike) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 image array, got shape {arr.shape}")
    return Image.fromarray(arr[..., :3].astype(np.uint8))


@dataclass
class SceneModel:
    """A CLIP model ready for embedding: images and texts in, L2-normalised numpy vectors out."""

    name: str
    identity: str  # name + weights checksum; stored with every index built from this model
    clip: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[[Sequence[str]], torch.Tensor]
    device: str = "cpu"

    @property
    def embed_dim(self) -> int:
        return int(self.clip.text_projection.shape[-1]) if hasattr(self.clip, "text_projection") \
            else int(self.clip.visual.output_dim)

    @property
    def image_size(self) -> tuple[int, int]:
        size = self.clip.visual.image_size
        return (size, size) if isinstance(size, int) else tuple(size)  # (height, width)

    @property
    def grid_size(self) -> tuple[int, int] | None:
        """Patch grid (rows, cols) for ViTs; None for other towers."""
        g = getattr(self.clip.visual, "grid_size", None)
        return tuple(g) if g is not None else None

    def preprocess_batch(self, images: Iterable[ImageLike]) -> torch.Tensor:
        return torch.stack([self.preprocess(to_pil(im)) for im in images])

    @torch.inference_mode()
    def embed_batch(self, pixels: torch.Tensor) -> np.ndarray:
        """Embed already preprocessed pixels (B,3,H,W)."""
        feats = self.clip.encode_image(pixels.to(self.device), normalize=True)
        return feats.float().cpu().numpy()

    def embed_images(self, images: Sequence[ImageLike], batch_size: int = 64) -> np.ndarray:
        out = [
            self.embed_batch(self.preprocess_batch(images[i : i + batch_size]))
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        out = []
        for i in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[i : i + batch_size])).to(self.device)
            out.append(self.clip.encode_text(tokens, normalize=True).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)
