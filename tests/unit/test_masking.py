"""Exact top-k masks: exactly round(p*H*W) locations, ties at random, right direction for KAR/ROAR."""

import pytest
import torch

from roarkar.removal import (
    check_percent,
    count_for,
    fill_removed,
    keep_mask_from_ranks,
    saliency_ranks,
    topk_mask,
)


@pytest.mark.parametrize("fraction", [0.0, 0.025, 0.1, 0.3, 0.5, 0.9, 1.0])
def test_exact_count_on_random_and_tied_maps(fraction):
    g = torch.Generator().manual_seed(0)
    for saliency in (torch.rand(4, 7, 9, generator=g), torch.zeros(4, 7, 9), torch.ones(4, 7, 9)):
        mask = topk_mask(saliency, fraction, generator=g)
        assert mask.dtype == torch.bool
        assert mask.sum(dim=(1, 2)).tolist() == [count_for(fraction, 63)] * 4


def test_round_half_up_and_bounds():
    assert count_for(0.025, 49) == 1  # 1.225 -> 1 (the paper's L5 at 7x7)
    assert count_for(0.1, 49) == 5  # 4.9 -> 5
    assert count_for(0.5, 3) == 2  # 1.5 -> 2
    with pytest.raises(ValueError, match="fraction"):
        count_for(1.5, 10)


def test_selects_most_salient():
    saliency = torch.arange(16.0).view(1, 4, 4)
    mask = topk_mask(saliency, 0.25)
    assert mask[0].flatten().nonzero().flatten().tolist() == [12, 13, 14, 15]


def test_ties_are_broken_at_random_not_raster_order():
    counts = torch.zeros(64)
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        counts += topk_mask(torch.zeros(1, 8, 8), 0.25, generator=g)[0].flatten().float()
    # raster-order tie-breaking would always pick the first 16 locations
    assert counts[:16].mean() < 0.5 * 200
    assert counts.min() > 0


def test_ties_only_among_tied_values():
    saliency = torch.tensor([[[5.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]]])
    for seed in range(10):
        mask = topk_mask(saliency, 3 / 8, generator=torch.Generator().manual_seed(seed))[0]
        assert mask[0, 0] and mask.sum() == 3 and not mask[1, 2] and not mask[1, 3]


def test_deterministic_for_a_seed():
    s = torch.zeros(2, 5, 5)
    a = topk_mask(s, 0.3, generator=torch.Generator().manual_seed(3))
    b = topk_mask(s, 0.3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_ranks_are_a_permutation_and_modes_are_complements():
    ranks = saliency_ranks(torch.rand(3, 6, 6))
    assert sorted(ranks[1].flatten().tolist()) == list(range(36))
    kar = keep_mask_from_ranks(ranks, "kar", 0.3)
    roar = keep_mask_from_ranks(ranks, "roar", 0.3)
    assert torch.equal(kar, ~roar)
    assert kar.sum().item() == 3 * count_for(0.3, 36)
    with pytest.raises(ValueError, match="unknown mode 'keep'"):
        keep_mask_from_ranks(ranks, "keep", 0.3)


def test_nan_saliency_is_refused():
    s = torch.rand(1, 4, 4)
    s[0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        topk_mask(s, 0.5)


def test_replacement_fills_every_channel():
    images = torch.ones(1, 3, 2, 2)
    keep = torch.tensor([[[True, False], [False, True]]])
    out = fill_removed(images, ~keep, torch.tensor([0.1, 0.2, 0.3]))
    assert out[0, :, 0, 1].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert out[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("bad", [0, 100, -5, 150, "ten", None])
def test_percent_outside_open_interval(bad):
    with pytest.raises(ValueError, match="protocol.percent"):
        check_percent(bad, "protocol.percent")
