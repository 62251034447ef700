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
    # The renderer's domain randomization (core.synth.randomize) as augmentations, off by default:
    # camera intrinsics and pitch (zoom, vertical and horizontal shift), and lens effects
    # (vignetting, blotchy texture). Each applies with chance ``p``.
    randomize: bool = False

    def __post_init__(self) -> None:
        from torchvision.transforms import v2

        self.colour = v2.ColorJitter(self.jitter, self.jitter, self.jitter, self.hue)
        self.blur = v2.GaussianBlur(5, sigma=self.blur_sigma)
        self.jpeg = v2.JPEG(self.jpeg_quality)
        # Zoom 0.8-1.3 is a focal length 0.8-1.3x; a vertical shift of 8% of the height moves the
        # horizon as the renderer's pitch range does; edges left empty read black.
        self.camera = v2.RandomAffine(degrees=0, translate=(0.05, 0.08), scale=(0.8, 1.3))

    def __call__(self, pixels: torch.Tensor, seed: int) -> torch.Tensor:
        """A new batch; the draws come from ``seed`` alone (resumed runs see the same ones)."""
        with torch.random.fork_rng(devices=[]):  # torchvision's transforms draw from the global RNG
            torch.manual_seed(seed)
            out = []
            for x in pixels.float():
                x = (x * self.std + self.mean).clamp(0, 1)
                if self.randomize:
                    x = self._randomize(x)
                x = self.colour(x)
                if torch.rand(()) < self.p:
                    x = self.blur(x)
                if torch.rand(()) < self.p:
                    x = x + torch.randn_like(x) * float(torch.empty(()).uniform_(*self.noise_sigma))
                if torch.rand(()) < self.p:
                    x = self.jpeg((x.clamp(0, 1) * 255).round().to(torch.uint8)).float() / 255
                out.append((x.clamp(0, 1) - self.mean) / self.std)
            return torch.stack(out)

    def _randomize(self, x: torch.Tensor) -> torch.Tensor:
        """Camera and lens of the renderer's randomization on one (3, H, W) image in [0, 1]."""
        if torch.rand(()) < self.p:
            x = self.camera(x)
        if torch.rand(()) < self.p:  # vignetting: darker towards the corners
            h, w = x.shape[-2:]
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
            x = x * (1 - float(torch.empty(()).uniform_(0, 0.45)) * ((xs**2 + ys**2) / 2).clamp(0, 1))
        if torch.rand(()) < self.p:  # texture: smooth multiplicative blotches
            coarse = torch.empty(1, 1, 4, 6).uniform_(-1, 1)
            field = torch.nn.functional.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = x * (1 + float(torch.empty(()).uniform_(0.04, 0.18)) * field[0])
        return x.clamp(0, 1)
