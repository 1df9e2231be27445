"""CAM family, signed maps, Sobel and LOVI against references computed here (conformance over the
registry is in test_saliency.py and covers these methods too)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import roarkar.saliency as S
from roarkar.models import TAPS, TappedNet, build_model
from roarkar.saliency.combine import combine
from roarkar.saliency.lovi import hsv_to_rgb, layer_hues, lovi, lovi_hsv
from roarkar.saliency.methods.cams import grad_cam_pp, minmax


def _bn_stats(net: nn.Module) -> None:
    """Non-trivial BatchNorm statistics and affine parameters (so folded biases are not zero)."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, nn.BatchNorm2d):
                c = mod.num_features
                mod.running_mean.copy_(torch.rand(c, generator=g) * 0.4 - 0.2)
                mod.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                mod.weight.copy_(torch.rand(c, generator=g) + 0.5)
                mod.bias.copy_(torch.rand(c, generator=g) * 0.2 - 0.1)


@pytest.fixture(scope="module")
def small() -> TappedNet:
    torch.manual_seed(0)
    m = build_model("small_resnet", 5).double().eval()
    _bn_stats(m)
    return m


@pytest.fixture(scope="module")
def resnet18() -> TappedNet:
    torch.manual_seed(1)
    net = torchvision.models.resnet18(weights=None, num_classes=4)
    _bn_stats(net)
    return TappedNet(net.double().eval(), name="resnet18")


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2)).double()


@pytest.fixture(scope="module")
def x96() -> torch.Tensor:
    """For resnet18, whose layer4 is 3 x 3 at 96 px (1 x 1 at 32 px)."""
    return torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(3)).double()


def _layer4_and_grad(model: TappedNet, x: torch.Tensor, targets: torch.Tensor):
    """Reference: activations of layer4 by a forward hook, gradient of each image's own logit."""
    store = {}
    handle = model.net.layer4.register_forward_hook(lambda m, i, o: store.update(a=o))
    try:
        xx = x.clone().requires_grad_(True)
        logits = model(xx)
        own = logits[torch.arange(len(targets)), targets]
        (grad,) = torch.autograd.grad(own.sum(), store["a"])
    finally:
        handle.remove()
    return store["a"].detach(), grad


# -- Grad-CAM, Grad-CAM++, FastCAM ------------------------------------------------------------------


def test_gradcam_matches_reference_and_captum_on_resnet18(resnet18, x96):
    x = x96
    targets = torch.tensor([0, 3, 1])
    act, grad = _layer4_and_grad(resnet18, x, targets)
    ref = F.relu((grad.mean((2, 3), keepdim=True) * act).sum(1, keepdim=True))
    ref = F.interpolate(ref, size=(96, 96), mode="bilinear", align_corners=False)[:, 0]
    ours = S.create("gradcam", resnet18, batch_size=2).saliency(x, targets)
    torch.testing.assert_close(ours, ref.float(), rtol=1e-5, atol=1e-7)
    captum_attr = pytest.importorskip("captum.attr")
    lgc = captum_attr.LayerGradCam(resnet18, resnet18.net.layer4)
    cap = lgc.attribute(x, target=targets, relu_attributions=True)
    cap = captum_attr.LayerAttribution.interpolate(cap, (96, 96), interpolate_mode="bilinear")
    torch.testing.assert_close(ours, cap[:, 0].float(), rtol=1e-5, atol=1e-7)
    # default target is the argmax; another layer is a parameter
    argmax = resnet18(x).argmax(1)
    torch.testing.assert_close(
        S.create("gradcam", resnet18).saliency(x), S.create("gradcam", resnet18).saliency(x, argmax)
    )
    with pytest.raises(ValueError, match="unknown tap"):
        S.create("gradcam", resnet18, layer="layer4")
    l3 = S.create("gradcam", resnet18, layer="L3").saliency(x)
    assert l3.shape == (3, 96, 96) and not torch.allclose(l3, ours)


def test_gradcampp_closed_form(small, x):
    targets = torch.tensor([2, 0, 1])
    act, g = _layer4_and_grad(small, x, targets)
    score = small(x)[torch.arange(3), targets].detach()
    # the paper's closed form with Y = exp(S): d2Y = exp(S) g^2, d3Y = exp(S) g^3
    e = score.exp().view(-1, 1, 1, 1)
    d1, d2, d3 = e * g, e * g**2, e * g**3
    denom = 2 * d2 + (act * d3).sum((2, 3), keepdim=True)
    alpha = d2 / torch.where(denom != 0, denom, torch.ones_like(denom))
    w = (alpha * F.relu(d1)).sum((2, 3), keepdim=True)
    ref = F.relu((w * act).sum(1))
    ref = ref / ref.flatten(1).amax(1).view(-1, 1, 1)  # only a positive factor per image differs
    ours = grad_cam_pp(act, g)
    torch.testing.assert_close(ours, minmax(ref), rtol=1e-4, atol=1e-6)
    assert ours.amax((1, 2)).eq(1).all() and ours.amin((1, 2)).eq(0).all()
    full = S.create("gradcampp", small).saliency(x, targets)
    up = F.interpolate(ours[:, None], size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(full, up.float())


def test_fastcam_is_gradcampp_times_smoe(small, x):
    targets = torch.tensor([4, 0, 2])
    method = S.create("fastcam", small, weights="prior")
    out = method.saliency(x, targets)
    cam = S.create("gradcampp", small).saliency(x, targets)
    smoe = S.create("smoe_scale", small, weights="prior").saliency(x)
    torch.testing.assert_close(out, cam * smoe, rtol=1e-5, atol=1e-7)
    assert S.describe("fastcam").params["weights"] == "equal"
    assert not torch.allclose(S.create("fastcam", small).saliency(x, targets), out)
    with pytest.raises(ValueError, match="one value per map"):
        S.create("fastcam", small, weights=[1, 2])
    assert (out >= 0).all() and (out <= 1).all()


# -- FullGrad and DeepMaps ------------------------------------------------------------------------------


def _outputs_and_grads(model, x: torch.Tensor, targets: torch.Tensor, modules):
    """Reference: each module's output (a forward hook passes on a clone, so in-place ops after it
    leave the captured tensor alone) and the gradients of each image's own logit w.r.t. the input
    and those outputs: (outputs, [input grad, *output grads])."""
    outs = []
    handles = [
        m.register_forward_hook(lambda m, i, o: (outs.append(o), o.clone())[1]) for m in modules
    ]
    try:
        xx = x.clone().requires_grad_(True)
        own = model(xx)[torch.arange(len(targets)), targets]
        grads = torch.autograd.grad(own.sum(), [xx, *outs])
    finally:
        for h in handles:
            h.remove()
    return outs, grads


def _psi(a: torch.Tensor, size=(32, 32)) -> torch.Tensor:
    """seed 003 Eq 5 for [B, h, w]: bilinear upscale of the per-map min-max of |a|."""
    a = a.abs()
    lo = a.amin((1, 2), keepdim=True)
    hi = a.amax((1, 2), keepdim=True)
    n = torch.where(hi > lo, (a - lo) / (hi - lo).clamp_min(1e-300), torch.zeros_like(a))
    return F.interpolate(n[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def test_fullgrad_reference_on_resnet18(resnet18, x):
    """Recompute FullGrad with module-output gradients found by hooks, per seed 003 Eq 3-5 and 12
    (at 32 px, where layer4 is 1 x 1 and its constant bias maps normalise to 0)."""
    targets = torch.tensor([1, 1, 3])
    bns = [m for m in resnet18.modules() if isinstance(m, nn.BatchNorm2d)]
    assert not any(isinstance(m, nn.Conv2d) and m.bias is not None for m in resnet18.modules())
    outs, grads = _outputs_and_grads(resnet18, x, targets, bns)
    expected = _psi((x * grads[0]).sum(1))
    for bn, g in zip(bns, grads[1:], strict=True):
        bias = bn.bias - bn.weight * bn.running_mean / torch.sqrt(bn.running_var + bn.eps)
        a = (g * bias.view(1, -1, 1, 1)).detach()
        for c in range(a.shape[1]):
            expected = expected + _psi(a[:, c])
    ours = S.create("fullgrad", resnet18).saliency(x, targets)
    torch.testing.assert_close(ours, expected.float(), rtol=1e-5, atol=1e-4)
    assert ours.max() > 10  # many bias maps contribute


def test_deepmaps_reference(resnet18, x):
    """seed 003 Eq 6, 8: hidden-layer attributions (stem ReLU + every residual block)."""
    targets = torch.tensor([0, 2, 3])
    net = resnet18.net  # the paper's layers, by hand: the stem ReLU and each residual block
    layers = [net.relu] + [block for i in range(1, 5) for block in getattr(net, f"layer{i}")]
    assert len(layers) == 1 + 8  # resnet18: 2 blocks per stage
    outs, grads = _outputs_and_grads(resnet18, x, targets, layers)
    hidden = sum(_psi((a.detach() * g).sum(1)) for a, g in zip(outs, grads[1:], strict=True))
    ours = S.create("deepmaps", resnet18).saliency(x, targets)
    torch.testing.assert_close(ours, hidden.float(), rtol=1e-5, atol=1e-5)
    with_input = S.create("deepmaps", resnet18, include_input=True).saliency(x, targets)
    torch.testing.assert_close(
        with_input, (hidden + _psi((x * grads[0]).sum(1))).float(), rtol=1e-5, atol=1e-5
    )


# -- signed maps -------------------------------------------------------------------------------------------


def test_positive_negative_split_the_gradient(small, x):
    targets = torch.tensor([1, 4, 0])
    grad = S.create("gradient", small).attribute(x, targets)
    pos, neg = S.create("positive", small), S.create("negative", small)
    pa, na = pos.attribute(x, targets), neg.attribute(x, targets)
    torch.testing.assert_close(pa - na, grad)
    assert (pa >= 0).all() and (na >= 0).all() and (pa * na == 0).all()
    p, n = pos.saliency(x, targets), neg.saliency(x, targets)
    torch.testing.assert_close(p, F.relu(grad).amax(1).float())
    torch.testing.assert_close(n, F.relu(-grad).amax(1).float())
    torch.testing.assert_close(torch.maximum(p, n), grad.abs().amax(1).float())


def test_active_inactive_follow_eq_5_6(small, x):
    """Against a per-image Jacobian: keep g_c where it beats (active) / loses to (inactive) every
    other class's gradient, strictly; then max over channels of |.|."""
    targets = torch.tensor([3, 0, 3])
    act_m, inact_m = S.create("active", small), S.create("inactive", small)
    a, i = act_m.attribute(x, targets), inact_m.attribute(x, targets)
    for b in range(3):
        jac = torch.autograd.functional.jacobian(lambda z: small(z[None])[0], x[b])  # [C, 3, H, W]
        c = int(targets[b])
        others = torch.cat([jac[:c], jac[c + 1 :]])
        g = jac[c]
        torch.testing.assert_close(a[b], torch.where((g > others).all(0), g, 0.0))
        torch.testing.assert_close(i[b], torch.where((g < others).all(0), g, 0.0))
    assert (a * i == 0).all() and (a != 0).any() and (i != 0).any()
    torch.testing.assert_close(act_m.saliency(x, targets), a.abs().amax(1).float())
    torch.testing.assert_close(inact_m.saliency(x, targets), i.abs().amax(1).float())
    # default target: the predicted class
    pred = small(x).argmax(1)
    torch.testing.assert_close(act_m.saliency(x), act_m.saliency(x, pred))


# -- Sobel ---------------------------------------------------------------------------------------------------


def test_sobel_edges(small):
    img = torch.zeros(1, 3, 8, 8)
    img[:, 1, :, 4:] = 2.0  # a vertical step in the green channel
    out = S.create("sobel", small).saliency(img)
    assert out.shape == (1, 8, 8)
    assert (out[0, :, 3:5] == 8.0).all()  # |[-1 0 1; -2 0 2; -1 0 1] * step| = 4 * 2
    assert (out[0, :, :3] == 0).all() and (out[0, :, 5:] == 0).all()  # no border edges either
    assert S.describe("sobel").kind == "control" and not S.create("sobel", small).uses_model


# -- LOVI -------------------------------------------------------------------------------------------------------


def test_hsv_to_rgb_matches_colorsys():
    import colorsys

    g = torch.Generator().manual_seed(0)
    h, s, v = (
        torch.rand(200, generator=g) * 360,
        torch.rand(200, generator=g),
        torch.rand(200, generator=g),
    )
    ref = torch.tensor(
        [
            colorsys.hsv_to_rgb(a / 360, b, c)
            for a, b, c in zip(h.tolist(), s.tolist(), v.tolist(), strict=True)
        ]
    )
    torch.testing.assert_close(hsv_to_rgb(h, s, v), ref, rtol=0, atol=1e-6)


EXPECTED_RGB = {  # hue 300 (violet/magenta), 225 (blue), 150 (green), 75 (yellow-green), 0 (red)
    "L1": (1.0, 0.0, 1.0),
    "L2": (0.0, 0.25, 1.0),
    "L3": (0.0, 1.0, 0.5),
    "L4": (0.75, 1.0, 0.0),
    "L5": (1.0, 0.0, 0.0),
}


@pytest.mark.parametrize("k", range(5))
def test_lovi_one_layer_active_is_that_layers_saturated_hue(k):
    maps = [torch.zeros(2, 4, 4) for _ in TAPS]
    maps[k][:] = 1.0
    rgb = lovi(maps, (4, 4), squash="none")
    assert rgb.shape == (2, 3, 4, 4)
    expected = torch.tensor(EXPECTED_RGB[TAPS[k]]).view(1, 3, 1, 1).expand_as(rgb)
    torch.testing.assert_close(rgb, expected)
    hue, sat, val = lovi_hsv(torch.stack(maps, 1))
    assert torch.allclose(hue, layer_hues(5)[k].float())
    assert (sat == 1).all() and (val == 1).all()


def test_lovi_equal_layers_unsaturated_and_zero_black():
    rgb = lovi([torch.full((1, 3, 3), 0.6) for _ in TAPS], (3, 3), squash="none")
    torch.testing.assert_close(rgb, torch.full((1, 3, 3, 3), 0.6))  # grey
    rgb = lovi([torch.zeros(1, 3, 3) for _ in TAPS], (3, 3), squash="none")
    assert (rgb == 0).all()
    # early vs late: activity in L1+L2 is bluish-violet, in L4+L5 orange-ish (hue between 0 and 75)
    early = torch.stack([torch.ones(1, 1, 1)] * 2 + [torch.zeros(1, 1, 1)] * 3, 1)
    late = early.flip(1)
    assert math.isclose(float(lovi_hsv(early)[0]), 262.5, rel_tol=1e-6)
    assert math.isclose(float(lovi_hsv(late)[0]), 37.5, rel_tol=1e-6)
    assert math.isclose(float(lovi_hsv(early)[1]), 1 - (2 / 5 - 1 / 5) / (4 / 5), rel_tol=1e-6)


def test_lovi_squashes_and_upsamples_taps():
    """Default squash: normal CDF per map (Eq 3) at the tap's size, then bilinear upsampling; a spot
    active in one tap only takes (nearly) that tap's hue; output in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    sizes = {"L1": 32, "L2": 32, "L3": 16, "L4": 8, "L5": 4}
    maps = {t: torch.rand(2, s, s, generator=g) * 0.01 for t, s in sizes.items()}
    maps["L5"][:, 0, 0] = 5.0  # top-left corner of the last layer
    maps["L1"][:, 31, 31] = 5.0  # bottom-right pixel of the first
    rgb = lovi(maps, (32, 32))
    assert rgb.shape == (2, 3, 32, 32) and (rgb >= 0).all() and (rgb <= 1).all()
    up = [
        F.interpolate(S.combine.squash_map(m)[:, None], size=(32, 32), mode="bilinear")[:, 0]
        for m in maps.values()
    ]
    hue, sat, val = lovi_hsv(torch.stack(up, 1))
    torch.testing.assert_close(rgb, hsv_to_rgb(hue, sat, val).permute(0, 3, 1, 2))
    assert (hue[:, 0, 0] < hue[:, 16, 16]).all() and (hue[:, 16, 16] < hue[:, 31, 31]).all()


def test_combined_unaffected_by_lovi(small, x):
    """LOVI does not change the Eq 3 combination it is drawn beside (sanity on shared helpers)."""
    with torch.no_grad():
        taps, _ = small.forward_taps(x)
    maps = {t: S.stats.smoe_scale(a.post) for t, a in taps.items()}
    before = combine(maps, (32, 32))
    lovi(maps, (32, 32))
    torch.testing.assert_close(combine(maps, (32, 32)), before)
