"""The BatchNorm-folded copy the gradient methods run: same function, fresh whenever weights change."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import roarkar.saliency as S
from roarkar.models import build_model
from roarkar.models.fused import fold_batchnorm, inference_copy
from tests.conftest import randomize_batchnorm


@pytest.fixture()
def model64():
    torch.manual_seed(0)
    model = build_model("small_resnet", 5).double()
    # BatchNorm far from the identity, so folding matters
    return randomize_batchnorm(model, (-1, 1), (0.3, 3), weight=(0.5, 1.5), bias=(-0.5, 0.5))


def test_folded_copy_is_the_same_function(model64):
    model64.train()
    model64.net.bn1.eval()  # a mixed state (a frozen prefix), restored module by module
    folded = fold_batchnorm(model64.net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert not any(p.requires_grad for p in folded.parameters())
    assert [m for m in model64.modules() if not m.training] == [model64.net.bn1]  # unchanged
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    model64.eval()
    torch.testing.assert_close(folded(x), model64(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["gradient", "guided_backprop", "grad_x_input", "smoothgrad_sq"])
def test_fused_and_unfused_attributions_agree(model64, name):
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)

    def run(method):
        noisy = name == "smoothgrad_sq"
        seeded = {"generator": torch.Generator().manual_seed(1)} if noisy else {}
        return method.attribute(x, [1, 3], **seeded)

    fast = run(S.create(name, model64))
    plain = run(S.create(name, model64, fused=False))
    assert fast.is_contiguous()
    torch.testing.assert_close(fast, plain, rtol=1e-9, atol=1e-12)


def test_copy_is_cached_until_the_weights_change(model64):
    net = model64.net
    first = inference_copy(net)
    assert inference_copy(net) is first
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    # An optimizer step (in-place update) makes a fresh copy with the new weights.
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    net(x).sum().backward()
    opt.step()
    net.eval()
    second = inference_copy(net)
    assert second is not first
    torch.testing.assert_close(second(x), net(x), rtol=1e-10, atol=1e-12)
    # So do a new state dict and a new dtype.
    net.load_state_dict(build_model("small_resnet", 5).double().net.state_dict())
    third = inference_copy(net)
    assert third is not second
    torch.testing.assert_close(third(x), net.eval()(x), rtol=1e-10, atol=1e-12)
    net.float()
    assert next(inference_copy(net).parameters()).dtype == torch.float32


def test_untraceable_network_runs_unfused_with_a_warning():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.bn(self.conv(x))
            return y if y.sum() > 0 else -y  # data-dependent: torch.fx cannot trace it

    net = Branchy().eval()
    with pytest.warns(UserWarning, match="cannot fold BatchNorm into the convolutions of Branchy"):
        copy = fold_batchnorm(net)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(copy(x), net(x))


@pytest.mark.parametrize("tap", ["L1", "L3", "L5"])
def test_layer_protocol_prefix_runs_folded_with_the_same_result(model64, tap, monkeypatch):
    """TapMaskedNet's frozen prefix (eval mode) runs the folded copy: same logits as the
    stage-by-stage path (written out here), no new weights."""
    from roarkar.protocols import layer
    from roarkar.protocols.layer import TapMaskedNet
    from roarkar.removal import keep_mask_from_ranks, saliency_ranks

    folded_runs = []

    def counted_copy(module: nn.Module) -> nn.Module:
        folded_runs.append(module)
        return inference_copy(module)

    monkeypatch.setattr(layer, "inference_copy", counted_copy)
    method = S.create("smoe_scale", model64)
    net = TapMaskedNet(model64, tap, method, "kar", 0.5).eval()
    assert set(net.state_dict()) == {f"model.{k}" for k in model64.state_dict()}
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        net.generator = torch.Generator().manual_seed(3)  # ties in the map are broken alike
        folded = net(x)
        generator = torch.Generator().manual_seed(3)
        act = model64.forward_to(x, tap)  # the stage-by-stage path
        tap_map = method.tap_saliency(act, generator=generator)
        keep = keep_mask_from_ranks(saliency_ranks(tap_map, generator), "kar", 0.5)
        plain = model64.forward_from(act.post * keep.unsqueeze(1).to(act.post.dtype), tap)
    assert folded_runs  # the prefix ran as the folded copy
    torch.testing.assert_close(folded, plain, rtol=1e-9, atol=1e-12)
    # Training: the prefix stays in eval mode while its copy is built (its BatchNorm is frozen).
    net.train()
    for module in model64.prefix_modules(tap):
        module.eval()
    net(x).sum().backward()
    assert not any(m.training for p in model64.prefix_modules(tap) for m in p.modules())
    folded_runs.clear()
    pre = TapMaskedNet(model64, tap, S.create("truncnormal_std", model64), "kar", 0.5).eval()
    with torch.no_grad():
        pre(x)
    assert not folded_runs  # needs the pre-ReLU tensor: the stage-by-stage path
