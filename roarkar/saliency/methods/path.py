"""The straight-line path integral over any pixel attribution (Sundararajan et al. 2017; Nielsen
et al. Eqs 8, 9): integrated gradients and its nestings with other methods.

``PathIntegral`` integrates the inner method's raw attributions along the straight path from a
baseline to the image (by a rule of :mod:`~roarkar.saliency.methods.quadrature`) and multiplies by
(image - baseline): over the gradient it is integrated gradients. Inner methods, batching and
seeds: :mod:`roarkar.saliency.methods.wrappers`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from roarkar.blur import gaussian_blur
from roarkar.saliency.base import PixelMethod
from roarkar.saliency.methods.quadrature import quadrature
from roarkar.saliency.methods.seeds import image_seeds, mix_seed
from roarkar.saliency.methods.wrappers import Composite, segments
from roarkar.saliency.registry import register

__all__ = ["BASELINES", "PathIntegral", "path_integral"]

BASELINES = ("black", "zero", "mean", "blurred")


class PathIntegral(Composite):
    """(x - x') * integral over alpha in [0, 1] of inner(x' + alpha (x - x')), by ``rule`` with
    ``steps`` points (see :func:`quadrature`; default right Riemann sum, as the papers).

    ``baseline`` x': ``black`` (pixel value 0 of every channel, i.e. -mean/std after normalisation),
    ``zero`` (zeros in normalised space: the dataset-mean image), ``mean`` (each image's own channel
    means), ``blurred`` (the image blurred by a Gaussian of ``blur_sigma`` pixels).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        baseline: str = "black",
        steps: int = 50,
        rule: str = "riemann_right",
        blur_sigma: float = 5.0,
        **kwargs: Any,
    ):
        if baseline not in BASELINES:
            raise ValueError(
                f"unknown baseline {baseline!r}: expected one of {', '.join(BASELINES)}"
            )
        quadrature(rule, steps)  # validates
        super().__init__(model, **kwargs)
        self.baseline = baseline
        self.steps = int(steps)
        self.rule = rule
        self.blur_sigma = float(blur_sigma)

    @property
    def factor(self) -> int:
        return self.steps

    def baseline_images(self, images: Tensor) -> Tensor:
        """The baseline x' [B, C, H, W] for normalised images."""
        if self.baseline == "black":
            if images.shape[1] != len(self.mean):
                raise ValueError(
                    f"mean/std have {len(self.mean)} channels, images {images.shape[1]}"
                )
            mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype)
            std = torch.tensor(self.std, device=images.device, dtype=images.dtype)
            return (-mean / std).view(1, -1, 1, 1).expand_as(images)
        if self.baseline == "zero":
            return torch.zeros_like(images)
        if self.baseline == "mean":
            return images.mean(dim=(2, 3), keepdim=True).expand_as(images)
        return gaussian_blur(images, self.blur_sigma)

    def _attribute(self, images, targets, seeds=None) -> Tensor:
        targets = self._resolve_targets(images, targets)
        if seeds is None and self.stochastic:
            seeds = image_seeds(images, None)
        base = self.baseline_images(images)
        delta = images - base
        alphas, weights = quadrature(self.rule, self.steps)
        alphas_t = torch.tensor(alphas, device=images.device, dtype=images.dtype)
        weights_t = torch.tensor(weights, device=images.device, dtype=images.dtype)
        total = torch.zeros_like(images)
        for idx, step in self._index_chunks(images.shape[0]):
            where = torch.tensor(idx, device=images.device)
            at = torch.tensor(step, device=images.device)
            # x' + alpha (x - x') written straight into the chunk, one op per image it holds.
            x = images.new_empty((len(idx), *images.shape[1:]))
            for i, first, start, stop in segments(idx, step):
                path = alphas_t[first : first + stop - start].view(-1, 1, 1, 1)
                torch.addcmul(base[i], path, delta[i], out=x[start:stop])
            inner_seeds = (
                [mix_seed(seeds[i], k, 3) for i, k in zip(idx, step, strict=True)]
                if self.stochastic
                else None
            )
            a = self._inner(x, targets[where], inner_seeds).to(images.dtype)
            total.index_add_(0, where, a * weights_t[at].view(-1, 1, 1, 1))
        return total * delta


_IG = "Sundararajan et al. 2017 (integrated gradients)"

for _name, _label, _ref, _bind in [
    (
        "path_integral",
        "Path Integral",
        "Sundararajan et al. 2017 (path integral of any method)",
        {},
    ),
    ("integrated_gradients", "Integrated Gradients", _IG, {"inner": "gradient"}),
    (
        "integrated_smoothgrad",
        "Integrated SmoothGrad",
        "Nielsen et al. 2022, Eq 8 (path integral of SmoothGrad)",
        {"inner": "smoothgrad"},
    ),
    (
        "integrated_gbp",
        "Integrated Guided Backprop",
        "Nielsen et al. 2022, Eq 9 (path integral of guided backprop)",
        {"inner": "guided_backprop"},
    ),
]:
    register(_name, label=_label, reference=_ref, bind=_bind)(PathIntegral)


def path_integral(inner: PixelMethod, **params: Any) -> PathIntegral:
    """``PathIntegral`` around an existing method instance (same model)."""
    return PathIntegral(inner.model, inner=inner, **params)
