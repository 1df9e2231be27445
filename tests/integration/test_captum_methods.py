"""method=captum: any captum.attr class by name through KAR and ROAR cells, agreement with roarkar
where the definitions meet (tolerances of tests/test_saliency_gradients.py), missing arguments
named before any training, the library's version in the identity."""

from __future__ import annotations

import pytest
import torch

import roarkar.saliency as S
from roarkar.identity import method_identity
from roarkar.models import build_model
from roarkar.protocols.cell import run_cell
from roarkar.saliency.configs import result_id
from roarkar.saliency.conformance import ConformanceError, check_before_training
from tests.conftest import randomize_batchnorm

captum = pytest.importorskip("captum")

TARGETS = torch.tensor([0, 3, 1])
CELLS = {
    "DeepLift": [],
    "Occlusion": ["+method.params.kwargs.sliding_window_shapes=[3,8,8]"]
    + ["+method.params.kwargs.strides=[3,8,8]"],
    "GradientShap": ["+method.params.kwargs.baselines=0.0", "+method.params.kwargs.n_samples=2"],
}


@pytest.fixture(scope="module")
def m64():
    torch.manual_seed(0)
    return randomize_batchnorm(build_model("small_resnet", 4, width=8).double().eval())


@pytest.fixture(scope="module")
def x64():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2)).double()


@pytest.mark.parametrize("attr", list(CELLS))
def test_kar_and_roar_cells(compose_cfg, attr):
    for mode in ("kar", "roar"):
        cfg = compose_cfg(
            ["task=cell", "protocol=input", f"protocol.mode={mode}", "method=captum"]
            + [f"method.params.attr={attr}", *CELLS[attr]]
        )
        record = run_cell(cfg)
        assert record["status"] == "ok", record.get("error")
        assert record["cell"]["method"] == attr  # the tables' row: the class name
        assert record["config"]["method"]["params"]["attr"] == attr


def test_saliency_abs_matches_roarkar_gradient(m64, x64):
    ours = S.create("gradient", m64).saliency(x64, TARGETS)
    theirs = S.create("captum", m64, attr="Saliency", kwargs={"abs": True}).saliency(x64, TARGETS)
    torch.testing.assert_close(theirs, ours, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rule", ["riemann_right", "gausslegendre"])
def test_integrated_gradients_matches_roarkar(m64, x64, rule):
    ours = S.create("integrated_gradients", m64, steps=8, rule=rule, baseline="zero")
    kwargs = {"n_steps": 8, "method": rule, "baselines": 0.0}
    theirs = S.create("captum", m64, attr="IntegratedGradients", kwargs=kwargs)
    # Captum rounds its Riemann points to float32; ours are exact float64.
    torch.testing.assert_close(
        theirs.saliency(x64, TARGETS), ours.saliency(x64, TARGETS), rtol=1e-6, atol=1e-9
    )


def test_layer_attribution_at_a_tap(m64, x64):
    cam = S.create(
        "captum", m64, attr="LayerGradCam", layer="L5", kwargs={"relu_attributions": True}
    )
    torch.testing.assert_close(
        cam.saliency(x64, TARGETS), S.create("gradcam", m64).saliency(x64, TARGETS)
    )


def _check(attr: str, **params) -> None:
    method = {"id": "captum", "name": "captum", "params": {"attr": attr, **params}}
    model = {"name": "small_resnet", "params": {"width": 8}}
    check_before_training(method, model, {"image_size": 32, "num_classes": 4}, "")


def test_bad_classes_and_arguments_are_named():
    with pytest.raises(ConformanceError, match=r"'loads'.*needs argument\(s\) baselines"):
        _check("GradientShap")
    with pytest.raises(ConformanceError, match=r"'loads'.*attribution_method"):
        _check("NoiseTunnel")
    with pytest.raises(
        ConformanceError,
        match="'Saliancy' is not a known captum.attr class .did you mean 'Saliency'",
    ):
        _check("Saliancy")
    with pytest.raises(ConformanceError, match="takes no argument.*n_step"):
        _check("IntegratedGradients", kwargs={"n_step": 4})
    _check("GradientShap", kwargs={"baselines": 0.0, "n_samples": 2})  # stochastic: per image


def test_identity_hashes_class_params_and_version():
    node = {"id": "captum", "name": "captum", "params": {"attr": "DeepLift", "label": None}}
    assert method_identity(node)["library_version"] == captum.__version__
    assert result_id(node) == "DeepLift"
    assert result_id(node | {"params": {"attr": "DeepLift", "label": "DL"}}) == "DL"
