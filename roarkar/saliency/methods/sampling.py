"""What the composable wrappers draw on, apart from the wrappers themselves: per-image seeds that
do not depend on the batch, seeded noise, the runs of one image in a stacked chunk, quadrature rules
for path integrals, and the Gaussian blur of the 'blurred' baseline."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "RULES",
    "gaussian_blur",
    "image_seeds",
    "mix_seed",
    "quadrature",
    "seeded_randn",
    "segments",
]

RULES = ("riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid", "gausslegendre")
_MASK63 = (1 << 63) - 1
_MASK64 = (1 << 64) - 1


# -- seeds ----------------------------------------------------------------------------------------------


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (splitmix64 chain): distinct inputs give unrelated seeds."""
    h = 0
    for v in values:
        h = _splitmix(h ^ (v & _MASK64))
    return h & _MASK63


def image_seeds(images: Tensor, generator: torch.Generator | None) -> list[int]:
    """One seed per image from the generator's state (left unchanged) and the image's bytes."""
    if generator is not None:
        state = generator.get_state().cpu().numpy().tobytes()
    else:
        state = int(torch.randint(0, 2**62, (1,))).to_bytes(8, "little")
    raw = images.detach().cpu().contiguous()
    prefix = hashlib.blake2b(state, digest_size=8)
    prefix.update(str(raw.dtype).encode())
    seeds = []
    for image in raw:
        h = prefix.copy()
        h.update(image.flatten().view(torch.uint8).numpy())  # the buffer itself, no bytes copy
        seeds.append(int.from_bytes(h.digest(), "little") & _MASK63)
    return seeds


def seeded_randn(shape: tuple[int, ...], seed: int, like: Tensor) -> Tensor:
    """Standard normal noise of ``shape`` from its own generator seeded with ``seed``, on the
    device and in the dtype of ``like``."""
    gen = torch.Generator(device=like.device).manual_seed(seed)
    return torch.randn(shape, generator=gen, device=like.device, dtype=like.dtype)


def segments(idx: list[int], sub: list[int]) -> Iterator[tuple[int, int, int, int]]:
    """Runs of one image in a chunk's (image, sub-index) lists: (image, first sub-index, start, stop)
    with chunk rows start:stop holding sub-indices first .. first + stop - start - 1 of that image."""
    start = 0
    for j in range(1, len(idx) + 1):
        if j == len(idx) or idx[j] != idx[start]:
            yield idx[start], sub[start], start, j
            start = j


# -- quadrature ---------------------------------------------------------------------------------------------


def quadrature(rule: str, steps: int) -> tuple[list[float], list[float]]:
    """Points ``alphas`` in [0, 1] and weights (summing to 1) of a rule for the integral over [0, 1].

    Riemann right (the default; Sundararajan et al.'s and Hooker et al.'s sum of k/m, k = 1..m), left,
    middle; trapezoid over ``steps`` equally spaced points including both ends (weights 1/(m-1), ends
    halved -- Captum's trapezoid uses 1/m, so its weights sum to (m-1)/m); Gauss-Legendre (Captum's
    default). Points are exact float64 values (Captum rounds its Riemann points to float32).
    """
    m = int(steps)
    if m < 1 or (rule == "riemann_trapezoid" and m < 2):
        raise ValueError(f"steps must be >= 1 (>= 2 for the trapezoid rule), got {steps!r}")
    if rule == "riemann_right":
        return [k / m for k in range(1, m + 1)], [1 / m] * m
    if rule == "riemann_left":
        return [k / m for k in range(m)], [1 / m] * m
    if rule == "riemann_middle":
        return [(k + 0.5) / m for k in range(m)], [1 / m] * m
    if rule == "riemann_trapezoid":
        weights = [1 / (m - 1)] * m
        weights[0] = weights[-1] = 0.5 / (m - 1)
        return [k / (m - 1) for k in range(m)], weights
    if rule == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(m)
        return (0.5 * (1 + x)).tolist(), (0.5 * w).tolist()
    raise ValueError(f"unknown integration rule {rule!r}: expected one of {', '.join(RULES)}")


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur per channel (kernel radius ceil(3 sigma), reflect padding)."""
    if sigma <= 0:
        return images
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    mode = "reflect" if min(images.shape[-2:]) > radius else "replicate"
    x = F.pad(images, (radius, radius, 0, 0), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, radius, radius), mode=mode)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
