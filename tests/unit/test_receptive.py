"""Effective receptive fields and input maps carried to a tap, on networks whose answer is known."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from roarkar.models import build_model
from roarkar.models.receptive import effective_receptive_field
from roarkar.saliency import create


def test_box_filters_give_their_own_footprint():
    maps = torch.rand(2, 16, 16)
    box = effective_receptive_field(nn.AvgPool2d(3, 1, 1), 16)
    assert box.stride == 1 and box.size == (16, 16)
    torch.testing.assert_close(box.kernel[7:10, 7:10], torch.full((3, 3), 1 / 9))
    assert box.kernel.sum() == pytest.approx(1) and box.kernel[6].sum() == 0
    torch.testing.assert_close(box.carry(maps), F.avg_pool2d(maps[:, None], 3, 1, 1)[:, 0])
    cells = effective_receptive_field(nn.AvgPool2d(2, 2), 16)
    assert cells.stride == 2 and cells.size == (8, 8)
    torch.testing.assert_close(cells.carry(maps), F.avg_pool2d(maps[:, None], 2)[:, 0])
    both = effective_receptive_field(nn.Sequential(nn.AvgPool2d(3, 1, 1), nn.AvgPool2d(2, 2)), 16)
    expected = F.avg_pool2d(F.avg_pool2d(maps[:, None], 3, 1, 1), 2)[:, 0]
    torch.testing.assert_close(both.carry(maps), expected)


def test_one_relevant_pixel_is_seen_by_its_ring():
    """A 3x3 stem sees a relevant pixel from the 3x3 locations around it, not from that one only
    (the downsampled map's leak), and the ground truth at the tap says so."""
    relevance = torch.zeros(1, 16, 16)
    relevance[0, 5, 9] = 1
    seen = effective_receptive_field(nn.AvgPool2d(3, 1, 1), 16).carry(relevance)[0]
    assert set(map(tuple, seen.nonzero().tolist())) == {
        (y, x) for y in (4, 5, 6) for x in (8, 9, 10)
    }


def test_deep_taps_see_widely_and_the_prefix_keeps_its_modes():
    model = build_model("small_resnet", 4)
    model.eval()
    gt = create("ground_truth", model)
    widths = []
    for tap in ("L1", "L3", "L5"):
        field = gt.receptive_field(tap, 32)
        assert field.kernel.sum() == pytest.approx(1, abs=1e-5) and (field.kernel >= 0).all()
        widths.append(int((field.kernel > 1e-3 * field.kernel.max()).sum()))
    assert widths[0] == 9  # the CIFAR stem: one 3x3 convolution
    assert widths[0] < widths[1] < widths[2]
    assert not any(m.training for m in model.modules()), "measuring must not switch modes"
    model.train()
    gt.receptive_field("L2", 32)
    assert all(m.training for m in model.modules())
