"""Source-frame augmentations matching the renderer's sensor model and beyond."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


def _normalization(preprocess: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    """The (mean, std) the preprocessing normalises with, as (3,1,1) tensors."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from torchvision.transforms import Normalize

    for t in getattr(preprocess, "transforms", []):
        if isinstance(t, Normalize):
            return torch.tensor(t.mean).view(3, 1, 1), torch.tensor(t.std).view(3, 1, 1)
    return torch.tensor(OPENAI_DATASET_MEAN).view(3, 1, 1), torch.tensor(OPENAI_DATASET_STD).view(3, 1, 1)


@dataclass
class SensorAugment:
    """Photometric jitter, blur, sensor noise and JPEG artefacts on preprocessed pixels.

    The renderer adds Gaussian sensor noise of sigma 2-5.5 (of 255) and saves JPEG at quality 92;
    these ranges reach well past that (real dashcams blur, compress harder and are noisier), so
    the source domain the model learns from covers more of what cameras do.
    """

    mean: torch.Tensor
    std: torch.Tensor
    jitter: float = 0.3  # brightness/contrast/saturation factor range 1 +- jitter
    # Off by default: torchvision's hue jitter (an RGB-HSV round trip) doubled the augmentation's
    # time here (0.88 against 0.45 s per 32 frames, one thread).
    hue: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 1.5)
    noise_sigma: tuple[float, float] = (0.0, 12 / 255)
    jpeg_quality: tuple[int, int] = (30, 95)
    p: float = 0.5  # chance of each of blur, noise and JPEG

    def __post_init__(self) -> None:
        from torchvision.transforms import v2

        self.colour = v2.ColorJitter(self.jitter, self.jitter, self.jitter, self.hue)
        self.blur = v2.GaussianBlur(5, sigma=self.blur_sigma)
        self.jpeg = v2.JPEG(self.jpeg_quality)

    def __call__(self, pixels: torch.Tensor, seed: int) -> torch.Tensor:
        """A new batch; the draws come from ``seed`` alone (resumed runs see the same ones)."""
        with torch.random.fork_rng(devices=[]):  # torchvision's transforms draw from the global RNG
            torch.manual_seed(seed)
            out = []
            for x in pixels.float():
                x = (x * self.std + self.mean).clamp(0, 1)
                x = self.colour(x)
                if torch.rand(()) < self.p:
                    x = self.blur(x)
                if torch.rand(()) < self.p:
                    x = x + torch.randn_like(x) * float(torch.empty(()).uniform_(*self.noise_sigma))
                if torch.rand(()) < self.p:
                    x = self.jpeg((x.clamp(0, 1) * 255).round().to(torch.uint8)).float() / 255
                out.append((x.clamp(0, 1) - self.mean) / self.std)
            return torch.stack(out)
