"""Registry conformance (every method: shape, finite, deterministic, no hooks left, mode restored) and
method-specific checks (one target per image, gradient vs Captum, controls, configs)."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

import roarkar.saliency as S
from roarkar.models import TAPS, TappedNet, build_model
from roarkar.registry import UnknownName
from roarkar.saliency.base import HookSet, SaliencyMethod
from roarkar.saliency.conformance import (
    check_batch_independent,
    check_deterministic,
    check_maps,
    check_state,
    hook_dicts,
    run,
)
from roarkar.saliency.methods.precomputed import PRECOMPUTED
from tests.conftest import randomize_batchnorm

# precomputed reads its maps by sample key, never from images (tests/integration/test_precomputed_maps.py)
METHODS = [n for n in S.available() if n != PRECOMPUTED]


def make(name: str, model, **params):
    """``create`` with cheap samples/steps: conformance does not need the paper's 750 passes/image."""
    from roarkar.saliency.registry import cheap_params

    return S.create(name, model, **(cheap_params(name) | params))


@pytest.fixture(scope="module")
def model() -> TappedNet:
    torch.manual_seed(0)
    return randomize_batchnorm(build_model("small_resnet", 4))


@pytest.fixture(scope="module")
def plain_resnet18() -> nn.Module:
    torch.manual_seed(1)
    return torchvision.models.resnet18(weights=None, num_classes=4)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def relevance() -> torch.Tensor:
    return torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(3))


# -- conformance over the registry --------------------------------------------------------------------


@pytest.mark.parametrize("name", METHODS)
def test_conformance(name, model, images, relevance):
    """The checks of roarkar.saliency.conformance (shape, float32, finite, deterministic, no hook
    left, train mode and frozen weights restored, eval mode kept), the ones an external method
    passes before any training."""
    model.train()
    method = make(name, model)
    out = run(method, images[:2], relevance[:2])
    check_maps(name, out, (2, 32, 32))
    check_deterministic(name, run(method, images[:2], relevance[:2]), out, rtol=0, atol=0)
    check_state(name, model, training=True)  # hooks removed, train mode, no weight gradients
    model.eval()
    run(method, images[:2], relevance[:2])
    check_state(name, model, training=False)  # eval mode kept


@pytest.mark.parametrize("name", METHODS)
def test_conformance_plain_torchvision_resnet(name, plain_resnet18, images, relevance):
    plain_resnet18.train()
    frozen = plain_resnet18.fc.weight
    frozen.requires_grad_(False)
    try:
        out = run(make(name, plain_resnet18), images[:2], relevance[:2])
    finally:
        frozen.requires_grad_(True)
    assert out.shape == (2, 32, 32) and torch.isfinite(out).all()
    assert hook_dicts(plain_resnet18) == []
    assert all(m.training for m in plain_resnet18.modules())


@pytest.mark.parametrize("name", METHODS)
def test_state_restored_after_exception(name, model, images, relevance, monkeypatch):
    model.train()
    method = make(name, model)

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(model.net.fc, "forward", boom)
    monkeypatch.setattr(model.net.layer2, "forward", boom)
    monkeypatch.setattr(nn.Linear, "forward", boom)  # also in the BatchNorm-folded copy
    if method.uses_model:
        with pytest.raises(RuntimeError, match="boom"):
            run(method, images[:2], relevance[:2])
    else:
        run(method, images[:2], relevance[:2])
    assert hook_dicts(model) == []
    assert all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(
    ("bad", "raises"),
    [(float("nan"), True), (float("inf"), True), (3e38, False)],  # 3e38 + 3e38 sums to inf
)
def test_output_check_rejects_only_non_finite_maps(model, bad, raises):
    method = make("random", model)
    maps = torch.zeros(2, 4, 4)
    maps[0, 0, :2] = bad
    if raises:
        with pytest.raises(RuntimeError, match="non-finite saliency values"):
            method.check_output(maps, (2, 4, 4))
    else:
        assert torch.equal(method.check_output(maps, (2, 4, 4)), maps)


def test_hookset_removes_every_hook_on_exception(model, images):
    class Hooked(SaliencyMethod):
        def _saliency(self, images, targets, *, relevance, generator):
            with self.hooks() as hooks:
                for module in self.model.modules():
                    hooks.forward(module, lambda *a: None)
                    hooks.forward_pre(module, lambda *a: None)
                hooks.backward(self.model.net.layer1, lambda *a: None)
                x = images.clone().requires_grad_(True)
                hooks.tensor(x, lambda g: g)
                assert hook_dicts(self.model)
                raise RuntimeError("inside the method")

    model.train()
    with pytest.raises(RuntimeError, match="inside the method"):
        Hooked(model).saliency(images)
    assert hook_dicts(model) == []
    assert all(m.training for m in model.modules())
    hs = HookSet()
    hs.forward(model, lambda *a: None)
    hs.remove()
    assert hook_dicts(model) == []


@pytest.mark.parametrize("name", [n for n in METHODS if n != "random"])
def test_one_target_per_image(name, model, images, relevance):
    """Image i's map does not depend on the other images of the batch, nor on batch_size.

    In float64, so that batched-vs-single convolution rounding does not blur the comparison."""
    m64 = copy.deepcopy(model).double().eval()
    x = images.double()
    method = make(name, m64)
    batch = check_batch_independent(method, x, relevance, rtol=1e-5, atol=1e-6)
    chunked = run(make(name, m64, batch_size=2), x, relevance)
    torch.testing.assert_close(chunked, batch, rtol=1e-5, atol=1e-6)


def test_random_map_per_image_from_generator(model, images):
    method = S.create("random", model)
    a = run(method, images, None, seed=5)
    assert not torch.equal(a, run(method, images, None, seed=6))
    assert not torch.equal(a[0], a[1])  # one map per image
    assert torch.equal(a, run(S.create("random", model, batch_size=1), images, None, seed=5))
    assert (a >= 0).all() and (a < 1).all()


# -- registry -------------------------------------------------------------------------------------------


def test_registry_errors_and_describe(model):
    with pytest.raises(
        ValueError,
        match=r"method.name='smoe_scal' is not a known saliency method \(did you mean 'smoe_scale'"
        r".*registered: .*smoe_scale",
    ):
        S.create("smoe_scal", model)
    with pytest.raises(
        UnknownName, match="'xyzzy' is not a known saliency method; registered: gradcam, "
    ):
        S.describe("xyzzy")
    with pytest.raises(TypeError, match="wieghts"):
        S.create("smoe_scale", model, wieghts="prior")
    with pytest.raises(
        TypeError, match="statistic"
    ):  # fixed by the registry entry, not a parameter
        S.create("smoe_scale", model, statistic=S.stats.mean)
    with pytest.raises(TypeError, match="weights"):
        S.create("gradient", model, weights="prior")
    with pytest.raises(ValueError, match="one value per map"):
        S.create("smoe_scale", model, weights=[1, 2])
    with pytest.raises(ValueError, match="unknown squash"):
        S.create("smoe_scale", model, squash="softmax")
    with pytest.raises(ValueError, match="already registered"):
        S.register("smoe_scale", label="x", reference="y")(SaliencyMethod)

    info = S.describe("smoe_scale")
    assert (info.label, info.kind, info.supports_layer) == ("SMOE Scale", "statistic", True)
    assert "Eq 2" in info.reference and info.params == {
        "batch_size": None,
        "weights": "equal",
        "squash": "normal",
    }
    assert S.describe("gradient").kind == "pixel" and not S.describe("gradient").supports_layer
    assert S.describe("random").kind == "control" and S.describe("random").supports_layer
    assert S.describe("ground_truth").supports_layer
    assert S.describe("truncnormal_entropy").needs_pre_relu
    assert not S.describe("smoe_scale").needs_pre_relu
    assert {"smoe_scale", "std", "mean", "random", "ground_truth", "gradient"} <= set(METHODS)
    for name in S.available():  # precomputed too
        info = S.describe(name)
        assert info.name == name and info.label and info.reference and info.kind in S.base.KINDS
        assert make(name, model).name == name


def test_targets_validation(model, images):
    method = S.create("gradient", model)
    with pytest.raises(ValueError, match="one target per image"):
        method.saliency(images, [0, 1])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        method.saliency(images, 7)
    with pytest.raises(ValueError, match="images must be"):
        method.saliency(images[0])


# -- per-tap maps (layer protocol) ------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in METHODS if S.describe(n).supports_layer])
def test_tap_saliency_shapes(name, model, images, relevance):
    model.eval()
    method = make(name, model)
    with torch.no_grad():
        taps, _ = model.forward_taps(images, pre_relu=method.needs_pre_relu)
    for tap in TAPS:
        act = taps[tap]
        method.bind_tap(tap)
        out = method.tap_saliency(
            act, relevance=relevance, generator=torch.Generator().manual_seed(0)
        )
        assert out.shape == (3, *act.post.shape[-2:]) and torch.isfinite(out).all()


def test_statistic_saliency_is_eq3_of_tap_maps(model, images):
    model.eval()
    method = S.create("smoe_scale", model, weights="prior")
    with torch.no_grad():
        taps, _ = model.forward_taps(images)
    maps = {t: method.tap_saliency(a) for t, a in taps.items()}
    expected = S.combine.combine(maps, (32, 32), weights="prior")
    torch.testing.assert_close(method.saliency(images), expected)
    torch.testing.assert_close(maps["L3"], S.stats.smoe_scale(taps["L3"].post))
    gamma = S.create("smoe_scale", model, squash="gamma").saliency(images)
    assert gamma.shape == (3, 32, 32) and torch.isfinite(gamma).all()


def test_pre_relu_statistic_needs_pre(model, images):
    method = S.create("truncnormal_std", model)
    with torch.no_grad():
        act = model.forward_to(images, "L2")
    with pytest.raises(ValueError, match="pre-ReLU"):
        method.tap_saliency(act)


def test_l1_pre_relu_is_before_the_relu(model, images):
    with torch.no_grad():
        taps, _ = model.forward_taps(images, pre_relu=True)
    assert (taps["L1"].pre < 0).any()


def test_layer_only_for_statistics_and_controls(model, images):
    with torch.no_grad():
        act = model.forward_to(images, "L2")
    with pytest.raises(NotImplementedError, match="layer protocol"):
        S.create("gradient", model).tap_saliency(act)


# -- controls ---------------------------------------------------------------------------------------------


def test_ground_truth(model, images, relevance):
    method = S.create("ground_truth", model, field="downsampled")
    torch.testing.assert_close(method.saliency(images, relevance=relevance), relevance)
    act = model.forward_to(images, "L3")  # 16 x 16
    expected = torch.nn.functional.avg_pool2d(relevance[:, None], 2)[:, 0]
    torch.testing.assert_close(method.tap_saliency(act, relevance=relevance), expected)
    # the default: what each location sees through the tap's effective receptive field
    method = S.create("ground_truth", model)
    with pytest.raises(ValueError, match="which tap"):
        method.tap_saliency(act, relevance=relevance)
    method.bind_tap("L3")
    seen = method.tap_saliency(act, relevance=relevance)
    field = method.receptive_field("L3", 32)
    torch.testing.assert_close(seen, field.carry(relevance))
    assert field.stride == 2 and field.size == (16, 16)
    msg = r"ground_truth needs the dataset's relevance maps \(synthetic datasets only\)"
    with pytest.raises(ValueError, match=msg):
        method.saliency(images)
    with pytest.raises(ValueError, match=msg):
        method.tap_saliency(act)


# -- gradient -----------------------------------------------------------------------------------------------


def test_gradient_matches_captum(model, images):
    captum_attr = pytest.importorskip("captum.attr")
    m = build_model("small_resnet", 4).double().eval()
    x = images.double()
    targets = torch.tensor([0, 3, 1])
    method = S.create("gradient", m, batch_size=2)
    ours = method.attribute(x, targets)
    ref = captum_attr.Saliency(m).attribute(
        x.clone().requires_grad_(True), target=targets, abs=False
    )
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    argmax = m(x).argmax(1)
    ref = captum_attr.Saliency(m).attribute(
        x.clone().requires_grad_(True), target=argmax, abs=False
    )
    torch.testing.assert_close(method.attribute(x), ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(method.saliency(x), ref.abs().amax(1).float())
    # One target per image: image 1's gradient for target 3 does not see the others' targets.
    alone = method.attribute(x[1:2], 3)
    torch.testing.assert_close(ours[1:2], alone, rtol=1e-10, atol=1e-12)


# -- configs ------------------------------------------------------------------------------------------------


REQUIRED_CONFIGS = [
    "random",
    "ground_truth",
    "smoe_scale",
    "smoe_scale_prior",
    "smoe_scale_linear",
    "std",
    "mean",
    "gradient",
]


def test_method_configs(model):
    """Every method id (a registered name or a conf/method preset) is a config ``{id, name,
    params}`` that creates its method."""
    from roarkar.saliency.configs import method_config, method_ids

    ids = method_ids()
    assert set(ids) >= set(REQUIRED_CONFIGS)
    for method_id in ids:
        cfg = method_config(method_id)
        assert set(cfg) == {"id", "name", "params"}, method_id
        assert cfg["id"] == method_id.rsplit("/", 1)[-1]  # nielsen2022/x keeps x's id
        method = S.create(cfg["name"], model, **cfg["params"])
        assert method.name == cfg["name"]
    prior = method_config("smoe_scale_prior")
    weights = S.create(prior["name"], model, **prior["params"]).weights
    assert weights == (0.18, 0.15, 0.37, 0.40, 0.72)
