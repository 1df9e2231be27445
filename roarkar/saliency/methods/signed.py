"""Signed saliency maps (Llorente et al., seed 004): positive, negative, active and inactive.

All four start from the vanilla input gradient g_c = dS_c/dI of each image's own target class c
(default: the predicted class, as in the paper).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from roarkar.saliency.base import PixelMethod
from roarkar.saliency.methods.gradients import input_gradient
from roarkar.saliency.registry import register

_REF = "Llorente et al. (Signed Saliency Maps)"


@register("positive", label="Positive Saliency", reference=f"{_REF}, Eq 3")
class PositiveSaliency(PixelMethod):
    """Eq 3: ``max_channel ReLU(dS_c/dI)`` -- where brightening the pixel raises the target logit.

    ``attribute``: ReLU(g) [B, C, H, W]. Channel reduction: maximum over colour channels (of
    non-negative values, so it equals max(0, max_channel g)).
    """

    sign: ClassVar[float] = 1.0

    def _attribute(self, images: Tensor, targets: Tensor | None) -> Tensor:
        return F.relu(self.sign * input_gradient(self.model, images, targets))

    def reduce(self, attributions: Tensor) -> Tensor:
        return attributions.amax(dim=1)


@register("negative", label="Negative Saliency", reference=f"{_REF}, Eq 4")
class NegativeSaliency(PositiveSaliency):
    """Eq 4: ``max_channel ReLU(-dS_c/dI)`` -- where darkening the pixel raises the target logit.

    ``attribute``: ReLU(-g) [B, C, H, W]. Channel reduction: maximum over colour channels.
    ``max(positive, negative)`` is the vanilla gradient map ``max_channel |g|``.
    """

    sign: ClassVar[float] = -1.0


def class_gradient_bounds(
    model: torch.nn.Module, images: Tensor, targets: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """For each image i: its target's gradient g_c, and the elementwise max and min over every
    *other* class q of dS_q/dI_i, all [B, C, H, W] (max -inf / min +inf when there is no other class).

    One forward pass; one backward pass per class (``sum_i S_q(x_i)`` gives every image's own
    dS_q/dx_i at once, images being independent in eval mode), keeping running bounds instead of all
    C gradients, so memory stays O(B x C x H x W) whatever the number of classes.
    """
    x = images.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        n = logits.shape[1]
        t = logits.argmax(dim=1) if targets is None else targets.to(logits.device)
        own = torch.zeros_like(x)
        upper = torch.full_like(x, float("-inf"))
        lower = torch.full_like(x, float("inf"))
        for q in range(n):
            (g,) = torch.autograd.grad(logits[:, q].sum(), x, retain_graph=q < n - 1)
            is_target = (t == q).view(-1, 1, 1, 1)
            own = torch.where(is_target, g, own)
            upper = torch.where(is_target, upper, torch.maximum(upper, g))
            lower = torch.where(is_target, lower, torch.minimum(lower, g))
    return own, upper, lower


@register("active", label="Active Saliency", reference=f"{_REF}, Eq 5")
class ActiveSaliency(PixelMethod):
    """Eq 5: ``max_channel { M_c * prod_{q != c} [M_c > dS_q/dI] }`` -- the target's gradient where it
    is strictly larger than every other class's gradient (brightening the pixel raises the target
    logit relative to *every* other logit), zero elsewhere.

    As in the authors' code, M_c in the comparison is the signed gradient dS_c/dI (per colour
    channel), and the result is reduced as the original saliency map (their Eq 2): ``attribute`` is
    the masked signed gradient [B, C, H, W]; channel reduction: max over colour channels of |.|.
    The target is the image's own class (default: the predicted class).
    """

    active: ClassVar[bool] = True

    def _attribute(self, images: Tensor, targets: Tensor | None) -> Tensor:
        own, upper, lower = class_gradient_bounds(self.model, images, targets)
        keep = own > upper if self.active else own < lower
        return torch.where(keep, own, torch.zeros_like(own))


@register("inactive", label="Inactive Saliency", reference=f"{_REF}, Eq 6")
class InactiveSaliency(ActiveSaliency):
    """Eq 6: ``max_channel { M_c * prod_{q != c} [M_c < dS_q/dI] }`` -- the target's gradient where it
    is strictly smaller than every other class's gradient (darkening the pixel raises the target
    logit relative to every other logit), zero elsewhere. ``attribute``: the masked signed gradient
    [B, C, H, W]; channel reduction: max over colour channels of |.| (authors' code).
    """

    active: ClassVar[bool] = False


__all__ = [
    "ActiveSaliency",
    "InactiveSaliency",
    "NegativeSaliency",
    "PositiveSaliency",
    "class_gradient_bounds",
]
