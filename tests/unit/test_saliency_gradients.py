"""Gradient family and wrappers: agreement with Captum, IG completeness, guided backprop on shared
in-place ReLUs, composition, reproducible noise, batching invariance. Small models at 32 px."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torchvision
from torch import nn

import roarkar.saliency as S
from roarkar.blur import gaussian_blur
from roarkar.models import build_model
from roarkar.saliency.methods.noise import NoiseTunnel, noise_tunnel
from roarkar.saliency.methods.path import PathIntegral
from roarkar.saliency.methods.quadrature import quadrature
from roarkar.saliency.registry import cheap_params
from tests.conftest import randomize_batchnorm

from .test_saliency import hook_dicts

captum_attr = pytest.importorskip("captum.attr")


@pytest.fixture(scope="module")
def m64() -> nn.Module:
    torch.manual_seed(0)
    return randomize_batchnorm(build_model("small_resnet", 4, width=8).double().eval())


@pytest.fixture(scope="module")
def resnet18_64() -> nn.Module:
    torch.manual_seed(1)
    return torchvision.models.resnet18(weights=None, num_classes=5).double().eval()


@pytest.fixture(scope="module")
def x64() -> torch.Tensor:
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2)).double()


TARGETS = torch.tensor([0, 3, 1])


def captum(cls, model, x, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(model).attribute(x.clone().requires_grad_(True), **kwargs).detach()


def test_guided_backprop_matches_captum(m64, x64):
    ours = S.create("guided_backprop", m64).attribute(x64, TARGETS)
    ref = captum(captum_attr.GuidedBackprop, m64, x64, target=TARGETS)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    plain = S.create("gradient", m64).attribute(x64, TARGETS)
    assert not torch.allclose(ours, plain)  # the guidance does something


def test_guided_backprop_resnet18_shared_inplace_relu(resnet18_64, x64):
    net = resnet18_64
    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    assert all(r.inplace for r in relus) and len(relus) == 9  # one per block, called twice
    method = S.create("guided_backprop", net)
    ours = method.attribute(x64, TARGETS.clamp(max=4))
    ref = captum(captum_attr.GuidedBackprop, net, x64, target=TARGETS.clamp(max=4))
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    assert hook_dicts(net) == []
    # Hooks removed after an exception in the middle of the network (in the BatchNorm-folded copy
    # the gradients run through, whose layer3 is traced into its graph: its second block's first conv).
    victim = method.network.get_submodule("layer3.1.conv1")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(victim, "forward", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
        with pytest.raises(RuntimeError, match="boom"):
            method.attribute(x64[:1])
    assert hook_dicts(net) == []
    torch.testing.assert_close(method.attribute(x64, TARGETS.clamp(max=4)), ours)


def test_grad_x_input_matches_captum(m64, x64):
    ours = S.create("grad_x_input", m64).attribute(x64, TARGETS)
    ref = captum(captum_attr.InputXGradient, m64, x64, target=TARGETS)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("baseline", "rule"), [("black", "riemann_right"), ("zero", "gausslegendre")]
)
def test_integrated_gradients_matches_captum(m64, x64, baseline, rule):
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    method = S.create(
        "integrated_gradients", m64, steps=8, rule=rule, baseline=baseline, mean=mean, std=std
    )
    ours = method.attribute(x64, TARGETS)
    base = method.baseline_images(x64)
    if baseline == "black":
        black = (-torch.tensor(mean) / torch.tensor(std)).double().view(1, 3, 1, 1)
        torch.testing.assert_close(base, black.expand_as(x64))
    ref = captum(
        captum_attr.IntegratedGradients,
        m64,
        x64,
        target=TARGETS,
        baselines=base.contiguous(),
        n_steps=8,
        method=rule,
    )
    # Captum rounds its Riemann points to float32; ours are exact float64.
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("baseline", ["black", "zero", "mean", "blurred"])
def test_integrated_gradients_completeness(m64, x64, baseline):
    """sum(IG) = f(x) - f(x') within 1 %. A random ReLU network is very kinked along the path and its
    logit gaps are small (~0.05), so this needs smooth images and 256 trapezoid steps."""
    x = gaussian_blur(x64[:2], 1.5) * 3
    targets = m64(x).argmax(1)
    method = S.create(
        "integrated_gradients", m64, steps=256, rule="riemann_trapezoid", baseline=baseline
    )
    attr = method.attribute(x, targets)
    base = method.baseline_images(x)
    with torch.no_grad():
        gap = (m64(x) - m64(base.contiguous())).gather(1, targets[:, None])[:, 0]
    total = attr.sum(dim=(1, 2, 3))
    assert ((total - gap).abs() <= 0.01 * gap.abs()).all(), (total, gap)


def test_quadrature_rules_integrate_exactly():
    for rule in ("riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid"):
        a, w = quadrature(rule, 10)
        assert abs(sum(w) - 1) < 1e-12 and len(a) == 10
        assert abs(sum(wi * ai for ai, wi in zip(a, w, strict=True)) - 0.5) < 0.06
    a, w = quadrature("gausslegendre", 5)
    assert abs(sum(wi * ai**7 for ai, wi in zip(a, w, strict=True)) - 1 / 8) < 1e-12
    with pytest.raises(ValueError, match="unknown integration rule"):
        quadrature("simpson", 4)


def test_smoothgrad_sq_matches_captum_noise_tunnel(m64, x64):
    """Captum's NoiseTunnel draws ``torch.normal(0, stdevs)`` of [B * samples, ...] from the global RNG
    (image-major); replay the same draws into ours through ``noise=``. Captum's stdev is absolute,
    ours a fraction of each image's range: scale the images to one common range first."""
    x = x64 - x64.amin(dim=(1, 2, 3), keepdim=True)
    x = x / x.amax(dim=(1, 2, 3), keepdim=True) * 4.0 - 2.0  # every image spans [-2, 2]
    samples, sigma = 5, 0.15
    stdev = sigma * 4.0
    torch.manual_seed(7)
    draws = torch.normal(0, torch.tensor(stdev).repeat(3 * samples, 3, 32, 32)).double()
    for kind in ("smoothgrad_sq", "vargrad", "smoothgrad"):
        ours = S.create(kind, m64, samples=samples, sigma=sigma, max_batch=4).attribute(
            x, TARGETS, noise=(draws / stdev).view(3, samples, 3, 32, 32)
        )
        torch.manual_seed(7)
        ref = captum(
            lambda m: captum_attr.NoiseTunnel(captum_attr.Saliency(m)),
            m64,
            x,
            nt_type=kind,
            nt_samples=samples,
            stdevs=stdev,
            target=TARGETS,
            abs=False,
        )
        torch.testing.assert_close(ours, ref, rtol=1e-8, atol=1e-12)


def test_noise_reproducible_and_batch_invariant(m64, x64):
    method = S.create("smoothgrad_sq", m64, samples=4)
    a = method.saliency(x64, generator=torch.Generator().manual_seed(3))
    b = method.saliency(x64, generator=torch.Generator().manual_seed(3))
    c = method.saliency(x64, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    one = S.create("smoothgrad_sq", m64, samples=4, max_batch=1, batch_size=1)
    torch.testing.assert_close(
        one.saliency(x64, generator=torch.Generator().manual_seed(3)), a, rtol=1e-6, atol=1e-7
    )
    alone = method.saliency(x64[1:2], generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(alone, a[1:2], rtol=1e-6, atol=1e-7)
    # sigma 0: every sample is the clean image, SmoothGrad-squared is the squared gradient.
    flat = S.create("smoothgrad_sq", m64, samples=3, sigma=0.0).attribute(x64, TARGETS)
    grad = S.create("gradient", m64).attribute(x64, TARGETS)
    torch.testing.assert_close(flat, grad**2)


def test_path_integral_batched_equals_unbatched(m64, x64):
    big = S.create("integrated_gbp", m64, steps=6, max_batch=None).attribute(x64, TARGETS)
    small = S.create("integrated_gbp", m64, steps=6, max_batch=1).attribute(x64, TARGETS)
    torch.testing.assert_close(small, big, rtol=1e-9, atol=1e-12)


def test_compositions_run_and_nest(m64, x64):
    params = {"integrated_gradients": {"steps": 3}, "smoothgrad": {"samples": 2}}
    cases = {
        "smoothed_ig": {"samples": 2, "inner_params": params["integrated_gradients"]},
        "smoothed_gbp": {"samples": 2},
        "integrated_smoothgrad": {"steps": 3, "inner_params": params["smoothgrad"]},
        "integrated_gbp": {"steps": 3},
        "guided_backprop_smoothgrad_sq": {"samples": 2},
        "integrated_gradients_smoothgrad_sq": {"samples": 2, "inner_params": {"steps": 3}},
        "vargrad": {"samples": 2},
    }
    gen = torch.Generator().manual_seed(0)
    for name, p in cases.items():
        method = S.create(name, m64, **p)
        out = method.saliency(x64[:2], generator=gen)
        assert out.shape == (2, 32, 32) and torch.isfinite(out).all() and (out >= 0).all(), name
    sig = S.create("smoothed_ig", m64, samples=2, max_batch=5, inner_params={"steps": 3})
    assert sig.expansion == 6 and isinstance(sig.inner, PathIntegral) and sig.inner.max_batch == 5
    # The generic names: create("noise", inner=..., kind=...) == the named composition.
    generic = S.create("noise", m64, inner="guided_backprop", kind="smoothgrad_sq", samples=2)
    named = S.create("guided_backprop_smoothgrad_sq", m64, samples=2)
    g = torch.Generator().manual_seed(9)
    torch.testing.assert_close(generic.saliency(x64, generator=g), named.saliency(x64, generator=g))
    # Wrapping instances: integrated_gradients == PathIntegral(gradient); noise over an instance.
    ig = S.create("integrated_gradients", m64, steps=4).attribute(x64, TARGETS)
    pi = S.create("path_integral", m64, inner=S.create("gradient", m64), steps=4)
    torch.testing.assert_close(pi.attribute(x64, TARGETS), ig)
    nt = noise_tunnel(S.create("integrated_gradients", m64, steps=4), samples=2)
    assert isinstance(nt, NoiseTunnel) and nt.attribute(x64, TARGETS).shape == x64.shape
    # Integrated SmoothGrad with sigma 0 is integrated gradients.
    isg = S.create("integrated_smoothgrad", m64, steps=4, inner_params={"samples": 2, "sigma": 0.0})
    torch.testing.assert_close(isg.attribute(x64, TARGETS), ig)


def test_default_target_is_clean_argmax(m64, x64):
    method = S.create("smoothgrad", m64, samples=3)
    argmax = m64(x64).argmax(1)
    g = torch.Generator().manual_seed(1)
    torch.testing.assert_close(
        method.saliency(x64, generator=g), method.saliency(x64, argmax, generator=g)
    )


def test_parameter_errors(m64):
    with pytest.raises(ValueError, match="unknown baseline"):
        S.create("integrated_gradients", m64, baseline="white")
    with pytest.raises(ValueError, match="unknown noise kind"):
        S.create("noise", m64, kind="smoothgrad_cubed")
    with pytest.raises(ValueError, match="channel reduction"):
        S.create("gradient", m64, reduce="l2")
    with pytest.raises(TypeError, match="kind"):
        S.create("smoothgrad_sq", m64, kind="vargrad")  # fixed by the registry entry
    with pytest.raises(TypeError, match="not a pixel attribution|cam"):
        S.create("noise", m64, inner="gradcam")
    other = copy.deepcopy(m64)
    with pytest.raises(ValueError, match="same model"):
        S.create("noise", m64, inner=S.create("gradient", other))
    with pytest.raises(ValueError, match="max_batch"):
        S.create("smoothgrad", m64, max_batch=0)


def test_abs_sum_reduction(m64, x64):
    grad = S.create("gradient", m64).attribute(x64, TARGETS)
    out = S.create("gradient", m64, reduce="abs_sum").saliency(x64, TARGETS)
    torch.testing.assert_close(out, grad.abs().sum(1).float())


def test_cheap_params_for_tests(m64):
    assert cheap_params("smoothed_ig") == {"samples": 2, "inner_params": {"steps": 2}}
    assert cheap_params("integrated_smoothgrad") == {"steps": 2, "inner_params": {"samples": 2}}
    assert cheap_params("gradient") == {}
    names = [n for n in S.available() if isinstance(S.create(n, m64), (NoiseTunnel, PathIntegral))]
    assert len(names) == 13
    assert all(S.create(n, m64, **cheap_params(n)).expansion <= 4 for n in names)
