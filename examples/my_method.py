"""Your own saliency method in roarkar: the input gradient's magnitude, smoothed by a Gaussian.

    roarkar method=external method.params.target=examples/my_method.py:smoothed_gradient protocol=input

A pixel method takes the model, normalised images [B, C, H, W] and one target class per image [B],
and returns one map per image, [B, H, W] (or [B, C, H, W], reduced over the channels by roarkar).
"""

import torch
from torch import Tensor, nn

from roarkar.blur import gaussian_blur


def smoothed_gradient(
    model: nn.Module, images: Tensor, targets: Tensor, sigma: float = 1.0
) -> Tensor:
    """|d logit[target] / d image|, largest over the colour channels, blurred by ``sigma`` px."""
    x = images.detach().requires_grad_(True)
    score = model(x).gather(1, targets[:, None]).sum()  # each image's own target logit
    (grad,) = torch.autograd.grad(score, x)
    return gaussian_blur(grad.abs().amax(dim=1, keepdim=True), sigma)[:, 0]
