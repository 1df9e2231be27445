"""Any model with named taps (issue 25, item 5): hooks another library left on a network are set
aside while it is traced (LLNL/fastcam's ``SaliencyModel`` leaves ones that branch on their
output), and a network torch.fx cannot trace is tapped by forward hooks on the modules
``model.taps`` names, through a layer-protocol cell, with the same forward_from check."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from roarkar.models import MODELS, TappedNet, build_model, check_forward_from
from roarkar.models.hooks import HookTappedNet
from roarkar.protocols.cell import run_cell
from roarkar.protocols.layer import TapMaskedNet
from roarkar.saliency import create


class BranchyCNN(nn.Module):
    """A small CNN whose forward branches on a tensor's value: torch.fx cannot trace it."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.conv1, self.bn1, self.act1 = (
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
        )
        self.pool = nn.MaxPool2d(2)
        self.conv2, self.bn2, self.act2 = (
            nn.Conv2d(8, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
        )
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        if x.mean() > 0:  # data-dependent control flow
            x = x + 0.0
        x = self.act2(self.bn2(self.conv2(self.pool(x))))
        return self.fc(x.mean((2, 3)))


if "branchy_cnn" not in MODELS:  # a registry entry is how a model is added
    MODELS.register("branchy_cnn", BranchyCNN)


def _fastcam_like_hook(seen: list):
    """A forward hook as fastcam's SaliencyModel leaves them: Python control flow on the output."""

    def hook(module, inputs, output):
        if output.sum() > 0:
            seen.append(type(output))

    return hook


def test_tracing_sets_foreign_hooks_aside_and_keeps_them():
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None, num_classes=4)
    seen: list = []
    handle = net.layer4.register_forward_hook(_fastcam_like_hook(seen))
    model = TappedNet(net, name="resnet50")
    assert model.taps == ("L1", "L2", "L3", "L4", "L5")
    assert all(t is torch.Tensor for t in seen)  # the hook never saw a tracing proxy
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    fired = len(seen)
    with torch.no_grad():
        logits = model(x)
        assert len(seen) == fired + 1  # still registered, still firing
        torch.testing.assert_close(model.forward_from(model.forward_to(x, "L3").post, "L3"), logits)
    handle.remove()  # its handle still removes it: the same hook dictionary was put back
    with torch.no_grad():
        model(x)
    assert len(seen) == fired + 1


def test_a_foreign_hook_that_changes_an_output_is_refused_with_its_name():
    net = torchvision.models.resnet18(weights=None, num_classes=4)
    net.layer3.register_forward_hook(lambda module, inputs, output: output * 2)
    with pytest.raises(ValueError, match=r"layer3: .*<lambda>.*model\.taps="):
        TappedNet(net, name="resnet18")


def test_an_untraceable_network_suggests_model_taps_and_keeps_its_hooks():
    net = BranchyCNN(4)
    seen: list = []
    net.act2.register_forward_hook(_fastcam_like_hook(seen))
    with pytest.raises(ValueError, match=r"cannot be traced by torch\.fx .*model\.taps=\["):
        build_model("branchy_cnn", 4)
    with pytest.raises(ValueError, match=r"cannot be traced by torch\.fx .*model\.taps=\["):
        TappedNet(net)
    net.eval()(torch.randn(1, 3, 16, 16).abs())
    assert seen == [torch.Tensor]


@pytest.fixture
def branchy() -> HookTappedNet:
    torch.manual_seed(0)
    model = build_model("branchy_cnn", 4, taps=["act1", "act2"])
    assert isinstance(model, HookTappedNet)
    return model


def test_hook_taps_split_the_network_like_traced_taps(branchy):
    assert branchy.taps == ("L1", "L2") and [t.node for t in branchy.tap_info] == ["act1", "act2"]
    assert all(t.rectified and not t.has_pre for t in branchy.tap_info)
    branchy.eval()
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    check_forward_from(branchy, x)
    with torch.no_grad():
        taps, logits = branchy.forward_taps(x)
        assert [tuple(a.post.shape[1:]) for a in taps.values()] == [(8, 16, 16), (16, 8, 8)]
        torch.testing.assert_close(logits, branchy(x))
        torch.testing.assert_close(branchy.forward_to(x, "L2").post, taps["L2"].post)
        torch.testing.assert_close(branchy.stage(1, taps["L1"].post)[0], taps["L2"].post)
        torch.testing.assert_close(branchy.head(taps["L2"].post), logits)
        zeroed = branchy.forward_masked(x, "L1", lambda act: act.post * 0)
        torch.testing.assert_close(zeroed, branchy.forward_from(taps["L1"].post * 0, "L1"))
    out = create("smoe_scale", branchy).saliency(x)
    assert out.shape == (3, 16, 16) and torch.isfinite(out).all()


def test_hook_taps_fine_tune_only_after_the_tap(branchy):
    method = create("smoe_scale", branchy)
    masked = TapMaskedNet(branchy, "L1", method, "roar", 0.5)
    trainable = branchy.freeze_prefix("L1")
    prefix = {id(p) for p in branchy.prefix_parameters("L1")}
    first = [branchy.net.conv1, branchy.net.bn1]
    assert prefix == {id(p) for m in first for p in m.parameters()}
    assert {id(p) for p in trainable} == {id(p) for p in branchy.parameters()} - prefix
    branchy.train()
    for m in branchy.prefix_modules("L1"):
        m.eval()
    x = torch.randn(4, 3, 16, 16)
    nn.functional.cross_entropy(masked(x), torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None for p in trainable)
    assert all(p.grad is None for p in branchy.prefix_parameters("L1"))
    assert torch.is_grad_enabled()


def test_hook_taps_refuse_what_they_cannot_give(branchy):
    with pytest.raises(ValueError, match="truncnormal_entropy needs each tap's pre-ReLU tensor"):
        TapMaskedNet(branchy, "L1", create("truncnormal_entropy", branchy), "kar", 0.5)
    with pytest.raises(ValueError, match="truncnormal_entropy needs each tap's pre-ReLU tensor"):
        create("truncnormal_entropy", branchy).saliency(torch.randn(1, 3, 16, 16))
    resnet = torchvision.models.resnet18(weights=None, num_classes=4)
    with pytest.raises(ValueError, match=r"after tap L1 \(layer1\.0\.conv1\) does not give"):
        HookTappedNet(resnet, ["layer1.0.conv1", "layer2"])
    with pytest.raises(ValueError, match=r"not in the order the network runs them"):
        HookTappedNet(resnet, ["layer2", "layer1"])
    with pytest.raises(ValueError, match=r"'layer9', not a module of the network"):
        HookTappedNet(resnet, ["layer9"])
    with pytest.raises(ValueError, match=r"'layer1\.0\.relu' runs 2 times"):
        HookTappedNet(resnet, ["layer1.0.relu"])


def test_a_layer_cell_runs_with_model_taps_and_suggests_them_without(compose_cfg):
    model = ["model=resnet18", "model.name=branchy_cnn"]
    record = run_cell(
        compose_cfg(["task=cell", *model, "+model.taps=[act1,act2]", "protocol.layer=L2"])
    )
    assert record["status"] == "ok" and 0 <= record["accuracy"] <= 1
    assert record["config"]["model"]["taps"] == ["act1", "act2"]
    with pytest.raises(ValueError, match=r"cannot be traced by torch\.fx .*model\.taps=\["):
        run_cell(compose_cfg(["task=cell", *model, "protocol.layer=L2"]))
