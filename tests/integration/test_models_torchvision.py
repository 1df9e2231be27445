"""``model=torchvision model.params.arch=<name>``: any torchvision classification CNN, tapped at its
scales; vision transformers and unknown names are refused with the reason."""

from __future__ import annotations

import pytest
import torch

from roarkar.cli import run
from roarkar.models import build_model


@pytest.mark.parametrize("arch", ["resnet34", "resnext50_32x4d"])
def test_a_torchvision_resnet_family_model_has_five_taps(arch):
    model = build_model(arch, 10, arch=arch).eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        taps, logits = model.forward_taps(x)
        widths = [a.post.shape[-1] for a in taps.values()]
        assert widths == [32, 16, 8, 4, 2]  # 112, 56, 28, 14, 7 at 224 px, as ResNet-50
        assert logits.shape == (1, 10)
        # the layer protocol's split: the part after a tap gives the same logits
        assert torch.allclose(model.forward_from(taps["L3"].post, "L3"), logits, atol=1e-5)


@pytest.mark.parametrize(
    ("arch", "reason"),
    [
        ("vit_b_16", "vision transformer: it has no spatial scales"),
        ("resnet9000", "not a torchvision classification model"),
    ],
)
def test_other_architectures_are_refused_with_the_reason(arch, reason):
    with pytest.raises(ValueError, match=reason):
        build_model(arch, 10, arch=arch)


def test_published_style_weights_of_a_torchvision_resnet_are_a_base_model(compose_cfg, tmp_path):
    """A torchvision state_dict (as its .pth files hold) for resnet34, loaded as the base model."""
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.resnet34(weights=None, num_classes=8).state_dict()
    torch.save(state, tmp_path / "resnet34.pth")
    cfg = compose_cfg(
        ["task=base", "model=torchvision", "model.params.arch=resnet34",
         f"model.weights={tmp_path / 'resnet34.pth'}"]
    )  # fmt: skip
    out = run(cfg, compose_cfg.overrides)
    assert 0 <= out["accuracy"] <= 1
    (base,) = (tmp_path / "results" / "models" / "synth_objects").iterdir()
    assert base.name.startswith("resnet34-weights-")
