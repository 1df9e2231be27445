"""The base of the composable wrappers over any pixel attribution (the noise tunnel in
:mod:`~roarkar.saliency.methods.noise`, the path integral in :mod:`~roarkar.saliency.methods.path`).

The inner method is a registry name (``inner="guided_backprop"``, ``inner_params={...}``) or a
:class:`PixelMethod` on the same model; wrappers nest (noise over a path integral is Smoothed IG,
a path integral over SmoothGrad is Integrated SmoothGrad). Samples and path points are stacked along
the batch dimension and go through the network ``max_batch`` images at a time, on the images' device.
Targets are resolved once on the clean images (argmax when not given), one per image, so every noisy
sample and path point of image i is explained for image i's class.

Randomness: each image gets a seed hashed from the ``generator``'s state (not advanced) and the
image's own bytes; the image's noise for all its samples is one draw [samples, C, H, W] from a
generator seeded from that seed, and every nested stochastic call derives its own seed from it
(:mod:`~roarkar.saliency.methods.seeds`). The maps are therefore reproducible with a fixed generator
and do not depend on the other images of the batch, on ``batch_size`` or on ``max_batch``. With
``generator=None`` the seed is drawn from torch's global RNG.

Channel reduction: ``reduce`` of the outermost method (abs-max by default, see ``gradients``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from roarkar.saliency.base import PixelMethod, Targets
from roarkar.saliency.methods.gradients import ReducedPixelMethod
from roarkar.saliency.methods.seeds import image_seeds
from roarkar.saliency.registry import create

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Composite", "segments"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def segments(idx: list[int], sub: list[int]) -> Iterator[tuple[int, int, int, int]]:
    """Runs of one image in a chunk's (image, sub-index) lists: (image, first sub-index, start, stop)
    with chunk rows start:stop holding sub-indices first .. first + stop - start - 1 of that image."""
    start = 0
    for j in range(1, len(idx) + 1):
        if j == len(idx) or idx[j] != idx[start]:
            yield idx[start], sub[start], start, j
            start = j


class Composite(ReducedPixelMethod):
    """Base of the wrappers: builds the inner method, resolves targets once, batches expansions.

    Parameters shared by every wrapper: ``inner`` (registry name or PixelMethod on the same model),
    ``inner_params`` (for a named inner), ``max_batch`` (most images per forward/backward; None: all
    samples or path points of a chunk at once), ``mean``/``std`` (the dataset's normalisation on the
    0..1 scale; ImageNet's by default; used for the black baseline and passed on to a named inner
    wrapper together with ``max_batch`` unless ``inner_params`` sets them).
    """

    adds_noise: ClassVar[bool] = False

    def __init__(
        self,
        model: nn.Module,
        *,
        inner: str | PixelMethod = "gradient",
        inner_params: Mapping[str, Any] | None = None,
        max_batch: int | None = 64,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        batch_size: int | None = None,
        reduce: str = "abs_max",
        fused: bool = True,
    ):
        super().__init__(model, batch_size=batch_size, reduce=reduce, fused=fused)
        if max_batch is not None and (not isinstance(max_batch, int) or max_batch < 1):
            raise ValueError(f"max_batch must be a positive int or None, got {max_batch!r}")
        self.max_batch = max_batch
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError(f"need one mean and one positive std per channel: {mean}, {std}")
        if isinstance(inner, PixelMethod):
            if inner_params:
                raise ValueError("inner_params apply only to an inner method given by name")
            if inner.model.net is not self.model.net:
                raise ValueError("the inner method must be bound to the same model")
            self.inner = inner
        elif isinstance(inner, str):
            from roarkar.saliency.registry import describe

            params = dict(inner_params or {})
            accepted = describe(inner).params
            shared = {"max_batch": max_batch, "mean": self.mean, "std": self.std, "fused": fused}
            for key, value in shared.items():
                if key in accepted and key not in params:
                    params[key] = value
            method = create(inner, self.model, **params)
            if not isinstance(method, PixelMethod):
                raise TypeError(
                    f"inner method {inner!r} is a {method.kind} method, not a pixel attribution"
                )
            self.inner = method
        else:
            raise TypeError(f"inner must be a registry name or a PixelMethod, got {inner!r}")

    @property
    def stochastic(self) -> bool:
        """Whether this method or a nested one draws noise (needs per-image seeds)."""
        return self.adds_noise or bool(getattr(self.inner, "stochastic", False))

    # -- sizes -----------------------------------------------------------------------------------------
    @property
    def factor(self) -> int:
        """Inputs this wrapper makes per image (samples or path points)."""
        raise NotImplementedError

    @property
    def expansion(self) -> int:
        """Network images per input image, nested wrappers included."""
        return self.factor * getattr(self.inner, "expansion", 1)

    def _index_chunks(self, b: int) -> Iterator[tuple[list[int], list[int]]]:
        """(image index, sample index) lists over the b x factor expansion, image-major, each chunk
        small enough that it and the inner's own expansion fit in ``max_batch``."""
        k = self.factor
        total = b * k
        per = total if self.max_batch is None else self.max_batch
        per = max(1, per // getattr(self.inner, "expansion", 1))
        for start in range(0, total, per):
            flat = range(start, min(total, start + per))
            yield [i // k for i in flat], [i % k for i in flat]

    # -- running ---------------------------------------------------------------------------------------
    def _inner(self, images: Tensor, targets: Tensor, seeds: list[int] | None) -> Tensor:
        if isinstance(self.inner, Composite):
            return self.inner._attribute(images, targets, seeds=seeds)
        return self.inner._attribute(images, targets)

    def _resolve_targets(self, images: Tensor, targets: Tensor | None) -> Tensor:
        if targets is None:
            with torch.no_grad():
                targets = self.model(images).argmax(dim=1)
        return torch.as_tensor(targets, device=images.device).long()

    def attribute(
        self,
        images: Tensor,
        targets: Targets = None,
        *,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> Tensor:
        """Raw attributions [B, C, H, W] (images' dtype); ``generator`` seeds any noise."""
        self._check_images(images)
        targets_t = self._targets(targets, images.shape[0])
        outs = []
        with self.prepared():
            for sl in self._chunks(images.shape[0]):
                seeds = image_seeds(images[sl], generator) if self.stochastic else None
                t = None if targets_t is None else targets_t[sl]
                extra = {k: v[sl] for k, v in kwargs.items() if v is not None}
                outs.append(self._attribute(images[sl], t, seeds=seeds, **extra).detach())
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def _saliency(self, images, targets, *, relevance, generator):
        seeds = image_seeds(images, generator) if self.stochastic else None
        return self.reduce(self._attribute(images, targets, seeds=seeds))

    def _attribute(self, images: Tensor, targets: Tensor | None, seeds=None, **kwargs) -> Tensor:
        raise NotImplementedError
