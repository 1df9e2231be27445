"""Composable wrappers over any pixel attribution: a noise tunnel and a straight-line path integral.

``NoiseTunnel`` (SmoothGrad, SmoothGrad-squared, VarGrad; Smilkov et al. 2017, Adebayo et al. 2018,
Hooker et al. 2019) averages the inner method's raw attributions over ``samples`` noisy copies of the
image; the noise std is ``sigma`` times the image's range (max - min over all its values, in the
normalised space the model sees), as Hooker et al. (Captum's ``stdevs`` is absolute instead).

``PathIntegral`` (Sundararajan et al. 2017; Nielsen et al. Eqs 8, 9) integrates the inner method's
raw attributions along the straight path from a baseline to the image and multiplies by
(image - baseline): over the gradient it is integrated gradients.

The inner method is a registry name (``inner="guided_backprop"``, ``inner_params={...}``) or a
:class:`PixelMethod` on the same model; wrappers nest (noise over a path integral is Smoothed IG,
a path integral over SmoothGrad is Integrated SmoothGrad). Samples and path points are stacked along
the batch dimension and go through the network ``max_batch`` images at a time, on the images' device.
Targets are resolved once on the clean images (argmax when not given), one per image, so every noisy
sample and path point of image i is explained for image i's class.

Randomness: each image gets a seed hashed from the ``generator``'s state (not advanced) and the
image's own bytes; the image's noise for all its samples is one draw [samples, C, H, W] from a
generator seeded from that seed, and every nested stochastic call derives its own seed from it. The maps are therefore reproducible with a fixed generator and do not depend on the other
images of the batch, on ``batch_size`` or on ``max_batch``. With ``generator=None`` the seed is drawn
from torch's global RNG.

Channel reduction: ``reduce`` of the outermost method (abs-max by default, see ``gradients``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from roarkar.saliency.base import PixelMethod, Targets
from roarkar.saliency.methods.gradients import ReducedPixelMethod
from roarkar.saliency.methods.sampling import (
    gaussian_blur,
    image_seeds,
    mix_seed,
    quadrature,
    seeded_randn,
    segments,
)
from roarkar.saliency.registry import create, register

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NOISE_KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")
BASELINES = ("black", "zero", "mean", "blurred")
# -- the wrappers ------------------------------------------------------------------------------------------


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


# -- registry names -------------------------------------------------------------------------------------

_SG = "Smilkov et al. 2017 (SmoothGrad)"
_SQ = "Smilkov et al. 2017; Hooker et al. 2019 (SmoothGrad-squared)"
_IG = "Sundararajan et al. 2017 (integrated gradients)"


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


def noise_tunnel(inner: PixelMethod, **params: Any) -> NoiseTunnel:
    """``NoiseTunnel`` around an existing method instance (same model)."""
    return NoiseTunnel(inner.model, inner=inner, **params)


def path_integral(inner: PixelMethod, **params: Any) -> PathIntegral:
    """``PathIntegral`` around an existing method instance (same model)."""
    return PathIntegral(inner.model, inner=inner, **params)


__all__ = [
    "BASELINES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NOISE_KINDS",
    "Composite",
    "NoiseTunnel",
    "PathIntegral",
    "noise_tunnel",
    "path_integral",
]
