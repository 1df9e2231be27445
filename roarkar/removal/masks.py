"""Ranks -> count rule -> mask: which pixels (or tap locations) a removal takes, for the protocols
(KAR / ROAR) and the metrics (MoRF / LeRF) alike.

Peer tools rank with ``top_k`` (biased to raster order on ties) or threshold at a percentile (a
tied map removes everything); here every map is ranked once with ties broken by a seeded random
permutation (:func:`saliency_ranks`), and a removal of ``k`` locations is one comparison of the
ranks (:func:`order_mask`; docs/ARCHITECTURE.md, "Pitfalls"). The vocabulary's mapping is in
:data:`MODE_ORDER` and the package docstring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "COUNTS",
    "MODES",
    "MODE_ORDER",
    "ORDERS",
    "check_percent",
    "check_selects",
    "count_for",
    "keep_mask_from_ranks",
    "order_mask",
    "removal_mask",
    "removed_count",
    "removed_counts",
    "saliency_ranks",
    "topk_mask",
]

ORDERS = ("morf", "lerf")  # most / least relevant first: which end of the ranking is removed
MODES = ("kar", "roar")  # what a protocol's percent means: the top kept / the top removed
COUNTS = ("round", "floor")  # count rules: round-half-up(p * n), or ROAD's and Quantus's int(p * n)

#: A protocol's mode as a removal order: ROAR removes the top ``p`` (MoRF, ``k = count(p)``);
#: KAR keeps the top ``p``, i.e. removes the other ``n - count(p)`` least relevant first (LeRF).
MODE_ORDER = {"roar": "morf", "kar": "lerf"}


def count_for(fraction: float, locations: int) -> int:
    """Number of locations selected: ``round(fraction * locations)``, halves rounded up."""
    if not 0.0 <= fraction <= 1.0 or math.isnan(fraction):
        raise ValueError(f"fraction must be in [0, 1]; got {fraction!r}")
    return int(math.floor(fraction * locations + 0.5))


def check_selects(fraction: float, locations: int, what: str) -> int:
    """``count_for(fraction, locations)``, refused (a ValueError naming ``what``) when it selects
    no location or every one: KAR would keep nothing or everything, ROAR remove nothing or
    everything, and the cell's accuracy would say nothing about the map."""
    k = count_for(fraction, locations)
    if k in (0, locations):
        raise ValueError(
            f"{what}: {fraction * 100:g} % of its {locations} locations rounds to {k}, so a cell "
            f"would keep or remove {'no' if k == 0 else 'every'} location; choose a percent that "
            f"selects between 1 and {locations - 1} of them"
        )
    return k


def removed_count(fraction: float, hw: int, order: str, rule: str = "round") -> int:
    """Pixels removed when a fraction ``fraction`` of the ``hw`` pixels is removed in ``order``.

    ``round``: ``round(fraction * hw)``, halves up, either order. ``floor`` (ROAD, Quantus): MoRF
    removes ``int(fraction * hw)``; LeRF keeps ROAD's ``int((1 - fraction) * hw)`` most salient pixels
    and removes the rest. Products are rounded to 9 decimals before the floor, so float noise in
    ``fraction`` (0.29 * 100 = 28.999...) does not cost a pixel.
    """
    f = float(fraction)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"fraction must be in [0, 1]; got {fraction!r}")
    if order not in ORDERS:
        raise ValueError(f"order={order!r}: expected one of {', '.join(ORDERS)}")
    if rule == "round":
        return count_for(f, hw)
    if rule != "floor":
        raise ValueError(f"count={rule!r}: expected one of {', '.join(COUNTS)}")
    if order == "morf":
        return math.floor(round(f * hw, 9))
    return hw - math.floor(round((1.0 - f) * hw, 9))


def removed_counts(fractions: Sequence[float], hw: int, device, order: str, rule: str) -> Tensor:
    """Pixels removed at each fraction (clipped to [0, 1]), by :func:`removed_count`."""
    return torch.tensor(
        [removed_count(min(max(f, 0.0), 1.0), hw, order, rule) for f in fractions],
        dtype=torch.long,
        device=device,
    )


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
    Storing ranks makes an exact-k mask at any percent one comparison (:func:`order_mask`).
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


def order_mask(ranks: Tensor, k: Tensor | int, order: str) -> Tensor:
    """The one mask: locations removed when ``k`` are removed in ``order`` from ``ranks [..., H, W]``
    (``k`` an int or a tensor broadcasting against ``ranks``). MoRF removes the ``k`` of rank
    ``< k``; LeRF the ``k`` of rank ``>= H*W - k``."""
    if order == "morf":
        return ranks < k
    if order == "lerf":
        return ranks >= ranks.shape[-1] * ranks.shape[-2] - k
    raise ValueError(f"order={order!r}: expected one of {', '.join(ORDERS)}")


def removal_mask(ranks: Tensor, counts: Tensor, order: str) -> Tensor:
    """Pixels removed ``[R, S, H, W]`` for per-row counts ``[R, S]`` (or ``[S]``) of ranks
    ``[R, H, W]``: :func:`order_mask` at every step (the metrics' removal curves)."""
    if ranks.dim() != 3:
        raise ValueError(
            f"ranks must be per pixel [N, H, W]; got shape {tuple(ranks.shape)} "
            "(rank what you mask: H x W pixels, never C x H x W)"
        )
    counts = counts.to(ranks.device)
    if counts.dim() == 1:
        counts = counts.expand(ranks.shape[0], -1)
    return order_mask(ranks[:, None], counts[:, :, None, None], order)


def keep_mask_from_ranks(ranks: Tensor, mode: str, fraction: float) -> Tensor:
    """Locations that stay visible ``[..., H, W]``: KAR keeps the top ``round(fraction * H*W)``,
    ROAR removes them (:func:`order_mask` in the order :data:`MODE_ORDER` names)."""
    if mode not in MODE_ORDER:
        raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    hw = ranks.shape[-1] * ranks.shape[-2]
    k = count_for(fraction, hw)
    return ~order_mask(ranks, k if mode == "roar" else hw - k, MODE_ORDER[mode])


def topk_mask(
    saliency: Tensor, fraction: float, generator: torch.Generator | None = None
) -> Tensor:
    """Mark exactly ``round(fraction * H * W)`` most salient locations per image (ties at random).

    ``saliency`` is [B, H, W]; returns a bool tensor of the same shape.
    """
    ranks = saliency_ranks(saliency, generator)
    return order_mask(ranks, count_for(fraction, ranks.shape[1] * ranks.shape[2]), "morf")
