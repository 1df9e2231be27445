"""method=gradcam_lib: any pytorch-grad-cam CAM by name through KAR and ROAR cells, its GradCAM
against roarkar's gradcam, bad input named before any training, the library's version in the
identity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import roarkar.saliency as S
from roarkar.identity import method_identity
from roarkar.models import build_model
from roarkar.protocols.cell import run_cell
from roarkar.saliency.conformance import ConformanceError, check_before_training
from tests.conftest import randomize_batchnorm

pytest.importorskip("pytorch_grad_cam")


@pytest.mark.parametrize("cam", ["ScoreCAM", "LayerCAM", "EigenCAM"])
def test_kar_and_roar_cells(compose_cfg, cam):
    for mode in ("kar", "roar"):
        cfg = compose_cfg(
            ["task=cell", "protocol=input", f"protocol.mode={mode}", "method=gradcam_lib"]
            + [f"method.params.cam={cam}"]
        )
        record = run_cell(cfg)
        assert record["status"] == "ok", record.get("error")
        assert record["cell"]["method"] == cam


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's scale_cam_image: per image, minus the minimum, over 1e-7 + the maximum."""
    shifted = maps - maps.amin((1, 2), keepdim=True)
    return shifted / (1e-7 + shifted.amax((1, 2), keepdim=True))


def test_gradcam_matches_roarkar_gradcam():
    """The library min-max scales the tap's map per image, resizes it bilinearly (OpenCV, in
    float32) and scales it again; roarkar's gradcam is the raw map: the same after the same
    scaling (the min-max tolerances of tests/test_saliency_cams.py)."""
    torch.manual_seed(0)
    model = randomize_batchnorm(build_model("small_resnet", 4, width=8).double().eval())
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2)).double()
    targets = torch.tensor([0, 3, 1])
    raw = S.create("gradcam", model).cam(x, targets)  # [B, h, w] at L5
    up = F.interpolate(minmax(raw)[:, None], size=(32, 32), mode="bilinear", align_corners=False)
    ours = minmax(up[:, 0])  # the library scales again after averaging its target layers
    theirs = S.create("gradcam_lib", model, cam="GradCAM").saliency(x, targets)
    torch.testing.assert_close(theirs, ours.float(), rtol=1e-4, atol=1e-6)


def test_bad_cams_are_named_and_identity_has_the_version():
    model = {"name": "small_resnet", "params": {"width": 8}}
    node = {"id": "gradcam_lib", "name": "gradcam_lib", "params": {"cam": "GradCAMM"}}
    with pytest.raises(
        ConformanceError,
        match="'GradCAMM' is not a known pytorch_grad_cam class .did you mean 'GradCAM'",
    ):
        check_before_training(node, model, {"image_size": 32, "num_classes": 4}, "")
    node["params"] = {"cam": "GradCAM", "layer": "L9"}
    with pytest.raises(ConformanceError, match="'loads'.*L9"):
        check_before_training(node, model, {"image_size": 32, "num_classes": 4}, "")
    from importlib.metadata import version

    assert method_identity(node)["library_version"] == version("grad-cam")
