"""What each tap location can see: the effective receptive field, and input maps carried to a tap.

A tap location's activation is a function of its whole receptive field, so "the object's locations"
at a tap are not the object's square downsampled: a 3x3 stem already sees the object from a ring
around it, and on 32 px images every L5 location sees the whole image. The effective receptive field
(Luo et al. 2016, "Understanding the Effective Receptive Field in Deep CNNs") says how much each
input pixel moves a location: mean |d activation(centre location) / d input| over seeded noise
images, summed over channels. Carrying an input map to a tap weights it by that kernel translated
to each location (one strided convolution): the input relevance a location sees.

Measured on the network it is used with (the trained base model, in eval mode); translation is
assumed (borders see zero padding, not measured separately).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class ReceptiveField:
    """The effective receptive field of one tap: ``kernel`` [H, W] over the input (sums to 1),
    measured at location (``cy``, ``cx``) of a tap map of ``size`` = (h, w), ``stride`` px apart."""

    kernel: Tensor
    stride: int
    size: tuple[int, int]
    cy: int
    cx: int

    def carry(self, maps: Tensor) -> Tensor:
        """Input-resolution maps [B, H, W] -> the tap's [B, h, w]: each location's kernel-weighted
        sum of the map (what that location sees of it)."""
        b, height, width = maps.shape
        kh, kw = self.kernel.shape
        if (height, width) != (kh, kw):
            raise ValueError(f"maps of {height}x{width} px, receptive field measured at {kh}x{kw}")
        s, (h, w) = self.stride, self.size
        # out[i] = sum_u map[u] K[u - (i - c) s]: pad so that conv2d's window i starts at (i - c) s
        pad = (self.cx * s, (w - 1 - self.cx) * s, self.cy * s, (h - 1 - self.cy) * s)
        x = F.pad(maps.unsqueeze(1).to(self.kernel), pad)
        out = F.conv2d(x, self.kernel[None, None], stride=s)
        return out[:, 0, :h, :w]


def effective_receptive_field(
    prefix: nn.Module, image_size: int, *, images: int = 32, seed: int = 0
) -> ReceptiveField:
    """Measure the ERF of the centre location of ``prefix(x)`` (a network cut at a tap; returns
    [B, C, h, w]) on ``images`` seeded N(0, 1) inputs of ``image_size`` px, in eval mode."""
    param = next(prefix.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(images, 3, image_size, image_size, generator=generator).to(device)
    x.requires_grad_(True)
    modes = [(m, m.training) for m in prefix.modules()]  # shared modules: restore each one's own
    prefix.eval()
    try:
        with torch.enable_grad():
            out = prefix(x)
            h, w = out.shape[-2:]
            cy, cx = h // 2, w // 2
            (grad,) = torch.autograd.grad(out[:, :, cy, cx].sum(), x)
    finally:
        for module, training in modes:
            module.training = training
    if image_size % h or image_size % w or image_size // h != image_size // w:
        raise ValueError(f"tap of {h}x{w} on {image_size} px images: not an integer stride")
    kernel = grad.abs().sum(1).mean(0).double()
    total = kernel.sum()
    if not torch.isfinite(total) or total <= 0:
        raise ValueError("the tap does not depend on the input (zero gradient everywhere)")
    # the centre location of the stride cell (i*s .. i*s + s - 1) is its first pixel + (s - 1) / 2:
    # the kernel is kept as measured; carry() maps location i to the window shifted by (i - c) * s
    return ReceptiveField((kernel / total).float(), image_size // h, (h, w), cy, cx)


__all__ = ["ReceptiveField", "effective_receptive_field"]
