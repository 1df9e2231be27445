"""CAM family (the paper's Sec 2 and its references): Grad-CAM, Grad-CAM++, FullGrad, DeepMaps and FastCAM.

Every method takes one target per image (default argmax) and backpropagates the *sum* of each image's
own target logit, so image i's map only sees ``d logit_i[t_i]``. Weights are frozen by the base class
and gradients are taken with ``torch.autograd.grad`` w.r.t. activations only, so no ``.grad`` is
touched. Hooks (FullGrad, DeepMaps) go through the base's :class:`HookSet`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from roarkar.saliency import stats
from roarkar.saliency.base import HookSet, SaliencyMethod, gather_targets
from roarkar.saliency.combine import check_squash, combine, resolve_weights, upsample
from roarkar.saliency.registry import register


def minmax(maps: Tensor, dims: tuple[int, ...] = (-2, -1)) -> Tensor:
    """``(a - min) / (max - min)`` over ``dims`` (per map); a constant map becomes 0."""
    lo = maps.amin(dim=dims, keepdim=True)
    rng = maps.amax(dim=dims, keepdim=True) - lo
    return torch.where(rng > 0, (maps - lo) / torch.where(rng > 0, rng, 1), 0)


def tap_gradient(
    method: SaliencyMethod, images: Tensor, targets: Tensor | None, layer: str
) -> tuple[Tensor, Tensor, Tensor]:
    """Activation A [B, K, h, w] at tap ``layer``, d logit_i[t_i] / dA, and the target logits [B].

    The prefix up to the tap runs without autograd; only the rest of the network is differentiated.
    """
    model = method.model
    with torch.no_grad():
        act = model.forward_to(images, layer).post
    act = act.detach().requires_grad_(True)
    with torch.enable_grad():
        score, _ = gather_targets(model.forward_from(act, layer), targets)
        (grad,) = torch.autograd.grad(score.sum(), act)
    return act.detach(), grad, score.detach()


def grad_cam(act: Tensor, grad: Tensor) -> Tensor:
    """Selvaraju et al. 2017: ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of dS/dA_k -> [B, h, w]."""
    alpha = grad.mean(dim=(2, 3), keepdim=True)
    return F.relu((alpha * act).sum(dim=1))


def grad_cam_pp(act: Tensor, grad: Tensor) -> Tensor:
    """Chattopadhyay et al. 2018, closed form with Y = exp(S), as in the authors' FastCAM code
    (the ``gradcam`` package's GradCAMpp) -> [B, h, w], min-max normalised to [0, 1] per image.

    alpha = g^2 / (2 g^2 + sum_ab A_ab g^3) (exp(S) cancels in alpha; a zero denominator becomes 1
    as in that code, which also adds 1e-7 to it -- left out here: it is not in the paper's formula
    and is not small against g^2 when gradients are small), w_k = sum_ij alpha_ij ReLU(exp(S) g_ij),
    map = ReLU(sum_k w_k A_k). exp(S) > 0 is one factor per image, so ReLU(exp(S) g) = exp(S) ReLU(g)
    scales the whole map and cancels in the per-image normalisation; it is left out so that large
    or very negative logits cannot overflow or underflow the map.
    """
    g2 = grad.pow(2)
    denom = 2 * g2 + (act * grad.pow(3)).sum(dim=(2, 3), keepdim=True)
    denom = torch.where(denom != 0, denom, torch.ones_like(denom))
    alpha = g2 / denom
    weights = (alpha * F.relu(grad)).sum(dim=(2, 3), keepdim=True)
    return minmax(F.relu((weights * act).sum(dim=1)))


class _TapCam(SaliencyMethod):
    """A class activation map at one tap (``layer``, default L5 = a ResNet's layer4 output, VGG-16's
    last conv ReLU; ``last`` for the last tap of a network with fewer)."""

    kind: ClassVar[str] = "cam"
    _cam: ClassVar[Callable[[Tensor, Tensor], Tensor]]

    def __init__(self, model: nn.Module, *, layer: str = "L5", batch_size: int | None = None):
        super().__init__(model, batch_size=batch_size)
        self.layer = self.model.resolve_tap(layer)

    def cam(self, images: Tensor, targets: Tensor | None) -> Tensor:
        """The map [B, h, w] at the tap's resolution."""
        act, grad, _ = tap_gradient(self, images, targets, self.layer)
        return type(self)._cam(act, grad)

    def _saliency(self, images, targets, *, relevance, generator):
        return upsample(self.cam(images, targets), tuple(images.shape[-2:]))


@register("gradcam", label="Grad-CAM", reference="Selvaraju et al. 2017")
class GradCAM(_TapCam):
    """Grad-CAM at tap ``layer``: ReLU of the activations weighted by their spatially averaged
    gradients, upsampled bilinearly (align_corners=False) to the input size. No normalisation (the
    raw map, as captum's ``LayerGradCam``). Channel reduction: the alpha-weighted sum over the tap's
    channels."""

    _cam = staticmethod(grad_cam)


@register(
    "gradcampp", label="Grad-CAM++", reference="Chattopadhyay et al. 2018 (closed-form alpha)"
)
class GradCAMPP(_TapCam):
    """Grad-CAM++ at tap ``layer`` (see :func:`grad_cam_pp`), min-max normalised per image to [0, 1]
    at the tap's resolution, then upsampled bilinearly. Channel reduction: the weighted sum over the
    tap's channels."""

    _cam = staticmethod(grad_cam_pp)


@register(
    "fastcam",
    label="FastCAM",
    reference="Mundhenk et al. 2020, Sec 4.2 / Fig 6 (Grad-CAM++ x SMOE Scale)",
)
class FastCAM(SaliencyMethod):
    """Grad-CAM++ times the combined SMOE Scale map (paper Sec 4.2, Fig 6; authors' demo:
    ``fastcam_map = csmap * cam_map``).

    Normalisation of the factors, as the authors' code: Grad-CAM++ is min-max normalised to [0, 1]
    per image (at the tap's resolution, then upsampled bilinearly); the SMOE map is the Eq 3
    combination (each tap map squashed by ``squash`` and weighted by ``weights``), already in [0, 1]
    and not normalised further. One forward pass gives the five taps and the logits; only the head
    after ``layer`` is differentiated. Channel reduction: SMOE Scale over each tap's channel column,
    the weighted channel sum for Grad-CAM++.
    """

    kind: ClassVar[str] = "cam"

    def __init__(
        self,
        model: nn.Module,
        *,
        weights: str | Sequence[float] = "equal",
        squash: str = "normal",
        layer: str = "L5",
        batch_size: int | None = None,
    ):
        super().__init__(model, batch_size=batch_size)
        self.weights = resolve_weights(weights, len(self.model.taps))
        self.squash = check_squash(squash)
        self.layer = self.model.resolve_tap(layer)

    def factors(self, images: Tensor, targets: Tensor | None) -> tuple[Tensor, Tensor]:
        """(Grad-CAM++ [B, H, W] in [0, 1], combined SMOE map [B, H, W] in [0, 1])."""
        size = tuple(images.shape[-2:])
        with torch.no_grad():
            taps, _ = self.model.forward_taps(images)
        smoe = combine(
            {name: stats.smoe_scale(a.post) for name, a in taps.items()},
            size,
            self.weights,
            self.squash,
        )
        act = taps[self.layer].post.detach().requires_grad_(True)
        with torch.enable_grad():
            score, _ = gather_targets(self.model.forward_from(act, self.layer), targets)
            (grad,) = torch.autograd.grad(score.sum(), act)
        cam = upsample(grad_cam_pp(act.detach(), grad), size)
        return cam, smoe

    def _saliency(self, images, targets, *, relevance, generator):
        cam, smoe = self.factors(images, targets)
        return cam * smoe


# -- multi-layer gradient maps ------------------------------------------------------------------------


def _capture(store: list[Tensor]) -> Callable[[nn.Module, object, Tensor], Tensor]:
    """Forward hook keeping a module's output and passing on a copy, so that in-place operations
    downstream (ResNet's ``relu(inplace)`` and ``out += identity``) never touch the kept tensor."""

    def hook(module: nn.Module, inputs: object, output: Tensor) -> Tensor:
        store.append(output)
        return output.clone()

    return hook


def _folded_bias(module: nn.Module) -> Tensor | None:
    """The additive per-channel constant of a Conv2d (its bias) or an eval-mode BatchNorm2d
    (``beta - gamma * running_mean / sqrt(running_var + eps)``); None when there is none."""
    if isinstance(module, nn.Conv2d):
        return None if module.bias is None else module.bias.detach()
    if isinstance(module, nn.BatchNorm2d):
        if module.running_mean is None or module.running_var is None:
            raise ValueError("fullgrad needs BatchNorm2d layers with running statistics")
        scale = torch.rsqrt(module.running_var + module.eps)
        gamma = module.weight.detach() if module.weight is not None else torch.ones_like(scale)
        beta = module.bias.detach() if module.bias is not None else torch.zeros_like(scale)
        return beta - gamma * module.running_mean * scale
    return None


_OTHER_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d, nn.BatchNorm1d, nn.LocalResponseNorm)


@register("fullgrad", label="FullGrad", reference="Srinivas & Fleuret 2019")
class FullGrad(SaliencyMethod):
    """FullGrad on CNNs with Conv2d biases and BatchNorm2d (ResNets, VGG-16; seed 003 Eq 3-5, Srinivas & Fleuret 2019 Eq 4):

    ``s = Psi(sum_colour x * df/dx) + sum_l sum_phi Psi(b^l_phi * df/dz^l_phi)`` with
    ``Psi(a) = bilinearUpscale(normalize(|a|))`` and ``normalize`` the min-max of each map, i.e. per
    image *and per channel* phi of each layer (the per-feature normalisation of the papers' Eq 4; the
    authors' reference code normalises each layer's C x h x w tensor jointly instead). The biases
    are those of every Conv2d that has one and of every BatchNorm2d folded with its running
    statistics (``beta - gamma * mu / sigma``, seed 003 Eq 12); the fc bias is not spatial and is
    left out, as in the reference code. ``df/dz`` is the gradient w.r.t. the layer's output, which is
    the gradient w.r.t. its (spatially shared) bias at every location. Channel reduction: the input
    term sums x * grad over colour channels before |.|; each bias map is normalised per channel and
    the normalised channel maps are summed.
    """

    kind: ClassVar[str] = "cam"

    def __init__(self, model: nn.Module, *, batch_size: int | None = None):
        super().__init__(model, batch_size=batch_size)
        uncovered = sorted(
            {type(m).__name__ for m in self.model.net.modules() if isinstance(m, _OTHER_NORMS)}
        )
        if uncovered:
            raise ValueError(
                f"fullgrad on {self.model.name}: its {', '.join(uncovered)} layers carry biases "
                "that FullGrad's decomposition (Conv2d biases, BatchNorm2d folded with running "
                "statistics) does not cover; the map would not be complete"
            )

    def _saliency(self, images, targets, *, relevance, generator):
        size = tuple(images.shape[-2:])
        layers = [(m, b) for m in self.model.modules() if (b := _folded_bias(m)) is not None]
        outputs: list[Tensor] = []
        x = images.detach().requires_grad_(True)
        with HookSet() as hooks, torch.enable_grad():
            for module, _ in layers:
                hooks.forward(module, _capture(outputs))
            score, _ = gather_targets(self.model(x), targets)
            if len(outputs) != len(layers):
                raise RuntimeError(
                    f"fullgrad: {len(layers)} bias layers but {len(outputs)} outputs captured "
                    "(a layer used twice or not at all)"
                )
            grads = torch.autograd.grad(score.sum(), [x, *outputs], allow_unused=True)
        total = upsample(minmax((x.detach() * grads[0]).sum(dim=1).abs()), size)
        for (_, bias), grad in zip(layers, grads[1:], strict=True):
            if grad is None:
                continue
            contrib = minmax((grad * bias.view(1, -1, 1, 1).to(grad)).abs()).sum(dim=1)
            total = total + upsample(contrib, size)
        return total


@register("deepmaps", label="DeepMaps", reference="Grabska-Barwinska et al. 2021, Eq 6, 8")
class DeepMaps(SaliencyMethod):
    """DeepMaps (seed 003 Eq 8): ``s = sum_{l=l0}^{L} Psi(a^{h,l})`` with the hidden-layer attribution
    ``a^{h,l}_ij = sum_phi x^l_ijphi * df_c/dx^l_ijphi`` (Eq 6: signed sum over the layer's channels
    *before* Psi) and ``Psi(a) = bilinearUpscale(normalize(|a|))`` (Eq 5, min-max per image and
    layer). Layers: every hidden activation the whole network passes through
    (:meth:`TappedNet.forward_hidden`): on ResNet-50 the ReLU after the stem convolution and the
    output of every residual block (the paper's 17, Appendix F), on VGG-16 its 13 conv ReLUs. ``include_input=True`` adds the input attribution
    ``a^{h,0} = sum_colour x * df/dx`` (l0 = 0). Channel reduction: the signed channel sum of Eq 6.
    """

    kind: ClassVar[str] = "cam"

    def __init__(
        self, model: nn.Module, *, include_input: bool = False, batch_size: int | None = None
    ):
        super().__init__(model, batch_size=batch_size)
        self.include_input = bool(include_input)

    def _saliency(self, images, targets, *, relevance, generator):
        size = tuple(images.shape[-2:])
        x = images.detach().requires_grad_(True)  # weights are frozen: x carries the graph
        with torch.enable_grad():
            logits, outputs = self.model.forward_hidden(x)
            score, _ = gather_targets(logits, targets)
            inputs = [x, *outputs] if self.include_input else outputs
            grads = torch.autograd.grad(score.sum(), inputs)
        acts = [x.detach(), *outputs] if self.include_input else outputs
        total = None
        for act, grad in zip(acts, grads, strict=True):
            term = upsample(minmax((act.detach() * grad).sum(dim=1).abs()), size)
            total = term if total is None else total + term
        return total


__all__ = [
    "DeepMaps",
    "FastCAM",
    "FullGrad",
    "GradCAM",
    "GradCAMPP",
    "grad_cam",
    "grad_cam_pp",
    "minmax",
    "tap_gradient",
]
