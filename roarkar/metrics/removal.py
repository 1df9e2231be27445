"""Removal and scoring, the step every metric without retraining repeats: how many pixels a
fraction removes (``round`` or ROAD's ``floor``), which ones (MoRF / LeRF by the per-pixel ranks),
and the model's score of the original decision on the images with those pixels replaced."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from roarkar.masking import count_for
from roarkar.metrics.replacement import blur, replace
from roarkar.metrics.settings import COUNTS, Settings

__all__ = [
    "ORDERS",
    "class_scores",
    "removal_mask",
    "removed_count",
    "removed_counts",
    "scores_after_removal",
]

ORDERS = ("morf", "lerf")


def removed_count(fraction: float, hw: int, order: str, rule: str = "round") -> int:
    """Pixels removed when a fraction ``fraction`` of the ``hw`` pixels is removed in ``order``.

    ``round``: ``round(fraction * hw)``, halves up, either order. ``floor`` (ROAD, Quantus): MoRF
    removes ``int(fraction * hw)``; LeRF keeps ROAD's ``int((1 - fraction) * hw)`` most salient pixels
    and removes the rest. Products are rounded to 9 decimals before the floor, so float noise in
    ``fraction`` (0.29 * 100 = 28.999...) does not cost a pixel.
    """
    f = float(fraction)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"fraction must be in [0, 1]; got {fraction!r}")
    if order not in ORDERS:
        raise ValueError(f"order={order!r}: expected one of {', '.join(ORDERS)}")
    if rule == "round":
        return count_for(f, hw)
    if rule != "floor":
        raise ValueError(f"count={rule!r}: expected one of {', '.join(COUNTS)}")
    if order == "morf":
        return math.floor(round(f * hw, 9))
    return hw - math.floor(round((1.0 - f) * hw, 9))


def removal_mask(ranks: Tensor, counts: Tensor, order: str) -> Tensor:
    """Pixels removed ``[R, S, H, W]`` for per-row counts ``[R, S]`` (or ``[S]``) of ranks ``[R, H, W]``.

    MoRF removes the ``k`` pixels of rank ``< k``; LeRF the ``k`` of rank ``>= H*W - k``.
    """
    if ranks.dim() != 3:
        raise ValueError(
            f"ranks must be per pixel [N, H, W]; got shape {tuple(ranks.shape)} "
            "(rank what you mask: H x W pixels, never C x H x W)"
        )
    hw = ranks.shape[1] * ranks.shape[2]
    counts = counts.to(ranks.device)
    if counts.dim() == 1:
        counts = counts.expand(ranks.shape[0], -1)
    k = counts[:, :, None, None]
    r = ranks[:, None]
    if order == "morf":
        return r < k
    if order == "lerf":
        return r >= hw - k
    raise ValueError(f"order={order!r}: expected one of {', '.join(ORDERS)}")


def class_scores(model: nn.Module, x: Tensor, targets: Tensor, score: str) -> tuple[Tensor, ...]:
    """One forward pass: the ``score`` (logit or probability) of each row's target, its softmax
    probability, and the model's decision."""
    logits = model(x).float()
    prob = logits.softmax(dim=1).gather(1, targets[:, None])[:, 0]
    value = logits.gather(1, targets[:, None])[:, 0] if score == "logit" else prob
    return value, prob, logits.argmax(dim=1)


@torch.inference_mode()
def scores_after_removal(
    model: nn.Module,
    images: Tensor,
    ranks: Tensor,
    targets: Tensor,
    counts: Tensor,
    order: str,
    settings: Settings,
    *,
    replacement: str | None = None,
    generator: torch.Generator | None = None,
    pixel_std: Sequence[float] | Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Score of each row's target, its probability and the decision after removing ``counts``.

    ``images [R, C, H, W]`` (normalised with the per-channel ``pixel_std``, which scales the
    imputation noise; None: images on the [0, 1] scale), ``ranks [R, H, W]``, ``targets [R]``,
    ``counts [R, S]`` or ``[S]``; returns three ``[R, S]`` tensors. Rows x steps go through the
    model in chunks of at most ``settings.batch_size`` perturbed images.
    """
    kind = replacement or settings.replacement
    rows, steps = images.shape[0], counts.shape[-1]
    device = images.device
    if counts.dim() == 1:
        counts = counts.expand(rows, -1)
    out = [torch.empty(rows, steps, device=device) for _ in range(2)]
    pred = torch.empty(rows, steps, dtype=torch.long, device=device)
    per_chunk = max(1, settings.batch_size // max(steps, 1))
    c, h, w = images.shape[1:]
    for start in range(0, rows, per_chunk):
        sl = slice(start, start + per_chunk)
        x = images[sl]
        n = x.shape[0]
        removed = removal_mask(ranks[sl], counts[sl], order).reshape(n * steps, h, w)
        xs = x[:, None].expand(n, steps, c, h, w).reshape(n * steps, c, h, w)
        blurred = None
        if kind == "blur":
            blurred = blur(x, settings.blur_sigma)[:, None].expand(n, steps, c, h, w)
            blurred = blurred.reshape(n * steps, c, h, w)
        perturbed = replace(
            xs,
            removed,
            kind,
            blurred=blurred,
            noise=settings.noise,
            pixel_std=pixel_std,
            generator=generator,
            solver=settings.solver,
            tol=settings.solver_tol,
            max_iter=settings.solver_max_iter,
        )
        value, prob, decision = class_scores(
            model, perturbed, targets[sl].repeat_interleave(steps), settings.score
        )
        out[0][sl] = value.view(n, steps)
        out[1][sl] = prob.view(n, steps)
        pred[sl] = decision.view(n, steps)
    return out[0], out[1], pred


def removed_counts(fractions: Sequence[float], hw: int, device, order: str, rule: str) -> Tensor:
    """Pixels removed at each fraction (clipped to [0, 1]), by :func:`removed_count`."""
    return torch.tensor(
        [removed_count(min(max(f, 0.0), 1.0), hw, order, rule) for f in fractions],
        dtype=torch.long,
        device=device,
    )
