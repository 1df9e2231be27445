"""Image-only control: Sobel edge magnitude (a saliency map that never looks at the network)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from roarkar.saliency.base import SaliencyMethod
from roarkar.saliency.registry import register

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(images: Tensor) -> Tensor:
    """Per-channel Sobel gradient magnitude sqrt(Gx^2 + Gy^2) [B, C, H, W] (replicate padding, so
    the image border is not an edge)."""
    c = images.shape[1]
    kx = _SOBEL_X.to(images)
    kernel = torch.stack([kx, kx.T])[:, None].repeat(c, 1, 1, 1)  # [2C, 1, 3, 3]
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    g = F.conv2d(padded, kernel, groups=c).view(images.shape[0], c, 2, *images.shape[-2:])
    return g.pow(2).sum(dim=2).sqrt()


@register("sobel", label="Sobel", reference="Sobel & Feldman 1968 (edge control)")
class SobelEdges(SaliencyMethod):
    """Sobel edge magnitude of the (normalised) input image, a control that ignores the model.

    Channel reduction: the maximum over colour channels of each channel's Sobel magnitude. The
    images are the normalised model inputs, so channel c's edges are scaled by 1/std_c -- an edge
    only as strong in a low-variance channel counts a little more; greyscale conversion would need
    the dataset's mean/std, which a saliency method does not get.
    """

    kind: ClassVar[str] = "control"
    uses_model: ClassVar[bool] = False

    def _saliency(self, images, targets, *, relevance, generator):
        return sobel_magnitude(images).amax(dim=1)


__all__ = ["SobelEdges", "sobel_magnitude"]
