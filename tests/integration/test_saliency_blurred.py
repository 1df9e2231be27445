"""The blur control (issue 28 item 5): a Gaussian over any method's map, ground_truth included."""

from __future__ import annotations

import math

import pytest
import torch

import roarkar.saliency as S
from roarkar.models import build_model
from roarkar.protocols.cell import run_cell
from roarkar.saliency.labels import method_label


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("small_resnet", 4)


def _gt(model, relevance: torch.Tensor, sigma: float) -> torch.Tensor:
    method = S.create("blurred", model, inner="ground_truth", sigma=sigma)
    images = torch.zeros(relevance.shape[0], 3, *relevance.shape[1:])
    return method.saliency(images, relevance=relevance)


def test_blurred_delta_is_the_gaussian_kernel(model):
    sigma, centre = 1.5, 16
    delta = torch.zeros(1, 32, 32)
    delta[0, centre, centre] = 1.0
    out = _gt(model, delta, sigma)[0]
    radius = math.ceil(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    expected = torch.zeros(32, 32, dtype=torch.float64)
    span = slice(centre - radius, centre + radius + 1)
    expected[span, span] = k[:, None] * k[None, :]
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=1e-7)
    assert math.isclose(float(out.sum()), 1.0, abs_tol=1e-6)  # an interior map keeps its total


def test_blur_keeps_a_constant_map_and_sigma_zero_is_the_map(model):
    rel = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        _gt(model, torch.full((1, 32, 32), 0.25), 3.0), torch.full((1, 32, 32), 0.25)
    )
    assert torch.equal(_gt(model, rel, 0.0), rel)
    blurred = _gt(model, rel, 2.0)
    assert blurred.std() < rel.std()  # smoother
    assert not torch.equal(blurred, rel)


def test_blurred_follows_its_inner_method(model):
    gt = S.create("blurred", model, inner="ground_truth")
    assert not gt.uses_model and S.create("blurred", model).uses_model  # default inner: gradient
    with pytest.raises(ValueError, match="ground_truth needs"):
        gt.saliency(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="sigma"):
        S.create("blurred", model, sigma=-1.0)
    with pytest.raises(ValueError, match="is not a known saliency method"):
        S.create("blurred", model, inner="no_such_method")
    smooth = S.create(
        "blurred",
        model,
        inner="smoothgrad",
        inner_params={"samples": 2},
        mean=[0.5] * 3,
        std=[0.2] * 3,
    )
    assert smooth.inner.mean == (0.5, 0.5, 0.5)  # the dataset's normalisation reaches the inner
    assert method_label("blurred_ground_truth") == "Blurred Ground Truth"
    assert method_label("blurred_smoe_scale") == "Blurred SMOE Scale"


def test_input_cell_over_blurred_ground_truth_runs(compose_cfg):
    record = run_cell(compose_cfg(["task=cell", "protocol=input", "method=blurred_ground_truth"]))
    assert record["status"] == "ok" and 0.0 <= record["accuracy"] <= 1.0
    assert record["cell"]["method"] == "blurred_ground_truth"
    assert record["config"]["method"]["params"] == {"sigma": 2.0, "inner": "ground_truth"}
