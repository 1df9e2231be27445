"""Taps found from the graph of any torchvision CNN, and the pipeline's three uses of a model (a
saliency map, the layer protocol's masked forward, the input protocol's training step) on five
families; seed 002's CNN exactly as its Fig. 1."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from roarkar.models import TappedNet, build_model
from roarkar.protocols.layer import TapMaskedNet
from roarkar.saliency import create


def test_resnet50_taps_are_the_hand_checked_ones():
    """The graph rule finds what the ResNet-50 taps were by hand: the stem ReLU and the outputs of
    layer1..layer4 (their last block's closing ReLU), 112, 56, 28, 14 and 7 px at 224 px."""
    model = build_model("resnet50", 10).eval()
    assert [t.node for t in model.tap_info] == [
        "relu", "layer1.2.relu_2", "layer2.3.relu_2", "layer3.5.relu_2", "layer4.2.relu_2"
    ]  # fmt: skip
    with torch.no_grad():
        taps, logits = model.forward_taps(torch.randn(1, 3, 224, 224))
        net = model.net
        x = net.relu(net.bn1(net.conv1(torch.randn(0, 3, 224, 224))))  # shape only
    assert [a.post.shape[-1] for a in taps.values()] == [112, 56, 28, 14, 7]
    assert taps["L5"].post.shape[1] == 2048 and x.shape[1] == 64
    assert all(t.rectified and t.has_pre for t in model.tap_info)


def test_vgg16_taps_are_the_last_relu_before_each_max_pool():
    model = build_model("vgg16", 10).eval()
    assert [t.node for t in model.tap_info] == [f"features.{i}" for i in (3, 8, 15, 22, 29)]
    pools = [i for i, m in enumerate(model.net.features) if isinstance(m, nn.MaxPool2d)]
    assert [i - 1 for i in pools] == [3, 8, 15, 22, 29]  # each tap is the ReLU a pool follows
    with torch.no_grad():
        taps, _ = model.forward_taps(torch.randn(1, 3, 224, 224))
    assert [a.post.shape[-1] for a in taps.values()] == [224, 112, 56, 28, 14]


def test_nielsen_cnn_is_seed_002_fig_1():
    """conv1 28x28x32, SELU, pool 14x14x32, conv2 14x14x64, SELU, pool 7x7x64, flatten 3136,
    linear 128, SELU, dropout 0.5, linear 10; two scales, so two taps."""
    model = build_model("nielsen_cnn", 10, in_channels=1).eval()
    net = model.net
    assert (net.conv1.in_channels, net.conv1.out_channels, net.conv1.kernel_size) == (1, 32, (3, 3))
    assert (net.conv2.out_channels, net.conv2.padding) == (64, (1, 1))
    assert (net.linear1.in_features, net.linear1.out_features) == (3136, 128)
    assert net.dropout.p == 0.5 and net.linear2.out_features == 10
    assert model.taps == ("L1", "L2") and [t.node for t in model.tap_info] == ["act1", "act2"]
    assert not any(t.rectified for t in model.tap_info)  # SELU can be negative
    with torch.no_grad():
        taps, logits = model.forward_taps(torch.randn(2, 1, 28, 28))
    assert [tuple(a.post.shape[1:]) for a in taps.values()] == [(32, 28, 28), (64, 14, 14)]
    assert logits.shape == (2, 10)
    assert build_model("nielsen_cnn", 10).net.conv1.in_channels == 3  # RGB by default


FAMILIES = [
    ("resnet18", {}, 5),
    ("vgg16", {}, 5),
    ("torchvision", {"arch": "densenet121"}, 5),
    ("torchvision", {"arch": "mobilenet_v3_small"}, 5),
    ("torchvision", {"arch": "efficientnet_b0"}, 5),
    ("torchvision", {"arch": "convnext_tiny"}, 4),  # stride-4 stem: no tap at 112 px
]


@pytest.fixture(scope="module", params=FAMILIES, ids=lambda f: f[1].get("arch", f[0]))
def family(request) -> tuple[TappedNet, int]:
    name, params, taps = request.param
    torch.manual_seed(0)
    return build_model(name, 4, **dict(params)), taps


def test_a_family_runs_saliency_layer_masking_and_a_training_step(family):
    model, count = family
    assert len(model.taps) == count
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    model.eval()
    with torch.no_grad():
        taps, logits = model.forward_taps(x)
        sizes = [a.post.shape[-1] for a in taps.values()]
        assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
        # the layer protocol's split: the rest of the network after a tap gives the same logits
        for tap, act in taps.items():
            torch.testing.assert_close(model.forward_from(act.post, tap), logits)
    # a saliency map from the taps and one from gradients
    for method in ("smoe_scale", "gradient"):
        out = create(method, model).saliency(x)
        assert out.shape == (2, 64, 64) and torch.isfinite(out).all()
    # the layer protocol's masked forward at the middle tap, and a fine-tuning step after it
    tap = model.taps[len(model.taps) // 2]
    masked = TapMaskedNet(model, tap, create("smoe_scale", model), "roar", 0.5)
    trainable = model.freeze_prefix(tap)
    assert 0 < len(trainable) < len(list(model.parameters()))
    model.train()
    for m in model.prefix_modules(tap):
        m.eval()
    loss = nn.functional.cross_entropy(masked(x), torch.tensor([0, 1]))
    loss.backward()
    assert all(p.grad is not None for p in trainable if p.requires_grad)
    assert all(p.grad is None for p in model.prefix_parameters(tap))
    # the input protocol's training step: the whole network on (masked) images
    for p in model.parameters():
        p.requires_grad_(True)
        p.grad = None
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    nn.functional.cross_entropy(model(x * (x > 0)), torch.tensor([2, 3])).backward()
    optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


def test_pieces_follow_the_network_through_a_copy_and_a_dtype_change():
    import copy

    model = build_model("vgg16", 3).eval()
    twin = copy.deepcopy(model).double()
    with torch.no_grad():
        twin.net.features[0].weight.add_(1.0)  # the copy's pieces use the copy's weights
        x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
        taps, logits = twin.forward_taps(x)
        torch.testing.assert_close(logits, twin(x))
        assert not torch.allclose(logits.float(), model(x.float()))


def test_model_state_dict_is_the_networks_alone():
    model = build_model("small_resnet", 4)
    assert all(k.startswith("net.") for k in model.state_dict())
    assert len(model.state_dict()) == len(model.net.state_dict())


@pytest.mark.parametrize(
    ("name", "params", "reason"),
    [
        ("torchvision", {"arch": "vit_b_16"}, "vision transformer: it has no spatial scales"),
        ("torchvision", {"arch": "swin_t"}, "vision transformer"),
        ("nielsen_cnn", {"image_size": 30}, "multiple of 4"),
    ],
)
def test_what_cannot_be_tapped_is_refused(name, params, reason):
    with pytest.raises(ValueError, match=reason):
        build_model(name, 4, **params)


def test_a_tap_the_network_lacks_names_its_taps():
    model = build_model("nielsen_cnn", 10)
    with pytest.raises(
        ValueError, match=r"unknown tap 'L5' for nielsen_cnn: expected one of L1, L2"
    ):
        create("gradcam", model)
    assert create("gradcam", model, layer="last").layer == "L2"
