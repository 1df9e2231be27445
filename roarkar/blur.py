"""The one Gaussian blur: the path integral's ``blurred`` baseline (``roarkar.saliency``) and the
``blur`` replacement (``roarkar.removal``, for the metrics and the input protocol) both call it. Bottom layer: imports no roarkar
module."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_blur"]


def gaussian_blur(images: Tensor, sigma: float, *, fit: bool = False) -> Tensor:
    """Separable Gaussian blur of every channel of ``images [N, C, H, W]``: kernel radius
    ceil(3 sigma) (at least 1), weights summing to 1, reflect padding; ``sigma <= 0`` returns
    ``images`` unchanged.

    The two callers differ only on images too small to reflect the full radius (radius >= H or W):
    ``fit=True`` shrinks the radius to ``min(H, W) - 1`` so that the kernel fits inside the image
    (the metrics' blur replacement); ``fit=False`` keeps the radius and replicates the edge pixels
    instead of reflecting them (the path integral's blurred baseline).
    """
    if sigma <= 0:
        return images
    c, h, w = images.shape[1:]
    radius = max(1, math.ceil(3 * sigma))
    if fit:
        radius = max(1, min(radius, h - 1, w - 1))
    mode = "reflect" if min(h, w) > radius else "replicate"
    t = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = F.pad(images, (radius, radius, 0, 0), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, radius, radius), mode=mode)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
