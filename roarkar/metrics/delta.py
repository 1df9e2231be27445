"""The Delta metrics (paper 003, Eq 9): a metric of an image's own map minus its mean over the maps
of ``K`` other images, and the draw of those partners."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["delta_metrics", "partners"]


def delta_metrics(own: dict[str, Tensor], others: dict[str, Tensor], k: int) -> dict[str, Tensor]:
    """Eq 9: ``delta_m(x) = m(x, s(x)) - 1/K sum_k m(x, s(xi_k))`` for every per-row metric ``m``.

    ``others`` holds rows ordered image-major (image 0's K partners first).
    """
    out = {}
    for name, value in own.items():
        if name in others and value.dim() == 1:
            out[f"delta_{name}"] = value - others[name].view(-1, k).mean(dim=1)
    return out


def partners(n: int, k: int, generator: torch.Generator) -> Tensor:
    """``[n, k]`` indices of ``k`` other images per image, drawn uniformly without replacement
    among the other ``n - 1`` (with replacement when ``k > n - 1``)."""
    if n < 2:
        raise ValueError("the Delta metrics need at least 2 images")
    if k <= n - 1:
        scores = torch.rand(n, n, generator=generator)
        scores.fill_diagonal_(math.inf)
        return scores.argsort(dim=1)[:, :k]
    draw = torch.randint(0, n - 1, (n, k), generator=generator)
    return draw + (draw >= torch.arange(n)[:, None]).long()
