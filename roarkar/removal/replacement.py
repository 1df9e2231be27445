"""Replacement of removed pixels, in every channel: ``mean`` (the dataset mean), ``zero`` (black),
``blur`` (a blurred copy) or ``linear`` (ROAD's noisy linear imputation,
:mod:`roarkar.removal.imputation`), one function for the protocols and the metrics.

Every function takes normalised images ``[N, C, H, W]`` and a bool mask ``removed [N, H, W]`` of
*pixels* (never C x H x W; docs/ARCHITECTURE.md, "Pitfalls").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from roarkar.blur import gaussian_blur
from roarkar.registry import Registry
from roarkar.removal.imputation import DEFAULT_TOL, check_pixel_mask, linear_impute

__all__ = [
    "DEFAULT_BLUR_SIGMA",
    "DEFAULT_NOISE",
    "REPLACEMENTS",
    "ReplaceArgs",
    "blur",
    "fill_removed",
    "image_draws",
    "replace",
]

DEFAULT_BLUR_SIGMA = 2.0  # the blur replacement's sigma, in pixels
DEFAULT_NOISE = 0.01  # ROAD's imputation noise, x the [0, 1] pixel range


@dataclass(frozen=True)
class ReplaceArgs:
    """What a replacement may need beside the images and the mask (each uses its own fields).

    ``pixel_mean`` / ``pixel_std``: the per-channel statistics the images were normalised with
    (``zero`` needs both; ``linear`` scales its noise by ``pixel_std``; None: images on the [0, 1]
    scale). ``blurred``: a blurred copy made already. ``generator`` / ``draw``: the source of the
    imputation noise, a generator or standard normal draws of the images' shape (:func:`image_draws`).
    """

    blurred: Tensor | None = None
    blur_sigma: float = DEFAULT_BLUR_SIGMA
    noise: float = DEFAULT_NOISE
    pixel_mean: Sequence[float] | Tensor | None = None
    pixel_std: Sequence[float] | Tensor | None = None
    generator: torch.Generator | None = None
    draw: Tensor | None = None
    solver: str = "cg"
    tol: float = DEFAULT_TOL
    max_iter: int | None = None


#: name -> ``fn(images, removed, args: ReplaceArgs)``; the protocols accept every name, the metrics
#: all but ``zero`` (roarkar.metrics.settings).
REPLACEMENTS: Registry[Callable[[Tensor, Tensor, ReplaceArgs], Tensor]] = Registry(
    "replacement", key="replacement"
)


def fill_removed(images: Tensor, removed: Tensor, fill: Tensor | float = 0.0) -> Tensor:
    """``images`` with every channel of the ``removed [N, H, W]`` locations set to ``fill``: a
    number, a per-channel tensor ``[C]`` or a tensor broadcasting against ``images``."""
    if isinstance(fill, Tensor) and fill.dim() == 1:
        fill = fill.view(1, -1, 1, 1).to(images)
    fill = torch.as_tensor(fill, dtype=images.dtype, device=images.device)
    return torch.where(removed.unsqueeze(1), fill, images)


def blur(images: Tensor, sigma: float) -> Tensor:
    """The blur replacement's blurred copy: :func:`roarkar.blur.gaussian_blur` with the kernel
    fitted inside the image (``fit=True``); ``sigma`` must be positive."""
    if sigma <= 0:
        raise ValueError(f"blur sigma must be positive; got {sigma!r}")
    return gaussian_blur(images, sigma, fit=True)


@REPLACEMENTS.register("mean")
def _mean(images: Tensor, removed: Tensor, args: ReplaceArgs) -> Tensor:
    """0 in normalised space: the dataset's per-channel mean (Samek et al.; Hooker et al.)."""
    return fill_removed(images, removed, 0.0)


@REPLACEMENTS.register("zero")
def _zero(images: Tensor, removed: Tensor, args: ReplaceArgs) -> Tensor:
    """Black: pixel value 0, i.e. ``-mean_c / std_c`` per channel in normalised space."""
    if args.pixel_mean is None or args.pixel_std is None:
        raise ValueError("replacement=zero needs the dataset's pixel_mean and pixel_std")
    std = torch.as_tensor(args.pixel_std, dtype=torch.float32)
    return fill_removed(
        images, removed, -torch.as_tensor(args.pixel_mean, dtype=torch.float32) / std
    )


@REPLACEMENTS.register("blur")
def _blur(images: Tensor, removed: Tensor, args: ReplaceArgs) -> Tensor:
    """The pixel of a Gaussian-blurred copy (``args.blurred`` if given, else blurred here)."""
    fill = args.blurred if args.blurred is not None else blur(images, args.blur_sigma)
    return torch.where(removed[:, None], fill, images)


@REPLACEMENTS.register("linear")
def _linear(images: Tensor, removed: Tensor, args: ReplaceArgs) -> Tensor:
    """ROAD's noisy linear imputation (noise ``args.noise`` x the pixel range)."""
    return linear_impute(
        images,
        removed,
        noise=args.noise,
        pixel_std=args.pixel_std,
        generator=args.generator,
        draw=args.draw,
        solver=args.solver,
        tol=args.tol,
        max_iter=args.max_iter,
    )


def replace(
    images: Tensor, removed: Tensor, kind: str, *, key: str | None = None, **args: object
) -> Tensor:
    """``images`` with the ``removed`` pixels replaced in every channel by the replacement ``kind``
    (a name of :data:`REPLACEMENTS`; an unknown one is named with ``key``); ``args`` are the fields
    of :class:`ReplaceArgs`."""
    check_pixel_mask(images, removed)
    return REPLACEMENTS.get(kind, key=key)(images, removed, ReplaceArgs(**args))


def image_draws(shape: Sequence[int], index: Tensor, seed: int) -> Tensor:
    """Standard normal draws ``[N, C, H, W]`` (float64, CPU) for the imputation noise, image ``i``'s
    from its own generator seeded by ``(seed, index[i])``: the same image gets the same noise in
    any batch, on any number of processes, after any resume."""
    n, *rest = shape
    if len(index) != n:
        raise ValueError(f"index has {len(index)} entries for {n} images")
    out = torch.empty((n, *rest), dtype=torch.float64)
    for row, i in enumerate(index.tolist()):
        g = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(i) * 7_919 + 3) % (2**63))
        out[row] = torch.randn(rest, generator=g, dtype=torch.float64)
    return out
