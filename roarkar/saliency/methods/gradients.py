"""Gradient-family pixel attributions: vanilla gradient, guided backprop, gradient x input.

The noise and path-integral wrappers that build SmoothGrad, SmoothGrad-squared, VarGrad, integrated
gradients and their combinations on top of these live in :mod:`roarkar.saliency.methods.wrappers`.

Channel reduction (``reduce``, every method here and in the wrappers): ``"abs_max"`` (default) is the
absolute value, then the maximum over the colour channels (Simonyan et al. 2014; the paper's Eq for
the gradient map); ``"abs_sum"`` is the absolute value summed over the channels, as the PAIR
``saliency`` library's ``VisualizeImageGrayscale`` that Hooker et al.'s group used (without its
99th-percentile clip, which would tie the top 1 % of pixels). For the squared and variance ensembles
the attributions are already non-negative, so both reduce the non-negative map.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from roarkar.models.fused import channels_last_input, inference_copy
from roarkar.saliency.base import HookSet, PixelMethod, gather_targets
from roarkar.saliency.registry import register

REDUCTIONS = ("abs_max", "abs_sum")


def input_gradient(model: torch.nn.Module, images: Tensor, targets: Tensor | None) -> Tensor:
    """d logit_i[t_i] / d x_i for every image i of the batch, one target per image (default argmax).

    Only the input needs a gradient (weights are frozen by the caller); ``torch.autograd.grad`` leaves
    every ``.grad`` untouched.
    """
    x = images.detach().requires_grad_(True)
    with torch.enable_grad():
        own_logit, _ = gather_targets(model(x), targets)
        (grad,) = torch.autograd.grad(own_logit.sum(), x)
    return grad


def reduce_channels(attributions: Tensor, how: str) -> Tensor:
    """[B, C, H, W] -> [B, H, W] by ``how`` in :data:`REDUCTIONS` (see the module docstring)."""
    if how == "abs_max":
        return attributions.abs().amax(dim=1)
    if how == "abs_sum":
        return attributions.abs().sum(dim=1)
    raise ValueError(f"unknown channel reduction {how!r}: expected one of {', '.join(REDUCTIONS)}")


class ReducedPixelMethod(PixelMethod):
    """A pixel method whose channel reduction is the ``reduce`` parameter (default ``abs_max``).

    ``fused`` (default True): gradients go through :func:`~roarkar.models.fused.inference_copy`, the
    model with BatchNorm folded into its convolutions and channels-last activations -- the same
    function up to float rounding, 1.25-1.35x faster on a CPU. False runs the model itself (for
    hooks of one's own on its modules).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        batch_size: int | None = None,
        reduce: str = "abs_max",
        fused: bool = True,
    ):
        super().__init__(model, batch_size=batch_size)
        if reduce not in REDUCTIONS:
            raise ValueError(
                f"unknown channel reduction {reduce!r}: expected one of {', '.join(REDUCTIONS)}"
            )
        self.reduction = reduce
        self.fused = bool(fused)

    def reduce(self, attributions: Tensor) -> Tensor:
        return reduce_channels(attributions, self.reduction)

    @property
    def network(self) -> nn.Module:
        """The network the gradients run through (see ``fused``)."""
        return inference_copy(self.model.net) if self.fused else self.model

    def input_gradient(
        self, images: Tensor, targets: Tensor | None, network: nn.Module | None = None
    ) -> Tensor:
        """:func:`input_gradient` through ``network`` (default :attr:`network`, looked up once by a
        caller that also hooks it), in the images' memory layout."""
        network = self.network if network is None else network
        if not self.fused:
            return input_gradient(network, images, targets)
        grad = input_gradient(network, channels_last_input(images), targets)
        return grad.contiguous()


@register("gradient", label="Gradient", reference="Simonyan et al. 2014 (vanilla gradient)")
class Gradient(ReducedPixelMethod):
    """Vanilla gradient of the target logit w.r.t. the input.

    ``attribute``: the raw gradient [B, C, H, W]. Channel reduction: absolute value, then the maximum
    over colour channels (Simonyan et al. 2014).
    """

    def _attribute(self, images: Tensor, targets: Tensor | None) -> Tensor:
        return self.input_gradient(images, targets)


def _guide(module: nn.Module, inputs: Any, output: Tensor) -> None:
    """Forward hook on a ReLU: clamp the gradient arriving at this call's output to >= 0.

    The ReLU's own backward then multiplies by (input > 0), so the gradient leaving the call is
    ``clamp(g, min=0) * (input > 0)``, Springenberg et al.'s rule (identical to Captum's
    ``relu(grad_input)``). The hook acts on each *call's* output tensor, so a ReLU module called several
    times (torchvision blocks reuse one) is guided at every call; it returns None and does not touch
    the output, so in-place ReLUs work unchanged.
    """
    if isinstance(output, Tensor) and output.requires_grad:
        output.register_hook(_clamp_negative)


def _clamp_negative(grad: Tensor) -> Tensor:
    return grad.clamp(min=0)


@register(
    "guided_backprop",
    label="Guided Backprop",
    reference="Springenberg et al. 2015 (guided backpropagation)",
)
class GuidedBackprop(ReducedPixelMethod):
    """Guided backpropagation: the input gradient with every ``nn.ReLU``'s backward replaced by
    ``clamp(grad, min=0) * (input > 0)``.

    A forward hook on every ``nn.ReLU`` module (through a :class:`HookSet`, so all are removed even when
    the network raises) registers a gradient hook on each call's output tensor. A network with other
    activations (SELU, SiLU, a functional ReLU) is refused unless ``non_relu="pass"``, which lets
    their gradients through unguided, as Captum does. Channel reduction: ``reduce`` (abs-max).
    """

    def __init__(self, model: nn.Module, *, non_relu: str = "refuse", **params):
        super().__init__(model, **params)
        if non_relu not in ("refuse", "pass"):
            raise ValueError(f"guided_backprop: non_relu={non_relu!r}, expected refuse or pass")
        other = self.model.activation_types() - {"ReLU"}
        if other and non_relu == "refuse":
            raise ValueError(
                f"guided_backprop on {self.model.name}: it guides the backward pass of nn.ReLU "
                f"modules, and this network also applies {', '.join(sorted(other))}, whose "
                "gradients would pass unguided; method.params.non_relu=pass accepts that (as "
                "captum does)"
            )

    def _attribute(self, images: Tensor, targets: Tensor | None) -> Tensor:
        network = self.network
        with HookSet() as hooks:
            for module in network.modules():
                if isinstance(module, nn.ReLU):
                    hooks.forward(module, _guide)
            return self.input_gradient(images, targets, network)


@register(
    "grad_x_input",
    label="Gradient x Input",
    reference="Shrikumar et al. 2016/2017 (gradient times input)",
)
class GradXInput(ReducedPixelMethod):
    """Gradient times the (normalised) input, elementwise, as Captum's ``InputXGradient``.

    The input is the normalised image the model sees, so the reference point of the product is the
    dataset mean image (a zero-baseline linearisation of integrated gradients). Channel reduction:
    ``reduce`` (abs-max).
    """

    def _attribute(self, images: Tensor, targets: Tensor | None) -> Tensor:
        return self.input_gradient(images, targets).mul_(images)  # a fresh gradient tensor


__all__ = [
    "REDUCTIONS",
    "GradXInput",
    "Gradient",
    "GuidedBackprop",
    "ReducedPixelMethod",
    "input_gradient",
    "reduce_channels",
]
