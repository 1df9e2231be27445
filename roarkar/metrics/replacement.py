"""Replacement of removed pixels, in every channel: the dataset mean, a blurred copy, or ROAD's
noisy linear imputation (:mod:`roarkar.metrics.imputation`).

Every function takes normalised images ``[N, C, H, W]`` and a bool mask ``removed [N, H, W]`` of
*pixels* (never C x H x W; docs/ARCHITECTURE.md, "Pitfalls").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from roarkar.blur import gaussian_blur
from roarkar.metrics.imputation import DEFAULT_TOL, check_pixel_mask, linear_impute

__all__ = ["REPLACEMENTS", "blur", "replace"]

REPLACEMENTS = ("mean", "blur", "linear")


def blur(images: Tensor, sigma: float) -> Tensor:
    """The blur replacement's blurred copy: :func:`roarkar.blur.gaussian_blur` with the kernel
    fitted inside the image (``fit=True``); ``sigma`` must be positive."""
    if sigma <= 0:
        raise ValueError(f"blur sigma must be positive; got {sigma!r}")
    return gaussian_blur(images, sigma, fit=True)


def replace(
    images: Tensor,
    removed: Tensor,
    kind: str,
    *,
    blurred: Tensor | None = None,
    blur_sigma: float = 2.0,
    noise: float = 0.01,
    pixel_std: Sequence[float] | Tensor | None = None,
    generator: torch.Generator | None = None,
    solver: str = "cg",
    tol: float = DEFAULT_TOL,
    max_iter: int | None = None,
) -> Tensor:
    """``images`` with the ``removed`` pixels replaced in every channel.

    ``mean``: 0 in normalised space, i.e. the dataset's per-channel mean (Samek et al.; Hooker);
    ``blur``: the pixel of a Gaussian-blurred copy (``blurred`` if given, else blurred here);
    ``linear``: ROAD's noisy linear imputation (noise ``noise`` x the pixel range, see
    :func:`linear_impute`).
    """
    check_pixel_mask(images, removed)
    if kind == "mean":
        return images.masked_fill(removed[:, None], 0.0)
    if kind == "blur":
        fill = blurred if blurred is not None else blur(images, blur_sigma)
        return torch.where(removed[:, None], fill, images)
    if kind == "linear":
        return linear_impute(
            images,
            removed,
            noise=noise,
            pixel_std=pixel_std,
            generator=generator,
            solver=solver,
            tol=tol,
            max_iter=max_iter,
        )
    raise ValueError(f"replacement={kind!r}: expected one of {', '.join(REPLACEMENTS)}")
