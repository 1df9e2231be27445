"""The noise tunnel over any pixel attribution: SmoothGrad, SmoothGrad-squared, VarGrad (Smilkov et
al. 2017, Adebayo et al. 2018, Hooker et al. 2019) and their nestings with other methods.

``NoiseTunnel`` averages the inner method's raw attributions over ``samples`` noisy copies of the
image; the noise std is ``sigma`` times the image's range (max - min over all its values, in the
normalised space the model sees), as Hooker et al. (Captum's ``stdevs`` is absolute instead).
Inner methods, batching and seeds: :mod:`roarkar.saliency.methods.wrappers`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from roarkar.saliency.base import PixelMethod
from roarkar.saliency.methods.seeds import image_seeds, mix_seed, seeded_randn
from roarkar.saliency.methods.wrappers import Composite, segments
from roarkar.saliency.registry import register

__all__ = ["NOISE_KINDS", "NoiseTunnel", "noise_tunnel"]

NOISE_KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")


class NoiseTunnel(Composite):
    """Noise tunnel over ``inner``: ``kind`` ``smoothgrad`` (mean of the attributions over the noisy
    samples), ``smoothgrad_sq`` (mean of their squares) or ``vargrad`` (their variance, dividing by
    ``samples``, as Captum); ``samples`` noisy copies x + N(0, (sigma * (max x - min x))^2).

    ``attribute(images, targets, generator=..., noise=...)``: ``noise`` [B, samples, C, H, W] of
    standard-normal draws replaces the seeded ones (to compare with other implementations).
    """

    adds_noise: ClassVar[bool] = True

    def __init__(
        self,
        model: nn.Module,
        *,
        kind: str = "smoothgrad",
        samples: int = 15,
        sigma: float = 0.15,
        **kwargs: Any,
    ):
        if kind not in NOISE_KINDS:
            raise ValueError(
                f"unknown noise kind {kind!r}: expected one of {', '.join(NOISE_KINDS)}"
            )
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive int, got {samples!r}")
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0 (a fraction of the image range), got {sigma!r}")
        super().__init__(model, **kwargs)
        self.noise_kind = kind
        self.samples = samples
        self.sigma = float(sigma)

    @property
    def factor(self) -> int:
        return self.samples

    def _attribute(self, images, targets, seeds=None, noise: Tensor | None = None) -> Tensor:
        b = images.shape[0]
        shape = images.shape[1:]
        if noise is not None and tuple(noise.shape) != (b, self.samples, *shape):
            raise ValueError(
                f"noise must be [B, samples, C, H, W] = {(b, self.samples, *shape)}, "
                f"got {tuple(noise.shape)}"
            )
        inner_stochastic = bool(getattr(self.inner, "stochastic", False))
        if seeds is None and (noise is None or inner_stochastic):
            seeds = image_seeds(images, None)
        targets = self._resolve_targets(images, targets)
        scale = (self.sigma * (images.amax(dim=(1, 2, 3)) - images.amin(dim=(1, 2, 3)))).tolist()
        # Image i's noise: all its samples in one draw [samples, C, H, W] from its own seed (the same
        # whichever chunks they go through); the image a chunk boundary splits is drawn once.
        drawn: tuple[int, Tensor] | None = None
        sums = squares = None
        for idx, sample in self._index_chunks(b):
            x = images.new_empty((len(idx), *shape))
            for i, first, start, stop in segments(idx, sample):
                if noise is not None:
                    eps = noise[i, first : first + stop - start].to(images)
                else:
                    if drawn is None or drawn[0] != i:
                        drawn = (
                            i,
                            seeded_randn((self.samples, *shape), mix_seed(seeds[i], 1), images),
                        )
                    eps = drawn[1][first : first + stop - start]
                torch.add(images[i], eps, alpha=scale[i], out=x[start:stop])
            where = torch.tensor(idx, device=images.device)
            inner_seeds = (
                [mix_seed(seeds[i], s, 2) for i, s in zip(idx, sample, strict=True)]
                if inner_stochastic
                else None
            )
            a = self._inner(x, targets[where], inner_seeds).to(images.dtype)
            if self.noise_kind != "smoothgrad_sq":
                sums = _accumulate(sums, images, where, a)
            if self.noise_kind != "smoothgrad":
                squares = _accumulate(squares, images, where, a.square_())
        if self.noise_kind == "smoothgrad":
            return sums / self.samples
        if self.noise_kind == "smoothgrad_sq":
            return squares / self.samples
        mean = sums / self.samples
        return squares / self.samples - mean * mean

    def attribute(self, images, targets=None, *, generator=None, noise=None) -> Tensor:
        return super().attribute(images, targets, generator=generator, noise=noise)


def _accumulate(total: Tensor | None, images: Tensor, where: Tensor, rows: Tensor) -> Tensor:
    """``total[where[j]] += rows[j]`` for every row j (``total`` zeros like ``images`` at first)."""
    if total is None:
        total = torch.zeros_like(images)
    return total.index_add_(0, where, rows)


_SG = "Smilkov et al. 2017 (SmoothGrad)"
_SQ = "Smilkov et al. 2017; Hooker et al. 2019 (SmoothGrad-squared)"

for _name, _label, _ref, _bind in [
    ("noise", "Noise Tunnel", "Smilkov et al. 2017 (noise tunnel over any method)", {}),
    ("smoothgrad", "SmoothGrad", _SG, {"kind": "smoothgrad"}),
    ("smoothgrad_sq", "SmoothGrad Sq.", _SQ, {"kind": "smoothgrad_sq"}),
    (
        "vargrad",
        "VarGrad",
        "Adebayo et al. 2018; Hooker et al. 2019 (VarGrad)",
        {"kind": "vargrad"},
    ),
    (
        "smoothed_ig",
        "Smoothed Integrated Gradients",
        "Nielsen et al. 2022, Eq 6 (SmoothGrad over integrated gradients)",
        {"kind": "smoothgrad", "inner": "integrated_gradients"},
    ),
    (
        "smoothed_gbp",
        "Smoothed Guided Backprop",
        "Nielsen et al. 2022, Eq 7 (SmoothGrad over guided backprop)",
        {"kind": "smoothgrad", "inner": "guided_backprop"},
    ),
    (
        "gradient_smoothgrad_sq",
        "Gradient -w- SmoothGrad Sq.",
        "Hooker et al. 2019; Mundhenk et al. 2020, Table 5",
        {"kind": "smoothgrad_sq", "inner": "gradient"},
    ),
    (
        "guided_backprop_smoothgrad_sq",
        "Guided Backprop -w- SmoothGrad Sq.",
        "Hooker et al. 2019; Mundhenk et al. 2020, Table 5",
        {"kind": "smoothgrad_sq", "inner": "guided_backprop"},
    ),
    (
        "integrated_gradients_smoothgrad_sq",
        "Integrated Grad. -w- SmoothGrad Sq.",
        "Hooker et al. 2019; Mundhenk et al. 2020, Table 5",
        {"kind": "smoothgrad_sq", "inner": "integrated_gradients"},
    ),
]:
    register(_name, label=_label, reference=_ref, bind=_bind)(NoiseTunnel)


def noise_tunnel(inner: PixelMethod, **params: Any) -> NoiseTunnel:
    """``NoiseTunnel`` around an existing method instance (same model)."""
    return NoiseTunnel(inner.model, inner=inner, **params)
