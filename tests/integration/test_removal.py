"""The one removal module: one mask for KAR/ROAR and MoRF/LeRF (checked against an independent
numpy implementation), the four replacements, and the input protocol retraining on each."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roarkar.config import resolve
from roarkar.protocols.base import MODEL_FILE, base_dir, ensure_base_model
from roarkar.protocols.cell import run_cell
from roarkar.protocols.context import make_context
from roarkar.protocols.input import run_input_cell
from roarkar.protocols.precompute import ensure_ranks
from roarkar.protocols.settings import ProtocolSettings
from roarkar.registry import UnknownName
from roarkar.removal import (
    MODE_ORDER,
    REPLACEMENTS,
    image_draws,
    keep_mask_from_ranks,
    removal_mask,
    removed_count,
    replace,
    saliency_ranks,
)
from roarkar.training import DistInfo

SHAPES = [(7, 9), (8, 8), (5, 13), (4, 4), (14, 14)]
FRACTIONS = (0.0, 0.025, 0.1, 0.3, 0.5, 0.9, 1.0)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _case(seed: int) -> tuple[np.ndarray, torch.Tensor]:
    """A seeded map (its first image coarsely quantised: many ties) and its ranks."""
    g = torch.Generator().manual_seed(seed)
    saliency = torch.rand(3, *SHAPES[seed], generator=g)
    saliency[0] = saliency[0].round(decimals=1)
    return saliency.numpy(), saliency_ranks(saliency, g)


def _np_count(fraction: float, n: int) -> int:
    return int(np.floor(fraction * n + 0.5))


def _np_removed(ranks: np.ndarray, k: int, order: str) -> np.ndarray:
    """Numpy: the ``k`` locations removed first in ``order``, from the locations sorted by rank."""
    flat = ranks.reshape(len(ranks), -1)
    by_rank = np.argsort(flat, axis=1)  # most salient first
    out = np.zeros_like(flat, dtype=bool)
    for row, locations in enumerate(by_rank):
        out[row, locations[:k] if order == "morf" else locations[flat.shape[1] - k :]] = True
    return out.reshape(ranks.shape)


@pytest.mark.parametrize("seed", range(len(SHAPES)))
def test_ranks_follow_the_map_and_every_mask_matches_numpy(seed):
    saliency, ranks = _case(seed)
    r = ranks.numpy()
    n = r.shape[1] * r.shape[2]
    for row in range(len(r)):  # a permutation; a more salient location never ranks lower
        flat_s, flat_r = saliency[row].ravel(), r[row].ravel()
        assert sorted(flat_r.tolist()) == list(range(n))
        by_rank = flat_s[np.argsort(flat_r)]
        assert (np.diff(by_rank) <= 0).all()
    for fraction in FRACTIONS:
        k = _np_count(fraction, n)
        kar = keep_mask_from_ranks(ranks, "kar", fraction).numpy()
        roar = keep_mask_from_ranks(ranks, "roar", fraction).numpy()
        assert np.array_equal(kar, ~_np_removed(r, n - k, "lerf"))  # KAR keeps the top k
        assert np.array_equal(kar, _np_removed(r, k, "morf"))
        assert np.array_equal(roar, ~_np_removed(r, k, "morf"))  # ROAR removes the top k
        assert kar.sum() == 3 * k and np.array_equal(kar, ~roar)
        for mode, order in MODE_ORDER.items():  # the mode is its order: one mask code
            removed = k if mode == "roar" else n - k
            mask = removal_mask(ranks, torch.tensor([removed]), order)[:, 0]
            assert torch.equal(keep_mask_from_ranks(ranks, mode, fraction), ~mask)
    for order in ("morf", "lerf"):
        for rule in ("round", "floor"):
            counts = [removed_count(p / 100, n, order, rule) for p in range(0, 101, 5)]
            got = removal_mask(ranks, torch.tensor(counts), order).numpy()
            want = np.stack([_np_removed(r, k, order) for k in counts], axis=1)
            assert np.array_equal(got, want)


def test_replacements_change_removed_pixels_only_and_zero_is_black():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 10, 10, generator=g) + 3
    removed = ~keep_mask_from_ranks(
        saliency_ranks(torch.rand(2, 10, 10, generator=g), g), "roar", 0.3
    )
    stats = {"pixel_mean": MEAN, "pixel_std": STD}
    assert list(REPLACEMENTS) == ["mean", "zero", "blur", "linear"]
    for kind in REPLACEMENTS:
        out = replace(x, removed, kind, **stats)
        assert torch.equal((out != x).all(dim=1), removed)
        assert torch.equal(out[~removed[:, None].expand_as(x)], x[~removed[:, None].expand_as(x)])
    assert (replace(x, removed, "mean")[removed[:, None].expand_as(x)] == 0).all()
    black = replace(x, removed, "zero", **stats) * torch.tensor(STD)[:, None, None]
    black = black + torch.tensor(MEAN)[:, None, None]
    assert black.permute(0, 2, 3, 1)[removed].abs().max() < 1e-6
    with pytest.raises(ValueError, match="pixel_mean"):
        replace(x, removed, "zero")


def test_unknown_replacement_names_its_key_and_the_four():
    x, removed = torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.bool)
    message = r"protocol.replacement='lin' is not a .*registered: mean, zero, blur, linear"
    with pytest.raises(UnknownName, match=message):
        replace(x, removed, "lin", key="protocol.replacement")


def test_protocol_replacement_accepts_the_four_at_the_edge(compose_cfg):
    for kind in ("mean", "zero", "blur", "linear"):
        cfg = compose_cfg(["protocol=input", f"protocol.replacement={kind}"])
        assert ProtocolSettings.from_config(resolve(cfg)).replacement == kind
    cfg = compose_cfg(["protocol=input", "protocol.replacement=noise"])
    with pytest.raises(
        ValueError, match=r"^protocol.replacement='noise'.*mean, zero, blur, linear"
    ):
        ProtocolSettings.from_config(resolve(cfg))


def test_imputation_noise_is_per_image_whatever_the_batch():
    a = image_draws((3, 3, 5, 5), torch.tensor([4, 9, 2]), seed=11)
    b = image_draws((2, 3, 5, 5), torch.tensor([2, 4]), seed=11)
    assert torch.equal(a[0], b[1]) and torch.equal(a[2], b[0])
    assert not torch.equal(a[0], image_draws((1, 3, 5, 5), torch.tensor([4]), seed=12)[0])
    assert not torch.equal(a[0], a[1])


def test_input_cells_retrain_on_blur_and_linear(compose_cfg):
    """KAR and ROAR input cells at debug=smoke with each slow replacement run and finish, each
    training on other images than mean's."""

    def cell(mode: str, kind: str, results=None) -> dict:
        overrides = ["task=cell", "protocol=input", f"protocol.mode={mode}"]
        record = run_cell(compose_cfg([*overrides, f"protocol.replacement={kind}"], results))
        assert record["status"] == "ok", record.get("error")
        assert record["config"]["protocol"]["replacement"] == kind
        return record

    losses = {}
    for kind in ("mean", "blur", "linear"):
        for mode in ("kar", "roar"):
            if kind != "mean" or mode == "roar":
                losses[kind, mode] = [h["train_loss"] for h in cell(mode, kind)["history"]]
    assert len({tuple(v) for k, v in losses.items() if k[1] == "roar"}) == 3


class _Stop(Exception):
    pass


def test_a_linear_input_cell_resumes_to_the_uninterrupted_history(compose_cfg, tmp_path):
    """Stopped after epoch 1 and resumed from its checkpoint, a linear cell ends with the history of
    the same cell run straight through: the imputation noise is seeded per image and epoch."""
    cfg = compose_cfg(["protocol=input", "protocol.replacement=linear", "trainer.epochs.input=2"])
    ctx = make_context(resolve(cfg), DistInfo())
    base, base_id, _ = ensure_base_model(ctx)
    ranks = ensure_ranks(ctx, base, base_id, base_dir(ctx, base_id) / MODEL_FILE)
    straight = run_input_cell(ctx, ranks, "roar", 0.5, "id", tmp_path / "straight.pt")

    steps = len(ranks["train"]) // ctx.settings.batch_size  # per epoch

    def stop_at_epoch_2(step: int) -> None:
        if step == steps:
            raise _Stop

    with pytest.raises(_Stop):
        run_input_cell(ctx, ranks, "roar", 0.5, "id", tmp_path / "cut.pt", on_step=stop_at_epoch_2)
    torch.manual_seed(123)  # another process: nothing but the checkpoint carries over
    resumed = run_input_cell(ctx, ranks, "roar", 0.5, "id", tmp_path / "cut.pt")
    assert resumed.resumed_from_epoch == 1
    assert resumed.history == straight.history and resumed.accuracy == straight.accuracy
