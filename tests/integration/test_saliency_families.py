"""Every registered method on every model family: a finite map of the input's size, or a refusal
that names the reason (the refusals are listed here, so a new one is a failure to look at)."""

from __future__ import annotations

import pytest
import torch

from roarkar.models import TappedNet, build_model
from roarkar.saliency import available
from roarkar.saliency.methods.precomputed import PRECOMPUTED
from roarkar.saliency.registry import cheap_params

# precomputed reads its maps by sample key, never from images (tests/integration/test_precomputed_maps.py)
METHODS = [n for n in available() if n != PRECOMPUTED]

FAMILIES = {
    "vgg16": ("vgg16", {}, 32),  # conv biases, no BatchNorm: seed 003's network
    "nielsen_cnn": ("nielsen_cnn", {}, 28),  # SELU, two taps: seed 002's MNIST network
    "mobilenet_v3_small": ("torchvision", {"arch": "mobilenet_v3_small"}, 32),  # Hardswish, SE
    "convnext_tiny": ("torchvision", {"arch": "convnext_tiny"}, 32),  # LayerNorm, GELU, 4 taps
}

_NOT_RELU = "guides the backward pass of nn.ReLU"
_GBP = [m for m in METHODS if "guided" in m or "gbp" in m]  # and every wrapper around it
#: (family, method) -> the reason it is refused.
REFUSED: dict[tuple[str, str], str] = {
    **{
        (f, m): _NOT_RELU
        for f in ("nielsen_cnn", "mobilenet_v3_small", "convnext_tiny")
        for m in _GBP
    },
    ("convnext_tiny", "fullgrad"): "LayerNorm, LayerNorm2d layers carry biases",
    ("convnext_tiny", "deepmaps"): "has no hidden activation that every path passes through",
}


def _refusal(family: str, name: str, model: TappedNet) -> str | None:
    if (family, name) in REFUSED:
        return REFUSED[family, name]
    return None


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request) -> tuple[str, TappedNet, int]:
    name, params, size = FAMILIES[request.param]
    torch.manual_seed(0)
    return request.param, build_model(name, 3, **params).eval(), size


@pytest.mark.parametrize("name", METHODS)
def test_every_method_on_every_family(family, name):
    from roarkar.saliency import create

    fam, model, size = family
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    relevance = torch.rand(2, size, size, generator=torch.Generator().manual_seed(2))
    params = cheap_params(name)
    fewer = len(model.taps) < 5
    try:
        method = create(name, model, **params)
        out = method.saliency(x, relevance=relevance, generator=torch.Generator().manual_seed(0))
    except ValueError as err:
        expected = _refusal(fam, name, model)
        if expected is None and fewer and ("unknown tap 'L5'" in str(err) or "(5)" in str(err)):
            return  # a five-tap preset on a network with fewer taps: named in the message
        assert expected is not None, f"{name} on {fam} refused: {err}"
        assert expected in str(err)
        return
    assert _refusal(fam, name, model) is None, f"{name} on {fam} should have been refused"
    assert out.shape == (2, size, size) and torch.isfinite(out).all()


# -- seed 003's network: VGG-16 against captum and the paper's layer count ----------------------------


@pytest.fixture(scope="module")
def vgg16() -> TappedNet:
    torch.manual_seed(3)
    return build_model("vgg16", 5).double().eval()


def test_gradient_family_on_vgg16_matches_captum(vgg16):
    captum_attr = pytest.importorskip("captum.attr")
    from roarkar.saliency import create

    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4)).double()
    targets = torch.tensor([1, 4])
    cases = [
        ("gradient", captum_attr.Saliency, {"abs": False}),
        ("grad_x_input", captum_attr.InputXGradient, {}),
        ("guided_backprop", captum_attr.GuidedBackprop, {}),
        ("integrated_gradients", captum_attr.IntegratedGradients, {"n_steps": 8, "method": "gausslegendre"}),
    ]  # fmt: skip
    for name, cls, kwargs in cases:
        params = {"steps": 8, "rule": "gausslegendre", "baseline": "zero"}
        method = create(name, vgg16, **(params if name == "integrated_gradients" else {}))
        ours = method.attribute(x, targets)
        ref = cls(vgg16.net).attribute(x.clone().requires_grad_(True), target=targets, **kwargs)
        # (captum's own IG points are float32; ours float64)
        torch.testing.assert_close(ours, ref.detach(), rtol=1e-6, atol=1e-9, msg=name)
        assert ours.abs().sum() > 0


def test_deepmaps_layers_are_the_papers(vgg16):
    """seed 003: DeepMaps on VGG-16 uses its 13 conv layers; on ResNet-50, 17 (stem + blocks)."""
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    _, hidden = vgg16.forward_hidden(x)
    assert len(hidden) == 13
    _, hidden = build_model("resnet50", 3).eval().forward_hidden(x.float())
    assert len(hidden) == 17
