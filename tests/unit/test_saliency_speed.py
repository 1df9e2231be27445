"""The fast paths of the saliency code against the straightforward formulas they replace.

SMOE Scale (one in-place temporary, logs of products of four channels), the normal-CDF squash (two-pass std), Eq 3 (images-as-channels
bilinear upsampling and in-place weighted sum), the noise tunnel (one draw per image for all its
samples, written straight into the chunk) and the path integral (path points written straight into
the chunk). Correctness only: no timing assertions.
"""

from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import roarkar.saliency as S
from roarkar.models import build_model
from roarkar.saliency import combine as C
from roarkar.saliency import stats
from roarkar.saliency.base import PixelMethod
from roarkar.saliency.methods.noise import NoiseTunnel
from roarkar.saliency.methods.path import PathIntegral
from roarkar.saliency.methods.quadrature import quadrature
from roarkar.saliency.methods.seeds import image_seeds, mix_seed
from roarkar.saliency.methods.wrappers import segments


def smoe_reference(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    x = x.clamp_min(0) + eps
    mu = x.mean(dim=1)
    return mu * (torch.log2(mu) - torch.log2(x).mean(dim=1))


def _close_to_eq2(got: torch.Tensor, x: torch.Tensor, eps: float = 1e-6) -> None:
    """SMOE Scale's grouped logs (products of four channels) change only the float rounding."""
    rtol = 1e-5 if got.dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got, smoe_reference(x, eps), rtol=rtol, atol=rtol * 1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "shape", [(3, 5, 2, 2), (4, 16, 9, 7), (2, 64, 12, 12), (1, 300, 3, 3), (5, 300, 30, 30)]
)
def test_smoe_scale_matches_eq2(shape, dtype):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    x[0, :, 0, 0] = 0.0  # an all-zero column
    _close_to_eq2(stats.smoe_scale(x), x)
    # Post-ReLU input (the usual case), large activations, and channels-last memory.
    relu = x.relu()
    _close_to_eq2(stats.smoe_scale(relu), relu)
    _close_to_eq2(stats.smoe_scale(relu * 1000), relu * 1000)
    cl = relu.contiguous(memory_format=torch.channels_last)
    _close_to_eq2(stats.smoe_scale(cl), relu)
    # The input is not modified.
    before = x.clone()
    stats.smoe_scale(x)
    assert torch.equal(x, before)


@pytest.mark.parametrize("block", [1, 10**6])
def test_smoe_scale_nonnegative_skips_only_the_clamp(block, monkeypatch):
    """A ReLU's output needs no clamp: the one-pass shift gives the same bits."""
    monkeypatch.setattr(stats, "BLOCK", block)
    x = torch.randn(3, 64, 7, 5, generator=torch.Generator().manual_seed(4)).relu()
    x[1, :, 2, 2] = 0.0
    assert torch.equal(stats.smoe_scale(x, nonnegative=True), stats.smoe_scale(x))


def test_smoe_method_tells_the_statistic_its_taps_are_post_relu():
    model = build_model("small_resnet", 4).eval()
    method = S.create("smoe_scale", model)
    assert method.tap_kwargs == [{"nonnegative": True}] * 5
    assert S.create("truncnormal_std", model).tap_kwargs == [{}] * 5  # pre-ReLU: clamps stay
    selu = build_model("nielsen_cnn", 4)  # SELU taps can be negative: no promise made
    assert S.create("smoe_scale", selu).tap_kwargs == [{}, {}]
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        taps, _ = model.forward_taps(images)
    for name, got in method.tap_maps(images).items():
        assert torch.equal(got, stats.smoe_scale(taps[name].post)), name


@pytest.mark.parametrize("eps", [1e-6, 1e-12, 1e-20, 1e-40])
def test_smoe_scale_groups_never_underflow(eps):
    """Products of groups of eps-shifted zeros stay normal floats: the group shrinks with eps."""
    x = torch.zeros(2, 64, 3, 3)
    x[:, :3] = 1.0  # columns of mostly zeros: the smallest products
    got = stats.smoe_scale(x, eps=eps)
    assert torch.isfinite(got).all()
    _close_to_eq2(got, x, eps)
    halvings = stats.log_halvings(64, eps)
    assert halvings == 0 or eps ** (2**halvings) >= stats.MIN_PRODUCT


def test_smoe_scale_recomputes_a_block_whose_products_overflow():
    """Activations near 1e12 overflow a product of four in float32; that block falls back to one log
    per value and still matches Eq 2."""
    x = torch.rand(3, 32, 4, 4, generator=torch.Generator().manual_seed(2)) * 1e12
    got = stats.smoe_scale(x)
    assert torch.isfinite(got).all()
    _close_to_eq2(got, x)


@pytest.mark.parametrize("block", [1, 100, 700, 10**6])
def test_smoe_scale_blocks_of_images_are_bit_identical(block, monkeypatch):
    """Large taps go through in blocks of whole images sharing one buffer: same bits, any block."""
    g = torch.Generator().manual_seed(10)
    shapes = [(7, 16, 5, 6), (3, 40, 4, 4), (1, 8, 3, 3)]
    xs = [torch.randn(shape, generator=g) for shape in shapes]
    whole = [stats.smoe_scale(x) for x in xs]
    monkeypatch.setattr(stats, "BLOCK", block)
    for x, expected in zip(xs, whole, strict=True):
        assert torch.equal(stats.smoe_scale(x), expected)
        _close_to_eq2(stats.smoe_scale(x), x)
        cl = x.contiguous(memory_format=torch.channels_last)
        _close_to_eq2(stats.smoe_scale(cl), x)
        assert torch.equal(stats.smoe_scale(x[1:]), expected[1:])  # a view


def test_smoe_scale_work_buffer_is_kept_and_never_shared_with_results(monkeypatch):
    """The CPU work buffer is reused across calls (not grown for a smaller tap); results are fresh
    tensors, so a later call cannot overwrite an earlier result. Above the cap, a fresh buffer."""
    g = torch.Generator().manual_seed(11)
    big, small = torch.rand(4, 32, 6, 6, generator=g), torch.rand(2, 16, 5, 5, generator=g)
    first = stats.smoe_scale(big)
    kept = stats.kept_buffer()
    saved = first.clone()
    stats.smoe_scale(small)
    assert stats.kept_buffer() is kept
    assert torch.equal(first, saved)
    assert first.untyped_storage().data_ptr() != kept.untyped_storage().data_ptr()
    monkeypatch.setattr(stats, "MAX_KEPT", 16)  # bytes: every request is over the cap
    assert torch.equal(stats.smoe_scale(big), saved)
    assert stats.kept_buffer() is kept


def test_smoe_scale_half_precision_input_is_float32():
    x = torch.rand(2, 32, 5, 5, generator=torch.Generator().manual_seed(1)).bfloat16()
    out = stats.smoe_scale(x)
    assert out.dtype == torch.float32
    _close_to_eq2(out, x.float())


def squash_reference(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.float().flatten(1) if maps.dtype != torch.float64 else maps.flatten(1)
    mu = flat.mean(dim=1, keepdim=True)
    sd = flat.std(dim=1, keepdim=True, correction=1 if flat.shape[1] > 1 else 0)
    z = (flat - mu) / torch.where(sd > 0, sd, torch.ones_like(sd))
    return torch.where(sd > 0, torch.special.ndtr(z), torch.full_like(z, 0.5)).view_as(maps)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_squash_normal_cdf_matches_reference(dtype):
    g = torch.Generator().manual_seed(2)
    for shape in [(5, 7, 7), (3, 1, 1), (2, 1, 6), (4, 56, 56)]:
        maps = (torch.rand(shape, generator=g) * 10).to(dtype)
        torch.testing.assert_close(C.squash_normal_cdf(maps), squash_reference(maps))
    # Constant maps are exactly 0.5, also for values whose mean does not round back to themselves.
    for value in (0.0, 0.1, 1 / 3, 7.3e5):
        maps = torch.full((2, 9, 11), value, dtype=dtype)
        maps[1] = torch.rand(9, 11, generator=g)
        out = C.squash_normal_cdf(maps)
        assert torch.equal(out[0], torch.full((9, 11), 0.5, dtype=dtype))
        torch.testing.assert_close(out[1], squash_reference(maps)[1])


def combine_reference(maps, size, weights, squash):
    w = C.resolve_weights(weights, len(maps))
    total = None
    for weight, m in zip(w, maps, strict=True):
        sq = C.squash_map(m, squash)
        if tuple(sq.shape[-2:]) != tuple(size):
            sq = F.interpolate(sq[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        term = sq * weight
        total = term if total is None else total + term
    return total / sum(w)


@pytest.mark.parametrize("squash", ["normal", "gamma", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_combine_matches_reference(squash, dtype):
    g = torch.Generator().manual_seed(3)
    cases = [
        ((32, 32), [(6, 32, 32), (6, 32, 32), (6, 16, 16), (6, 8, 8), (6, 4, 4)]),
        ((224, 224), [(2, 112, 112), (2, 56, 56), (2, 28, 28), (2, 14, 14), (2, 7, 7)]),
        ((10, 13), [(1, 5, 7), (1, 3, 3), (1, 10, 13), (1, 1, 1), (1, 2, 9)]),
    ]
    for size, shapes in cases:
        maps = [torch.rand(s, generator=g, dtype=dtype) for s in shapes]
        for weights in ("equal", "prior", [5.0, 0.0, 0.0, 0.0, 1.0]):
            out = C.combine(maps, size, weights, squash)
            assert out.is_contiguous() and out.dtype == (
                torch.float64 if dtype == torch.float64 else torch.float32
            )
            ref = combine_reference(maps, size, weights, squash)
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


class Recorder(PixelMethod):
    """An attribution that records every network batch it is given and returns ``2 x``."""

    def __init__(self, model, log):
        super().__init__(model)
        self.log = log

    def _attribute(self, images, targets):
        self.log.append(images.clone())
        return images * 2.0


@pytest.fixture(scope="module")
def small() -> nn.Module:
    torch.manual_seed(0)
    return build_model("small_resnet", 4, width=8).double().eval()


def test_segments():
    assert list(segments([0, 0, 1, 1, 1, 2], [3, 4, 0, 1, 2, 0])) == [
        (0, 3, 0, 2),
        (1, 0, 2, 5),
        (2, 0, 5, 6),
    ]
    assert list(segments([5], [7])) == [(5, 7, 0, 1)]


def test_image_seeds_are_the_hash_of_state_and_bytes():
    images = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state().numpy().tobytes()
    expected = []
    for image in images:
        h = hashlib.blake2b(state, digest_size=8)
        h.update(str(image.dtype).encode())
        h.update(image.flatten().view(torch.uint8).numpy().tobytes())
        expected.append(int.from_bytes(h.digest(), "little") & ((1 << 63) - 1))
    assert image_seeds(images, gen) == expected
    assert torch.equal(gen.get_state(), torch.Generator().manual_seed(5).get_state())


@pytest.mark.parametrize("max_batch", [1, 4, 7, None])
def test_noise_tunnel_inputs_are_the_per_image_draws(small, max_batch):
    """Every network input is x_i + sigma (max - min) eps_is, eps_i = one standard-normal draw
    [samples, C, H, W] from image i's seed, in image-major order, whatever the chunking."""
    images = torch.randn(3, 3, 6, 5, generator=torch.Generator().manual_seed(6)).double()
    targets = torch.tensor([0, 1, 2])
    samples, sigma = 5, 0.2
    log: list[torch.Tensor] = []
    method = NoiseTunnel(
        small,
        inner=Recorder(small, log),
        kind="vargrad",
        samples=samples,
        sigma=sigma,
        max_batch=max_batch,
    )
    gen = torch.Generator().manual_seed(7)
    out = method.attribute(images, targets, generator=gen)
    seeds = image_seeds(images, torch.Generator().manual_seed(7))
    expected = []
    for i, image in enumerate(images):
        g = torch.Generator().manual_seed(mix_seed(seeds[i], 1))
        eps = torch.randn((samples, *image.shape), generator=g, dtype=image.dtype)
        expected.append(image + sigma * (image.max() - image.min()) * eps)
    expected = torch.cat(expected)
    seen = torch.cat(log)
    assert max(len(b) for b in log) <= (max_batch or len(seen))
    torch.testing.assert_close(seen, expected, rtol=1e-12, atol=1e-12)
    # VarGrad of 2 x: 4 var(x + noise), dividing by samples.
    a = (2 * expected).view(3, samples, *images.shape[1:])
    torch.testing.assert_close(out, a.var(dim=1, correction=0), rtol=1e-9, atol=1e-12)
    # Given noise is used as is.
    noise = torch.randn(3, samples, 3, 6, 5, generator=torch.Generator().manual_seed(8)).double()
    log.clear()
    method.attribute(images, targets, noise=noise)
    scale = sigma * (images.amax(dim=(1, 2, 3)) - images.amin(dim=(1, 2, 3)))
    given = images[:, None] + scale.view(3, 1, 1, 1, 1) * noise
    torch.testing.assert_close(torch.cat(log), given.flatten(0, 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("max_batch", [1, 5, None])
def test_path_integral_inputs_and_sum(small, max_batch):
    images = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(9)).double()
    log: list[torch.Tensor] = []
    method = PathIntegral(
        small, inner=Recorder(small, log), steps=4, baseline="mean", max_batch=max_batch
    )
    out = method.attribute(images, torch.tensor([0, 1]))
    base = method.baseline_images(images)
    alphas, weights = quadrature("riemann_right", 4)
    expected = torch.stack([base + a * (images - base) for a in alphas], dim=1)
    torch.testing.assert_close(torch.cat(log), expected.flatten(0, 1), rtol=1e-12, atol=1e-12)
    integral = sum(w * 2 * expected[:, k] for k, w in enumerate(weights))
    torch.testing.assert_close(out, integral * (images - base), rtol=1e-12, atol=1e-12)
