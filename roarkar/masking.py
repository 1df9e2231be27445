"""Exact top-k saliency masks with random tie-breaking, and replacement of masked pixels.

Peer tools rank with ``top_k`` (biased to raster order on ties) or threshold at a percentile (a
tied map removes everything); here every image gets exactly ``round(fraction * H * W)`` locations,
ties broken by a seeded random permutation (docs/ARCHITECTURE.md, "Pitfalls").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MODES = ("kar", "roar")


def count_for(fraction: float, locations: int) -> int:
    """Number of locations selected: ``round(fraction * locations)``, halves rounded up."""
    if not 0.0 <= fraction <= 1.0 or math.isnan(fraction):
        raise ValueError(f"fraction must be in [0, 1]; got {fraction!r}")
    return int(math.floor(fraction * locations + 0.5))


def check_percent(percent: float, what: str = "percent") -> float:
    """A percent in (0, 100) as a fraction; a ValueError naming the value otherwise."""
    try:
        value = float(percent)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number in (0, 100); got {percent!r}") from None
    if not 0.0 < value < 100.0:
        raise ValueError(f"{what} must be in (0, 100) (exclusive); got {percent!r}")
    return value / 100.0


def saliency_ranks(saliency: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Rank of every location per image, 0 = most salient, ties broken at random.

    ``saliency`` is [B, H, W]; returns int64 [B, H, W] holding a permutation of 0..H*W-1 per image.
    Storing ranks makes an exact-k mask at any percent one comparison: ``ranks < k``.
    """
    if saliency.dim() != 3:
        raise ValueError(f"saliency must be [B, H, W]; got shape {tuple(saliency.shape)}")
    if not torch.isfinite(saliency).all():
        raise ValueError("saliency contains NaN or infinite values; cannot rank it")
    batch, height, width = saliency.shape
    flat = saliency.reshape(batch, -1).float()
    noise = torch.rand(flat.shape, generator=generator, device="cpu").to(flat.device)
    shuffle = noise.argsort(dim=1)  # a random permutation per image decides ties
    order = flat.gather(1, shuffle).argsort(dim=1, descending=True, stable=True)
    locations = shuffle.gather(1, order)  # locations from most to least salient
    ranks = torch.empty_like(locations)
    ranks.scatter_(
        1, locations, torch.arange(flat.shape[1], device=flat.device).expand_as(locations)
    )
    return ranks.reshape(batch, height, width)


def topk_mask(
    saliency: Tensor, fraction: float, generator: torch.Generator | None = None
) -> Tensor:
    """Mark exactly ``round(fraction * H * W)`` most salient locations per image (ties at random).

    ``saliency`` is [B, H, W]; returns a bool tensor of the same shape.
    """
    ranks = saliency_ranks(saliency, generator)
    k = count_for(fraction, ranks.shape[1] * ranks.shape[2])
    return ranks < k


def keep_mask_from_ranks(ranks: Tensor, mode: str, fraction: float) -> Tensor:
    """Locations that stay visible: KAR keeps the top ``fraction``, ROAR removes it."""
    k = count_for(fraction, ranks.shape[-1] * ranks.shape[-2])
    if mode == "kar":
        return ranks < k
    if mode == "roar":
        return ranks >= k
    raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")


def apply_keep_mask(images: Tensor, keep: Tensor, fill: Tensor | float = 0.0) -> Tensor:
    """Replace every channel of the locations not in ``keep`` [B, H, W] with ``fill``.

    On normalised images, ``fill=0`` is the dataset's per-channel mean (Hooker et al.'s choice).
    ``fill`` may also be a per-channel tensor [C].
    """
    keep = keep.unsqueeze(1)
    if isinstance(fill, Tensor) and fill.dim() == 1:
        fill = fill.view(1, -1, 1, 1).to(images)
    return torch.where(
        keep, images, torch.as_tensor(fill, dtype=images.dtype, device=images.device)
    )
