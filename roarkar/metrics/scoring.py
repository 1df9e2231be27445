"""Scoring after removal, the step every metric without retraining repeats: the model's score of
the original decision on the images with the pixels of each removal step replaced (which pixels and
how: :mod:`roarkar.removal`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from roarkar.metrics.settings import Settings
from roarkar.removal import blur, removal_mask, replace

__all__ = ["class_scores", "scores_after_removal"]


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
