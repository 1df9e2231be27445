"""Squashing and weighted combination of per-tap maps into one input-resolution map (paper Eq 3).

Each tap map is squashed to [0, 1] with a CDF whose parameters are fitted to that map alone (per image),
*then* upsampled bilinearly to the input size, then averaged with layer weights. Squashing before
upsampling is what the paper says it does ("technically, we compute gamma(s; mu, sigma) before we
upsample").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from roarkar.layer_weights import load_prior_weights
from roarkar.models.taps import TAPS, tap_names
from roarkar.saliency.stats import gamma_shape

#: Named layer weights for L1..L5 (paper Sec 3.2, Table 2): equal, rule-of-thumb linear, and the prior
#: accuracy of each layer's map.
WEIGHTS: dict[str, tuple[float, ...]] = {
    "equal": (1.0, 1.0, 1.0, 1.0, 1.0),
    "linear": (1.0, 2.0, 3.0, 4.0, 5.0),
    "prior": (0.18, 0.15, 0.37, 0.40, 0.72),
}
#: Names that mean the same rule for any number of taps (prior's values are the paper's five).
_ANY_COUNT = {
    "equal": lambda n: (1.0,) * n,
    "linear": lambda n: tuple(float(i + 1) for i in range(n)),
}
SQUASHES: tuple[str, ...] = ("normal", "gamma", "none")


def resolve_weights(weights: str | Sequence[float], n: int = len(TAPS)) -> tuple[float, ...]:
    """Layer weights from a name in :data:`WEIGHTS`, a ``prior_weights.json`` written by
    ``roarkar-tables --prior-weights`` (derived from one's own per-layer results), or a sequence of
    ``n`` non-negative floats. ``equal`` and ``linear`` fit any ``n`` (a network's tap count);
    ``prior`` holds the paper's values for five taps."""
    if isinstance(weights, str) and weights not in WEIGHTS and weights.endswith(".json"):
        weights = load_prior_weights(weights)
    if isinstance(weights, str):
        if weights not in WEIGHTS:
            raise ValueError(
                f"unknown weights {weights!r}: expected one of {', '.join(WEIGHTS)}, a .json file or a list"
            )
        values = _ANY_COUNT[weights](n) if weights in _ANY_COUNT else WEIGHTS[weights]
    else:
        try:
            values = tuple(float(w) for w in weights)
        except TypeError as err:
            raise ValueError(
                f"weights must be a name or a list of {n} floats, got {weights!r}"
            ) from err
    if len(values) != n:
        raise ValueError(f"weights need one value per map ({n}), got {len(values)}: {list(values)}")
    if any(not math.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
        raise ValueError(
            f"weights must be finite, non-negative and not all zero, got {list(values)}"
        )
    return values


def check_squash(squash: str) -> str:
    """``squash`` if it names a squashing function, else a ValueError listing them."""
    if squash not in SQUASHES:
        raise ValueError(f"unknown squash {squash!r}: expected one of {', '.join(SQUASHES)}")
    return squash


def _flat(maps: Tensor) -> Tensor:
    if maps.dim() != 3:
        raise ValueError(f"expected maps [B, H, W], got {tuple(maps.shape)}")
    return maps.float().flatten(1) if maps.dtype != torch.float64 else maps.flatten(1)


def squash_normal_cdf(maps: Tensor) -> Tensor:
    """Normal CDF of each map with the mean and sample std of that map's H x W values (per image).

    A constant map (std 0) becomes 0.5 everywhere instead of NaN.
    """
    flat = _flat(maps)
    # Two-pass sample std (as torch.std, but several times faster than its Welford kernel).
    z = flat - flat.mean(dim=1, keepdim=True)
    n = flat.shape[1]
    sd = torch.linalg.vector_norm(z, dim=1, keepdim=True) / math.sqrt(max(n - 1, 1))
    # Constant exactly when every value is equal (the mean's rounding can leave a tiny sd otherwise).
    lo, hi = torch.aminmax(flat, dim=1, keepdim=True)
    constant = (hi <= lo) | (sd <= 0)
    z.div_(sd.masked_fill(constant, 1.0))
    out = torch.special.ndtr(z).masked_fill_(constant, 0.5)
    return out.view_as(maps)


def squash_gamma_cdf(maps: Tensor, eps: float = 1e-7) -> Tensor:
    """Gamma CDF of each map (the authors' code default, ``GammaNorm2D``), per image.

    As in the authors' code, the map is shifted so its minimum is ``eps``, the gamma shape k is the
    maximum-likelihood estimate (Eq 11-13) and the scale is mean / k. A constant map becomes 0.5.
    """
    flat = _flat(maps)
    shifted = (flat - flat.min(dim=1, keepdim=True).values).double() + eps
    constant = (flat.max(dim=1).values - flat.min(dim=1).values) <= 0
    k = gamma_shape(shifted, dim=1, eps=0.0).clamp(1e-6, 1e6)
    theta = shifted.mean(dim=1) / k
    cdf = torch.special.gammainc(k[:, None], shifted / theta[:, None]).to(flat.dtype)
    out = torch.where(constant[:, None], torch.full_like(cdf, 0.5), cdf)
    return out.view_as(maps)


def squash_map(maps: Tensor, how: str = "normal") -> Tensor:
    """Squash each [B, H, W] map with ``how`` in :data:`SQUASHES` ("none" leaves it as it is)."""
    check_squash(how)
    if how == "normal":
        return squash_normal_cdf(maps)
    if how == "gamma":
        return squash_gamma_cdf(maps)
    return maps.float() if maps.dtype != torch.float64 else maps


def upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of [B, h, w] maps to ``size`` (align_corners=False)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[
        :, 0
    ]


def ordered_maps(tap_maps: Mapping[str, Tensor] | Sequence[Tensor]) -> list[Tensor]:
    """Per-tap maps as a list in L1..Ln order, from a mapping keyed by tap or a sequence."""
    if isinstance(tap_maps, Mapping):
        names = tap_names(len(tap_maps))
        if set(tap_maps) == set(names):
            return [tap_maps[t] for t in names]
        return list(tap_maps.values())
    return list(tap_maps)


def combine(
    tap_maps: Mapping[str, Tensor] | Sequence[Tensor],
    size: tuple[int, int],
    weights: str | Sequence[float] = "equal",
    squash: str = "normal",
) -> Tensor:
    """Eq 3: squash each tap map, upsample it to ``size``, and take the weighted mean -> [B, H, W].

    ``tap_maps`` is ordered L1..L5 (a mapping keyed by exactly the tap names is put in tap order).
    """
    maps = ordered_maps(tap_maps)
    w = resolve_weights(weights, len(maps))
    how = check_squash(squash)
    size = tuple(size)
    total = None
    for weight, m in zip(w, maps, strict=True):
        term = _upsample_images_last(squash_map(m, how), size)
        if total is None:
            layout = (
                torch.channels_last if _images_last(m.shape[0], size) else torch.contiguous_format
            )
            total = torch.empty_like(term, memory_format=layout)
            torch.mul(term, weight, out=total)
        else:
            total.add_(term, alpha=weight)
    return total.div_(sum(w))[0].contiguous()


def _upsample_images_last(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """:func:`upsample` of [B, h, w] maps as one [1, B, H, W] tensor (equal up to float rounding).

    Small outputs or many images go channels-last with the images as the channels, so the bilinear
    kernel vectorises over them (many times faster than [B, 1, h, w] at 32 px). A few large maps
    (ResNet-50 at 224 px, batch 2) go through the plain kernel, which is 3-4x faster there.
    """
    x = maps[None]
    if tuple(maps.shape[-2:]) == size:
        return x
    if not _images_last(maps.shape[0], size):
        return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[
            None, :, 0
        ]
    x = x.contiguous(memory_format=torch.channels_last)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _images_last(batch: int, size: tuple[int, int]) -> bool:
    return batch >= _IMAGES_LAST_MIN_BATCH or size[0] * size[1] <= _IMAGES_LAST_MAX_PIXELS


#: :func:`_upsample_images_last` uses the images-as-channels kernel from this many images, or for
#: outputs of at most this many pixels (measured crossover on a 2-core CPU, see the function).
_IMAGES_LAST_MIN_BATCH = 8
_IMAGES_LAST_MAX_PIXELS = 64 * 64


__all__ = [
    "SQUASHES",
    "WEIGHTS",
    "check_squash",
    "combine",
    "resolve_weights",
    "squash_gamma_cdf",
    "squash_map",
    "squash_normal_cdf",
    "upsample",
]
