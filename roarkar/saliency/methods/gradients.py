"""Gradient-family pixel attributions (the later catalogue adds SmoothGrad, IG, GBP, ... here)."""

from __future__ import annotations

import torch
from torch import Tensor

from roarkar.saliency.base import PixelMethod, gather_targets
from roarkar.saliency.registry import register


def input_gradient(model: torch.nn.Module, images: Tensor, targets: Tensor | None) -> Tensor:
    """d logit_i[t_i] / d x_i for every image i of the batch, one target per image (default argmax).

    Only the input needs a gradient (weights are frozen by the caller); ``torch.autograd.grad`` leaves
    every ``.grad`` untouched.
    """
    x = images.detach().requires_grad_(True)
    with torch.enable_grad():
        own_logit, _ = gather_targets(model(x), targets)
        (grad,) = torch.autograd.grad(own_logit.sum(), x)
    return grad


@register("gradient", label="Gradient", reference="Simonyan et al. 2014 (vanilla gradient)")
class Gradient(PixelMethod):
    """Vanilla gradient of the target logit w.r.t. the input.

    ``attribute``: the raw gradient [B, C, H, W]. Channel reduction: absolute value, then the maximum
    over colour channels (Simonyan et al. 2014).
    """

    def _attribute(self, images: Tensor, targets: Tensor | None) -> Tensor:
        return input_gradient(self.model, images, targets)


__all__ = ["Gradient", "input_gradient"]
