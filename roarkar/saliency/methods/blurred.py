"""The blur control: any method's map blurred by a Gaussian (Song et al.'s pitfall of ROAR).

A blurred map spreads each salient pixel over its neighbourhood, so ROAR removes the evidence
together with the ring around it; if ROAR ranks ``blurred`` above its own inner map, it rewards the
blur, not the map. The wrapper takes any registered method by name (``inner``, ``inner_params``),
the ``ground_truth`` control included (``relevance`` is passed through), and blurs its ``[B, H, W]``
map with :func:`roarkar.blur.gaussian_blur` (``sigma`` in pixels of the map, kernel fitted inside
the map: weights summing to 1, so a constant map stays constant and an interior map keeps its
total).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from roarkar.blur import gaussian_blur
from roarkar.saliency.base import SaliencyMethod
from roarkar.saliency.registry import create, describe, register

__all__ = ["DEFAULT_SIGMA", "BlurredMap"]

DEFAULT_SIGMA = 2.0  # pixels of the map


@register(
    "blurred",
    label="Blurred",
    reference="Song et al. (blurring a map flatters ROAR); Gaussian blur of any method's map",
)
class BlurredMap(SaliencyMethod):
    """``inner``'s map blurred by a Gaussian of ``sigma`` pixels (``sigma = 0``: the map itself).

    ``mean``/``std`` (the dataset's normalisation, set by the protocols for methods that accept
    them) and ``max_batch`` are passed on to a named inner that accepts them, unless
    ``inner_params`` sets them. Input maps only (no per-tap map).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        inner: str = "gradient",
        inner_params: Mapping[str, Any] | None = None,
        sigma: float = DEFAULT_SIGMA,
        mean: Any = None,
        std: Any = None,
        max_batch: int | None = None,
        batch_size: int | None = None,
    ):
        super().__init__(model, batch_size=batch_size)
        if not isinstance(inner, str):
            raise TypeError(f"blurred: inner must be a registry name, got {inner!r}")
        if not float(sigma) >= 0:
            raise ValueError(f"blurred: sigma must be >= 0 (pixels of the map), got {sigma!r}")
        self.sigma = float(sigma)
        params = dict(inner_params or {})
        accepted = describe(inner).params  # an unknown inner names the registered ones
        shared = {"mean": mean, "std": std, "max_batch": max_batch}
        for key, value in shared.items():
            if value is not None and key in accepted and key not in params:
                params[key] = value
        self.inner = create(inner, self.model, **params)
        self.uses_model = self.inner.uses_model  # the inner sets and restores the model's state

    def _saliency(self, images, targets, *, relevance, generator) -> Tensor:
        maps = self.inner.saliency(images, targets, relevance=relevance, generator=generator)
        return gaussian_blur(maps[:, None], self.sigma, fit=True)[:, 0]
