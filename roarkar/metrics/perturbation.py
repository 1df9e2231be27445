"""Pixel-removal metrics without retraining (paper 003, Grabska-Barwinska et al. 2021) and ROAD.

Per image ``x`` with predicted class ``c = argmax f(x)`` and a saliency map ranked per *pixel*
(``ranks [N, H, W]``, 0 = most salient, ties already broken at random; see
:func:`roarkar.removal.saliency_ranks`), ``x^(k)`` is ``x`` with ``k`` pixels removed in every channel:
the ``k`` most salient (MoRF) or the ``k`` least salient (LeRF).

- ``aopc`` (Eq 10, Samek et al.): ``1/(P+1) sum_{k=0..P} f_c(x) - f_c(x^(k)_MoRF)`` with ``P`` =
  ``aopc_fraction`` (10 %) of the pixels. ``aopc_steps`` evaluates ``k`` on an even grid of that many
  steps from 0 to P (``aopc_steps >= P`` is Eq 10 exactly, one pixel per step).
- ``afoc_morf`` / ``afoc_lerf`` (Eq 11, Srinivas & Fleuret): ``|f_c(x) - f_c(x^(k))| / |f_c(x)|`` at
  ``k`` = ``afoc_fraction`` (10 %) of the pixels, removed MoRF or LeRF.
- ``n_morf`` / ``n_lerf`` (Sec 4.2): the fraction of pixels removed when the decision first changes
  (``argmax f(x^(k)) != c``); 1.0 when it never changes. Searched on a coarse grid of
  ``decision_coarse`` steps, then refined inside the first coarse interval where the decision
  changed with ``decision_fine`` steps (resolution 1 / (coarse x fine) = 1 % by default); a flip that
  reverts inside an earlier coarse interval is not seen.
- ``road_morf`` / ``road_lerf`` (Rong et al. 2022): removal at ``percents`` (10..90 %) with noisy
  linear imputation whatever ``replacement`` says, its noise ``noise`` x the pixel range as the
  reference (:mod:`roarkar.removal.imputation`; pass the dataset's ``pixel_std``); per image the
  mean over the percents of the softmax probability of ``c`` (the per-image analogue of ROAD's
  curve of the mean probability of the original prediction; the curves themselves are returned
  too). **Percent axis:** roarkar's percent is the percent *removed* for MoRF and LeRF alike;
  ROAD's LeRF percent is the percent *kept*, so roarkar's LeRF at p is ROAD's LeRF at 100 - p.

**Pixel counts** (``count``): a fraction ``p`` of the ``H*W`` pixels removes
``round(p * H * W)`` pixels, halves rounded up (``round``, the default, as roarkar's ROAR/KAR
masks) or, with ``floor``, ROAD's and Quantus's ``int(p * H * W)`` for MoRF and, for LeRF, every
pixel but ROAD's ``int((1 - p) * H * W)`` kept most salient ones. The rule applies to every count
of every metric here.

``f_c`` is the logit of ``c`` (paper 003's class score) or, with ``score=probability``, its softmax
probability. Every perturbed image of a batch of images x removal steps goes through the model in
one forward pass; nothing loops over pixels.

The settings live in :mod:`roarkar.metrics.settings`, the removal (counts, masks, replacements) in
:mod:`roarkar.removal`, the scoring step in :mod:`roarkar.metrics.scoring`, the Delta metrics
(Eq 9) in :mod:`roarkar.metrics.delta`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from roarkar.metrics.scoring import class_scores, scores_after_removal
from roarkar.metrics.settings import Settings
from roarkar.removal import ORDERS, removed_count, removed_counts

__all__ = ["perturbation_metrics"]


def _first_true(flags: Tensor) -> tuple[Tensor, Tensor]:
    """Index of the first True per row and whether there is one."""
    any_ = flags.any(dim=1)
    return flags.int().argmax(dim=1), any_


def _decision_fraction(
    model: nn.Module,
    images: Tensor,
    ranks: Tensor,
    targets: Tensor,
    coarse_pred: Tensor,
    order: str,
    settings: Settings,
    generator: torch.Generator | None,
    pixel_std: Sequence[float] | Tensor | None,
) -> Tensor:
    """Fraction of pixels removed when the decision first changes (1.0 if it never does)."""
    hw = ranks.shape[1] * ranks.shape[2]
    coarse, fine = int(settings.decision_coarse), int(settings.decision_fine)
    j, flipped = _first_true(coarse_pred != targets[:, None])
    coarse_counts = removed_counts(
        [(i + 1) / coarse for i in range(coarse)], hw, images.device, order, settings.count
    )
    result = torch.ones(images.shape[0], device=images.device)
    result[flipped] = coarse_counts[j[flipped]].float() / hw
    rows = flipped.nonzero()[:, 0]
    if fine > 1 and rows.numel():
        numer = j[rows, None] * fine + torch.arange(1, fine, device=images.device)[None]
        counts = torch.tensor(
            [
                [removed_count(v / (coarse * fine), hw, order, settings.count) for v in row]
                for row in numer.tolist()
            ],
            dtype=torch.long,
            device=images.device,
        )
        _, _, pred = scores_after_removal(
            model,
            images[rows],
            ranks[rows],
            targets[rows],
            counts,
            order,
            settings,
            generator=generator,
            pixel_std=pixel_std,
        )
        i, found = _first_true(pred != targets[rows, None])
        refined = counts.gather(1, i[:, None])[:, 0].float() / hw
        result[rows] = torch.where(found, refined, result[rows])
    return result


@torch.inference_mode()
def perturbation_metrics(
    model: nn.Module,
    images: Tensor,
    ranks: Tensor,
    targets: Tensor,
    settings: Settings,
    *,
    road: bool = True,
    generator: torch.Generator | None = None,
    pixel_std: Sequence[float] | Tensor | None = None,
) -> dict[str, Tensor]:
    """Every metric per row: ``aopc, afoc_morf, afoc_lerf, n_morf, n_lerf`` (and ``road_morf,
    road_lerf`` with their curves ``road_morf_curve`` / ``road_morf_pred`` ``[R, len(percents)]``
    when ``road``). ``targets`` must be the unperturbed decision ``c`` of each row's image;
    ``pixel_std`` the per-channel std the images were normalised with (the dataset's, 0..1 scale),
    which puts the imputation noise on ROAD's pixel scale (None: images on the [0, 1] scale)."""
    if ranks.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(
            f"ranks must be per pixel [N, H, W] = {(images.shape[0], *images.shape[2:])}; "
            f"got {tuple(ranks.shape)} (rank what you mask: H x W pixels, never C x H x W)"
        )
    model.eval()
    device = images.device
    ranks = ranks.to(device)
    targets = targets.to(device)
    hw = ranks.shape[1] * ranks.shape[2]
    f0, _, _ = class_scores(model, images, targets, settings.score)
    denominator = f0.abs().clamp_min(1e-12)
    out: dict[str, Tensor] = {}

    # MoRF: AOPC grid, AFOC, coarse decision grid -- one pass over their union.
    rule = settings.count
    p = removed_count(settings.aopc_fraction, hw, "morf", rule)
    steps = min(int(settings.aopc_steps), p) if p else 0
    aopc_k = [round(i * p / steps) for i in range(steps + 1)] if steps else [0]
    afoc_k = removed_count(settings.afoc_fraction, hw, "morf", rule)
    coarse = int(settings.decision_coarse)
    grid = [(i + 1) / coarse for i in range(coarse)]
    coarse_k = removed_counts(grid, hw, device, "morf", rule).tolist()
    morf_k = sorted({k for k in (*aopc_k, afoc_k, *coarse_k) if k > 0})
    col = {k: i for i, k in enumerate(morf_k)}
    value, _, pred = scores_after_removal(
        model,
        images,
        ranks,
        targets,
        torch.tensor(morf_k, device=device),
        "morf",
        settings,
        generator=generator,
        pixel_std=pixel_std,
    )

    def at(k: int, value: Tensor, col: dict[int, int]) -> Tensor:
        return f0 if k == 0 else value[:, col[k]]

    out["aopc"] = torch.stack([f0 - at(k, value, col) for k in aopc_k], dim=1).mean(dim=1)
    out["afoc_morf"] = (f0 - at(afoc_k, value, col)).abs() / denominator
    out["n_morf"] = _decision_fraction(
        model,
        images,
        ranks,
        targets,
        _coarse(pred, col, coarse_k, targets),
        "morf",
        settings,
        generator,
        pixel_std,
    )

    # LeRF: AFOC and the coarse decision grid.
    afoc_k = removed_count(settings.afoc_fraction, hw, "lerf", rule)
    coarse_k = removed_counts(grid, hw, device, "lerf", rule).tolist()
    lerf_k = sorted({k for k in (afoc_k, *coarse_k) if k > 0})
    col = {k: i for i, k in enumerate(lerf_k)}
    value, _, pred = scores_after_removal(
        model,
        images,
        ranks,
        targets,
        torch.tensor(lerf_k, device=device),
        "lerf",
        settings,
        generator=generator,
        pixel_std=pixel_std,
    )
    out["afoc_lerf"] = (f0 - at(afoc_k, value, col)).abs() / denominator
    out["n_lerf"] = _decision_fraction(
        model,
        images,
        ranks,
        targets,
        _coarse(pred, col, coarse_k, targets),
        "lerf",
        settings,
        generator,
        pixel_std,
    )

    if road:
        fractions = [float(q) / 100 for q in settings.percents]
        for order in ORDERS:
            _, prob, pred = scores_after_removal(
                model,
                images,
                ranks,
                targets,
                removed_counts(fractions, hw, device, order, rule),
                order,
                settings,
                replacement="linear",
                generator=generator,
                pixel_std=pixel_std,
            )
            out[f"road_{order}"] = prob.mean(dim=1)
            out[f"road_{order}_curve"] = prob
            out[f"road_{order}_pred"] = pred
    return out


def _coarse(pred: Tensor, col: dict[int, int], coarse_k: list[int], targets: Tensor) -> Tensor:
    """Decisions at the coarse counts; a step that removes no pixel keeps the decision ``c``."""
    return torch.stack([targets if k == 0 else pred[:, col[k]] for k in coarse_k], dim=1)
