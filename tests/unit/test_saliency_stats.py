"""Per-tap statistics (Table 3, shapes, closed forms) and the Eq 3 combination."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from roarkar.saliency import combine as C
from roarkar.saliency import stats

ALL_STATS = [
    stats.smoe_scale,
    stats.std,
    stats.mean,
    stats.normal_entropy,
    stats.shannon_entropy,
    stats.lognormal_mean,
    stats.lognormal_entropy,
    stats.truncnormal_mean,
    stats.truncnormal_std,
    stats.truncnormal_entropy,
    stats.gamma_scale,
]


def column(values: list[float], n: int = 64) -> torch.Tensor:
    """A [1, n, 1, 1] activation repeating ``values`` along the channels."""
    reps = n // len(values)
    return torch.tensor(values * reps, dtype=torch.float32).view(1, -1, 1, 1)


# Table 3 of the paper: alternating input values -> SMOE Scale (3 decimals).
TABLE3 = [
    ([0.5, 1.0], 0.064),
    ([1.0, 2.0], 0.127),
    ([2.0, 4.0], 0.255),
    ([2.0, 3.0], 0.074),
    ([0.6125, 1.8375], 0.254),
]


@pytest.mark.parametrize("values,expected", TABLE3)
def test_smoe_scale_reproduces_table3(values, expected):
    x = column(values)
    assert stats.smoe_scale(x).item() == pytest.approx(expected, abs=0.0015)
    assert stats.mean(x).item() == pytest.approx(sum(values) / 2)
    # Table 3's STD column is the population std; ours is the sample std of the 64 values.
    assert stats.std(x).item() == pytest.approx(abs(values[1] - values[0]) / 2, rel=0.02)


def test_smoe_scale_is_eq1_with_eps():
    x = torch.rand(2, 32, 3, 4) * (torch.rand(2, 32, 3, 4) > 0.3)
    xe = x.double() + 1e-6
    eq1 = xe.mean(1) * (torch.log2(xe.mean(1)) - torch.log2(xe).mean(1))
    torch.testing.assert_close(stats.smoe_scale(x).double(), eq1, rtol=1e-4, atol=1e-6)
    assert stats.smoe_scale(torch.zeros(1, 8, 2, 2)).abs().max() < 1e-9


@pytest.mark.parametrize("fn", ALL_STATS, ids=lambda f: f.__name__)
def test_statistic_shape_dtype_finite(fn):
    x = torch.relu(torch.randn(3, 16, 5, 7))
    x[0, :, 0, 0] = 0  # an all-zero column
    x[1, :, 1, 1] = 2.0  # a constant column
    out = fn(x)
    assert out.shape == (3, 5, 7) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert fn(x.half()).dtype == torch.float32  # computed in float32 whatever comes in
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        fn(torch.rand(16, 5, 7))


def test_statistic_under_autocast_is_float32():
    x = torch.relu(torch.randn(2, 16, 4, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = stats.smoe_scale(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, stats.smoe_scale(x))


def test_closed_forms_against_scipy():
    rng = np.random.default_rng(0)
    pre = rng.normal(0.3, 1.2, size=(1, 200, 1, 1))
    t = torch.from_numpy(pre)
    m, s = pre.mean(), pre.std(ddof=1)
    a = (0 - m) / s
    dist = scipy.stats.truncnorm(a, 60.0, loc=m, scale=s)  # b = inf gives NaN entropy
    assert stats.truncnormal_mean(t).item() == pytest.approx(dist.mean(), rel=1e-5)
    assert stats.truncnormal_std(t).item() == pytest.approx(dist.std(), rel=1e-5)
    assert stats.truncnormal_entropy(t).item() == pytest.approx(dist.entropy(), rel=1e-5)

    pos = torch.from_numpy(rng.gamma(2.5, 0.7, size=(1, 400, 1, 1)))
    k, _, theta = scipy.stats.gamma.fit(pos.flatten().numpy() + 1e-6, floc=0)
    assert stats.gamma_scale(pos).item() == pytest.approx(theta, rel=1e-4)
    assert stats.gamma_shape(pos).item() == pytest.approx(k, rel=1e-4)

    logs = np.log(pos.flatten().numpy() + 1e-6)
    lm, ls = logs.mean(), logs.std(ddof=1)
    assert stats.lognormal_mean(pos).item() == pytest.approx(math.exp(lm + ls**2 / 2), rel=1e-5)
    ent = scipy.stats.lognorm(ls, scale=math.exp(lm)).entropy()
    assert stats.lognormal_entropy(pos).item() == pytest.approx(ent, rel=1e-4)

    p = np.array([1.0, 3.0, 0.0, 4.0])
    h = stats.shannon_entropy(torch.tensor(p).view(1, 4, 1, 1)).item()
    assert h == pytest.approx(scipy.stats.entropy(p, base=2), rel=1e-5)


def test_gamma_scale_ranks_like_smoe_scale():
    """SMOE order-equivalence (Appendix A.1) holds closely on ReLU-like activations."""
    x = torch.relu(torch.randn(1, 64, 16, 16) * torch.rand(1, 1, 16, 16) * 3 + 0.5)
    a = stats.smoe_scale(x).flatten().numpy()
    b = stats.gamma_scale(x).flatten().numpy()
    assert scipy.stats.spearmanr(a, b).statistic > 0.95


# -- combination (Eq 3) -------------------------------------------------------------------------------


def test_squash_normal_cdf_per_image_and_constant_guard():
    maps = torch.stack([torch.arange(16.0).view(4, 4), torch.full((4, 4), 3.0)])
    out = C.squash_normal_cdf(maps)
    v = maps[0].flatten()
    expected = scipy.stats.norm.cdf((v - v.mean()) / v.std()).reshape(4, 4)
    torch.testing.assert_close(out[0], torch.from_numpy(expected).float())
    assert torch.equal(out[1], torch.full((4, 4), 0.5))
    # Independent per image: scaling one image does not change the other.
    torch.testing.assert_close(
        C.squash_normal_cdf(maps * torch.tensor([10.0, 1.0]).view(2, 1, 1)), out
    )


def test_squash_gamma_cdf():
    maps = torch.rand(2, 6, 6)
    maps[1] = 1.0
    out = C.squash_gamma_cdf(maps)
    assert out.shape == maps.shape and torch.isfinite(out).all()
    assert (out >= 0).all() and (out <= 1).all()
    assert torch.equal(out[1], torch.full((6, 6), 0.5))
    order = torch.argsort(maps[0].flatten())
    assert (out[0].flatten()[order].diff() >= 0).all()  # monotonic


def test_combine_eq3_by_hand():
    # Two images; five maps of sizes 1, 2, 2, 4, 4: squash, upsample to 4 x 4, weighted mean.
    torch.manual_seed(0)
    maps = {
        "L1": torch.rand(2, 4, 4),
        "L2": torch.rand(2, 2, 2),
        "L3": torch.rand(2, 2, 2),
        "L4": torch.rand(2, 1, 1),
        "L5": torch.rand(2, 2, 2),
    }
    w = [0.18, 0.15, 0.37, 0.40, 0.72]
    expected = torch.zeros(2, 4, 4)
    for weight, m in zip(w, maps.values(), strict=True):
        flat = m.flatten(1)
        sd = flat.std(1, keepdim=True) if flat.shape[1] > 1 else torch.zeros(2, 1)
        sq = torch.where(
            sd > 0,
            torch.special.ndtr((flat - flat.mean(1, keepdim=True)) / sd.clamp_min(1e-30)),
            0.5,
        ).view_as(m)
        up = torch.nn.functional.interpolate(
            sq[:, None], size=(4, 4), mode="bilinear", align_corners=False
        )
        expected += weight * up[:, 0]
    expected /= sum(w)
    out = C.combine(maps, (4, 4), weights="prior")
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(C.combine(maps, (4, 4), weights=w), expected)
    # Squash happens before upsampling: different from upsample-then-squash.
    up_first = {k: C.upsample(v, (4, 4)) for k, v in maps.items()}
    assert not torch.allclose(C.combine(up_first, (4, 4), weights="prior"), expected)
    # Keys in another order are put back in tap order.
    shuffled = {k: maps[k] for k in ["L5", "L3", "L1", "L4", "L2"]}
    torch.testing.assert_close(C.combine(shuffled, (4, 4), weights="prior"), expected)


def test_combine_weights_matter():
    maps = [torch.zeros(1, 2, 2) for _ in range(5)]
    maps[0] = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])  # L1 says top-left
    maps[4] = torch.tensor([[[0.0, 0.0], [0.0, 1.0]]])  # L5 says bottom-right
    early = C.combine(maps, (2, 2), weights=[5, 0, 0, 0, 1])
    late = C.combine(maps, (2, 2), weights="linear")
    assert early[0].argmax() == 0 and late[0].argmax() == 3
    equal = C.combine(maps, (2, 2))
    assert torch.allclose(equal[0, 0, 0], equal[0, 1, 1])
    const = C.combine([torch.ones(1, 2, 2)] * 5, (8, 8))
    assert torch.equal(const, torch.full((1, 8, 8), 0.5))


def test_named_weights_and_errors():
    assert C.resolve_weights("equal") == (1, 1, 1, 1, 1)
    assert C.resolve_weights("linear") == (1, 2, 3, 4, 5)
    assert C.resolve_weights("prior") == (0.18, 0.15, 0.37, 0.40, 0.72)
    with pytest.raises(ValueError, match="one value per map"):
        C.resolve_weights([1, 2, 3])
    with pytest.raises(ValueError, match="unknown weights"):
        C.resolve_weights("heavy")
    with pytest.raises(ValueError, match="not all zero"):
        C.resolve_weights([0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="unknown squash"):
        C.combine([torch.rand(1, 2, 2)] * 5, (4, 4), squash="sigmoid")
    with pytest.raises(ValueError, match="one value per map"):
        C.combine([torch.rand(1, 2, 2)] * 4, (4, 4), "prior")  # the paper's five values
    with pytest.raises(ValueError, match="one value per map"):
        C.combine([torch.rand(1, 2, 2)] * 4, (4, 4), [1, 1, 1, 1, 1])
    # equal and linear fit any number of taps (a network with four scales)
    assert C.resolve_weights("linear", 2) == (1, 2) and C.resolve_weights("equal", 4) == (1,) * 4
    maps = [torch.rand(1, 2, 2) for _ in range(4)]
    torch.testing.assert_close(C.combine(maps, (2, 2)), C.combine(maps, (2, 2), [1, 1, 1, 1]))
